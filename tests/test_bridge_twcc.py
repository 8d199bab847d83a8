"""Transport-wide congestion control: the feedback packet and the sequence number extension
(bridge/twcc.py, with aiortc's RTCP parser as an independent check), and the estimator
(bridge/bwe.py) on synthetic feedback sequences."""
from __future__ import annotations

import asyncio
import random
import struct
import time

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from conftest import until

from bridge import bwe, rtp, twcc
from bridge.bridge import Bridge
from bridge.twcc import ArrivalLog, build_feedback, parse_feedback, read_transport_seq, write_transport_seq
from jitsi_py.config import BridgeSection
from loadgen.synthetic import ClientTransport
from jitsi_protocols import colibri2
from jitsi_protocols.model import Source, SourceGroup
from jitsi_protocols.sdp import default_media


def roundtrip(arrivals, base=100, count=7):
    data = build_feedback(0x1111, 0x2222, base, count, arrivals)
    assert len(data) % 4 == 0 and rtp.is_rtcp(data)
    [(pt, fmt, off, length)] = list(rtp.iter_rtcp(data))
    assert (pt, fmt, length) == (205, 15, len(data))
    fb = parse_feedback(data, off, length)
    assert fb is not None
    assert (fb.sender_ssrc, fb.media_ssrc, fb.base_seq, fb.fb_count) == (0x1111, 0x2222, base, count)
    return data, fb


def quantized(arrivals):
    return [None if t is None else t // 250 * 250 for t in arrivals]


def chunk_kinds(data: bytes, n_chunks: int) -> list[str]:
    out = []
    for i in range(n_chunks):
        c = struct.unpack_from("!H", data, 20 + 2 * i)[0]
        out.append("run" if not c & 0x8000 else ("vec1" if not c & 0x4000 else "vec2"))
    return out


def test_run_length_chunk_for_a_steady_stream():
    arrivals = [1_000_000 + 5_000 * i for i in range(100)]  # every 5 ms: all small deltas
    data, fb = roundtrip(arrivals)
    assert fb.arrivals == quantized(arrivals)
    assert chunk_kinds(data, 1) == ["run"]
    assert len(data) == 20 + 2 + 100 + 2  # one chunk, 100 one-byte deltas, padding
    assert data[0] & 0x20 and data[-1] == 2  # RFC 3550 padding, counted in the last byte


def test_one_bit_vector_for_small_deltas_and_losses():
    arrivals = [None if i % 3 == 1 else 2_000_000 + 1_000 * i for i in range(14)]
    data, fb = roundtrip(arrivals)
    assert fb.arrivals == quantized(arrivals)
    assert chunk_kinds(data, 1) == ["vec1"]


def test_two_bit_vector_large_and_negative_deltas():
    # a 100 ms gap (large), a reordered packet (negative), a loss, and back
    arrivals = [3_000_000, 3_001_000, 3_101_000, 3_100_500, None, 3_102_000, 3_102_250, 3_103_000]
    data, fb = roundtrip(arrivals)
    assert fb.arrivals == quantized(arrivals)
    assert chunk_kinds(data, 2)[0] == "vec2"


def test_long_runs_of_losses_and_large_gaps():
    arrivals = [5_000_000] + [None] * 9000 + [5_000_000 + 8_000_000, 5_000_000 + 8_000_250]
    data, fb = roundtrip(arrivals, base=65530)
    assert fb.arrivals == quantized(arrivals)
    assert fb.base_seq == 65530
    with pytest.raises(ValueError):  # more than 8 s between two arrivals does not fit
        build_feedback(1, 2, 0, 0, [0, 9_000_000])
    with pytest.raises(ValueError):
        build_feedback(1, 2, 0, 0, [None, None])


def test_random_roundtrips():
    rnd = random.Random(5)
    for _ in range(300):
        t = rnd.randrange(0, 10 ** 9)
        arrivals: list[int | None] = []
        for _ in range(rnd.randrange(1, 200)):
            if rnd.random() < 0.2:
                arrivals.append(None)
            else:
                t += rnd.choice([0, 250, 3_000, 70_000, -2_000, 1_000_000])
                arrivals.append(t)
        if all(a is None for a in arrivals):
            arrivals[0] = t
        _, fb = roundtrip(arrivals, base=rnd.getrandbits(16), count=rnd.getrandbits(8))
        assert fb.arrivals == quantized(arrivals)


def test_parse_never_raises_on_garbage():
    data = build_feedback(1, 2, 3, 4, [1_000_000 + 3_000 * i if i % 4 else None for i in range(40)])
    for n in range(len(data)):
        assert parse_feedback(data[:n], 0, len(data)) is None or n >= 20
        parse_feedback(data, 0, n)
    rnd = random.Random(1)
    for _ in range(2000):
        blob = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 60)))
        parse_feedback(blob, 0, len(blob))


def test_reference_time_is_signed_and_24_bits():
    # a reference time with the top bit set reads as negative, as the draft says
    data = bytearray(build_feedback(1, 2, 0, 0, [64_000 * 5]))
    data[16:19] = (0xFFFFFF).to_bytes(3, "big")
    fb = parse_feedback(bytes(data), 0, len(data))
    assert fb.reference == 0xFFFFFF and fb.arrivals == [-64_000]


def test_transport_seq_extension_read_and_written_in_place():
    ext_map = HeaderExtensionsMap()
    ext_map.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
        RTCRtpHeaderExtensionParameters(id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
        RTCRtpHeaderExtensionParameters(id=5, uri=twcc.TCC_URI)]))
    p = RtpPacket(payload_type=100, sequence_number=1, timestamp=2, ssrc=3, payload=b"x" * 30)
    p.extensions.abs_send_time = 0x123456
    p.extensions.audio_level = (True, 40)
    p.extensions.transport_sequence_number = 0xFFFE
    data = p.serialize(ext_map)
    assert read_transport_seq(data, 5) == 0xFFFE
    assert read_transport_seq(data, 4) is None and read_transport_seq(data[:12] + data[12:14], 5) is None
    buf = bytearray(data)
    assert write_transport_seq(buf, 5, 0x10001) and len(buf) == len(data)
    q = RtpPacket.parse(bytes(buf), ext_map)
    assert q.extensions.transport_sequence_number == 1
    assert q.extensions.abs_send_time == 0x123456 and q.extensions.audio_level == (True, 40)
    assert q.payload == b"x" * 30
    plain = bytearray(RtpPacket(payload_type=100, ssrc=3, payload=b"y").serialize())
    assert not write_transport_seq(plain, 5, 7) and read_transport_seq(plain, 5) is None
    # the two-byte form (0x1000) on read and write
    two = struct.pack("!BBHII", 0x90, 100, 1, 2, 3) + struct.pack("!HH", 0x1000, 2) + \
        bytes([7, 1, 0xAA, 5, 2, 0x12, 0x34, 0]) + b"payload"
    assert read_transport_seq(two, 5) == 0x1234
    buf = bytearray(two)
    assert write_transport_seq(buf, 5, 0xBEEF) and read_transport_seq(buf, 5) == 0xBEEF
    assert buf[:21] == two[:21] and buf[23:] == two[23:]


def test_arrival_log_reports_each_packet_once_with_losses():
    log = ArrivalLog(size=64)
    assert log.feedback(1, 2) == []
    for seq in (65534, 65535, 1, 2):  # 0 lost, wrap-around
        log.add(seq, 10_000 + 1_000 * ((seq + 2) & 0xFFFF))
    [pkt] = log.feedback(1, 2)
    fb = parse_feedback(pkt, 0, len(pkt))
    assert fb.base_seq == 65534 and fb.arrivals == [10_000, 11_000, None, 13_000, 14_000]
    assert log.feedback(1, 2) == []
    log.add(0, 99_000)  # too late: already reported lost
    log.add(3, 20_000)
    log.add(4, 20_000 + 9_000_000)  # 9 s later: a second packet
    pkts = log.feedback(1, 2)
    assert [parse_feedback(p, 0, len(p)).base_seq for p in pkts] == [3, 4]
    assert [parse_feedback(p, 0, len(p)).fb_count for p in pkts] == [1, 2]
    for seq in range(5, 5 + 200):  # more than the ring holds: the oldest are reported lost
        log.add(seq, 10_000_000 + seq)
    fb = parse_feedback(log.feedback(1, 2)[0], 0, 10_000)
    assert fb.base_seq == 5 + 200 - 64 and len(fb.arrivals) == 64


# ---- the estimator -----------------------------------------------------------------------------
class Link:
    """A sender at `rate` bit/s (1200-byte packets) over a path with a bottleneck of
    `capacity` bit/s (a queue that grows when we send faster), one-way delay 30 ms, random loss;
    feedback every 100 ms."""

    def __init__(self, est: bwe.Estimator, seed: int = 1) -> None:
        self.est = est
        self.t = 0.0  # our clock, s
        self.queue_free = 0.0  # when the bottleneck is free again
        self.rnd = random.Random(seed)

    def run(self, seconds: float, rate: float, capacity: float | None = None, loss: float = 0.0) -> list[float]:
        estimates = []
        end = self.t + seconds
        while self.t < end:
            packets = []
            n = max(1, int(rate * 0.1 / 9600))
            for i in range(n):
                send = self.t + i * 0.1 / n
                if capacity is None:
                    arrive = send + 0.030 + self.rnd.random() * 0.001
                else:
                    start = max(send, self.queue_free)
                    self.queue_free = start + 9600 / capacity
                    arrive = self.queue_free + 0.030
                lost = self.rnd.random() < loss
                packets.append((send, None if lost else int(arrive * 1e6), 1200))
            self.t += 0.1
            estimates.append(self.est.on_feedback(packets, self.t + 0.03))
        return estimates


def test_steady_delays_let_the_estimate_rise():
    est = bwe.Estimator()
    got = Link(est).run(5.0, rate=800_000)
    assert est.state == bwe.NORMAL
    assert got[-1] > 1_500_000 and got == sorted(got)  # grows, never falls
    assert est.acked_bps == pytest.approx(800_000, rel=0.1)


def test_growing_queue_drops_the_estimate_below_the_sending_rate():
    est = bwe.Estimator(start_bps=2_000_000)
    link = Link(est)
    link.run(2.0, rate=1_000_000)
    got = link.run(3.0, rate=1_500_000, capacity=1_000_000)  # 50 % more than the bottleneck
    assert min(got) < 1_000_000  # about 0.85 x what gets through
    assert got[-1] < 1_500_000 and est.link_capacity == pytest.approx(1_000_000, rel=0.15)
    # the sender backs off to what the estimate allows: the queue drains and it recovers
    link.run(2.0, rate=700_000, capacity=1_000_000)
    after = link.run(4.0, rate=700_000, capacity=1_000_000)
    assert after[-1] > after[0] and est.state != bwe.OVERUSE


def test_heavy_loss_drops_the_estimate_and_it_recovers():
    est = bwe.Estimator(start_bps=2_000_000)
    link = Link(est)
    link.run(1.0, rate=1_000_000)
    before = est.estimate
    lossy = link.run(3.0, rate=1_000_000, loss=0.3)
    assert lossy[-1] < 0.6 * before and est.last_loss > 0.2
    low = est.estimate
    clean = link.run(5.0, rate=1_000_000)
    assert clean[-1] > 1.4 * low


def test_moderate_loss_holds_and_bounds():
    est = bwe.Estimator(start_bps=1_000_000)
    link = Link(est)
    got = link.run(3.0, rate=2_000_000, loss=0.05)  # between 2 and 10 %: the loss cap holds
    assert est.loss_bps == bwe.MAX_BPS and got[-1] > 1_000_000
    est2 = bwe.Estimator(start_bps=60_000)
    Link(est2).run(5.0, rate=100_000, loss=0.9)
    assert est2.estimate == bwe.MIN_BPS
    est3 = bwe.Estimator(start_bps=19_000_000)
    Link(est3).run(5.0, rate=100_000)
    assert est3.estimate == bwe.MAX_BPS


# ---- a bridge with real transports -----------------------------------------------------------------
TCC_ID = 5  # default_media()
VP8_PT = 100
LAYERS = (0x1000, 0x2000, 0x3000)
LAYER_PACKETS = ((1, 250), (2, 500), (3, 1000))  # per frame: packets, bytes each (~60, 240, 720 kbit/s)
KEY_HEADER = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A]) + struct.pack("<HH", 640, 360)
DELTA_HEADER = bytes([0x11, 0x02, 0x00])


class Client:
    """A participant without RTCPeerConnection: the bridge's transport with the roles swapped
    (loadgen.synthetic.ClientTransport: real ICE, DTLS and SRTP). As a receiver it numbers
    nothing but reports what arrives as transport-cc feedback every 50 ms, as a browser does,
    optionally through an emulated bottleneck of `capacity` bit/s (a queue: reported arrival
    times grow when more arrives than it drains). As a sender it stamps its own
    transport-wide sequence numbers."""

    def __init__(self, ep_id: str, capacity: float | None = None) -> None:
        self.id = ep_id
        self.capacity = capacity
        self.rtcp_in: list[bytes] = []
        self.transport = ClientTransport("127.0.0.1", on_rtp=self._rtp, on_rtcp=self.rtcp_in.append)
        self.log = ArrivalLog()
        self.queue_free = 0.0
        self.received = 0
        self.tcc_seq = 0
        self.slots: list = []

    def _rtp(self, data: bytes) -> None:
        self.received += 1
        seq = read_transport_seq(data, TCC_ID)
        if seq is None:
            return
        now = time.monotonic()
        if self.capacity is not None:
            self.queue_free = max(now, self.queue_free) + len(data) * 8 / self.capacity
            now = self.queue_free
        self.log.add(seq, int(now * 1e6))

    async def join(self, bridge, meeting: str, sources=(), groups=()) -> None:
        media = default_media()
        res = await bridge.handle(colibri2.ConferenceModify(meeting_id=meeting, create=True, endpoints=[
            colibri2.Endpoint(id=self.id, create=True, media=media)]))
        mine = res.endpoints[0]
        self.slots = mine.sources
        await self.transport.gather()
        await bridge.handle(colibri2.ConferenceModify(meeting_id=meeting, endpoints=[colibri2.Endpoint(
            id=self.id, media=media, transport=self.transport.local_description(), sources_given=True,
            sources=list(sources), groups=list(groups))]))
        await self.transport.start(mine.transport)

    async def feedback_loop(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            for p in self.log.feedback(0x5EED, 0):
                self.transport.send_rtcp(p)

    def send(self, ssrc: int, seq: int, ts: int, payload: bytes, marker: bool = False, skip_tcc: int = 0,
             pt: int = VP8_PT) -> int:
        """One RTP packet with abs-send-time (id 3) and our transport-wide seq (id 5)."""
        self.tcc_seq = (self.tcc_seq + skip_tcc) & 0xFFFF
        tcc = self.tcc_seq
        self.tcc_seq = (tcc + 1) & 0xFFFF
        head = struct.pack("!BBHII", 0x90, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
        head += struct.pack("!HH", 0xBEDE, 2) + bytes([0x32, 0, 0, 0, (TCC_ID << 4) | 1, tcc >> 8, tcc & 0xFF, 0])
        self.transport.send_rtp(head + payload)
        return tcc

    def feedback_acked(self) -> set[int]:
        out: set[int] = set()
        for data in self.rtcp_in:
            for pt, fmt, off, length in rtp.iter_rtcp(data):
                if pt == 205 and fmt == 15:
                    fb = parse_feedback(data, off, length)
                    assert fb is not None
                    out.update((fb.base_seq + i) & 0xFFFF for i, t in enumerate(fb.arrivals) if t is not None)
        return out


async def simulcast_sender(alice: Client) -> None:
    """Three VP8 layers at 30 fps, a keyframe on every layer every 10 frames."""
    seq = [100, 2000, 30000]
    start = time.monotonic()
    frame = 0
    while True:
        key = frame % 10 == 0
        for layer, (count, size) in enumerate(LAYER_PACKETS):
            for k in range(count):
                desc = bytes([0x90 if k == 0 else 0x80, 0xC0, 0x80 | (frame >> 8 & 0x7F), frame & 0xFF, frame & 0xFF])
                vp8_header = (KEY_HEADER if key else DELTA_HEADER) if k == 0 else b""
                body = desc + vp8_header
                alice.send(LAYERS[layer], seq[layer], frame * 3000, body + bytes(size - len(body)),
                           marker=k == count - 1)
                seq[layer] += 1
        frame += 1
        await asyncio.sleep(max(0.0, start + frame / 30 - time.monotonic()))


async def test_congested_receiver_gets_a_lower_layer_and_an_uncongested_one_keeps_the_top():
    """bob's link takes everything; carol's has a 400 kbit/s bottleneck (her feedback shows the
    queue growing while the top layer, 720 kbit/s, is forwarded to her). Both negotiated
    transport-cc: the bridge's estimate for carol falls below the top layer and her slot moves
    down; bob's estimate stays above it and he keeps the top layer."""
    b = Bridge(BridgeSection(id="jvbtcc", last_n=2, audio_slots=1, endpoint_timeout=60))
    await b.start()
    alice, bob, carol = Client("alice"), Client("bob"), Client("carol", capacity=400_000)
    tasks: list[asyncio.Task] = []
    try:
        video = [Source(s, "video", "alice", "alice-v0") for s in LAYERS]
        await alice.join(b, "tcc", video, [SourceGroup("SIM", list(LAYERS))])
        await asyncio.gather(bob.join(b, "tcc"), carol.join(b, "tcc"))
        conf = b.conferences["tcc"]
        tasks = [asyncio.ensure_future(c.feedback_loop()) for c in (bob, carol)]
        tasks.append(asyncio.ensure_future(simulcast_sender(alice)))
        recv_bob, recv_carol = conf.endpoints["bob"], conf.endpoints["carol"]
        slot_bob = next(s for s in recv_bob.video_slots if s.source == LAYERS[0])
        slot_carol = next(s for s in recv_carol.video_slots if s.source == LAYERS[0])
        await until(lambda: slot_bob.layer == 2 and slot_carol.layer == 2, 10, "both on the top layer")
        await until(lambda: slot_carol.layer < 2, 15, "carol moved down")
        stats_carol, stats_bob = recv_carol.stats(), recv_bob.stats()
        assert stats_carol["bwe_source"] == "transport-cc" and stats_bob["bwe_source"] == "transport-cc"
        top = conf.owner_of[LAYERS[2]].bitrate(LAYERS[2])
        assert top is not None and stats_carol["bwe_bps"] < top < stats_bob["bwe_bps"]
        assert recv_carol.bwe.link_capacity is not None and recv_carol.bwe.link_capacity < 550_000
        # carol's layer 1 then fits, and does not flap back up; bob keeps the top layer throughout
        await until(lambda: slot_carol.layer == 1, 5, "carol on layer 1")
        n = carol.received
        await until(lambda: carol.received > n + 60, 5, "carol still receiving")
        assert slot_carol.target == 1 and slot_carol.layer == 1
        assert slot_bob.layer == 2 and slot_bob.switches == 1
        assert recv_bob.bwe.state != "overuse" and recv_bob.bwe.link_capacity is None
    finally:
        for t in tasks:
            t.cancel()
        for c in (alice, bob, carol):
            await c.transport.stop()
        await b.stop()


async def test_bridge_sends_transport_cc_feedback_to_a_sender():
    """What alice sends with transport-wide sequence numbers is acknowledged in feedback, a
    number she skipped is reported lost, and the feedback's arrival times are plausible."""
    b = Bridge(BridgeSection(id="jvbtcc2", last_n=2, audio_slots=1, endpoint_timeout=60))
    await b.start()
    alice, bob = Client("alice"), Client("bob")
    try:
        await alice.join(b, "fb", [Source(0x4242, "video", "alice", "alice-v0")])
        await bob.join(b, "fb")
        sent = []
        for i in range(100):
            sent.append(alice.send(0x4242, i, i * 3000, b"\x10\x02\x00" + bytes(300), skip_tcc=1 if i == 50 else 0))
            if i % 10 == 9:
                await asyncio.sleep(0.01)
        assert sent[50] == sent[49] + 2  # one number skipped: never sent
        await until(lambda: alice.feedback_acked() >= set(sent), 5, "feedback for every packet")
        assert (sent[49] + 1) not in alice.feedback_acked()
        lost = []
        arrivals = []
        for data in alice.rtcp_in:
            for pt, fmt, off, length in rtp.iter_rtcp(data):
                if pt == 205 and fmt == 15:
                    fb = parse_feedback(data, off, length)
                    assert fb.sender_ssrc == b.feedback_ssrc_video and fb.media_ssrc == 0x4242
                    lost += [(fb.base_seq + i) & 0xFFFF for i, t in enumerate(fb.arrivals) if t is None]
                    arrivals += [t for t in fb.arrivals if t is not None]
        assert lost == [sent[49] + 1]
        assert max(arrivals) - min(arrivals) < 2_000_000  # all within the two seconds this took
        # bob, who sends nothing, gets no feedback; the receivers' copies carry the bridge's numbers
        assert not any(pt == 205 and fmt == 15 for d in bob.rtcp_in for pt, fmt, _, _ in rtp.iter_rtcp(d))
        assert bob.log.started and bob.log.high - bob.log.next_seq < 200
    finally:
        for c in (alice, bob):
            await c.transport.stop()
        await b.stop()


async def test_video_lost_on_the_way_in_is_asked_for_again(monkeypatch):
    """Packets missing from alice's video (a gap in sequence numbers) make the bridge send her a
    NACK for exactly those, at once and once more if they still do not come; what she resends
    reaches bob. A gap too large to repair asks for a keyframe instead."""
    from bridge import conference as conference_mod
    monkeypatch.setattr(conference_mod, "PLI_INTERVAL", 0.0)  # the PLI at bob's join must not hide ours
    b = Bridge(BridgeSection(id="jvbnack", last_n=2, audio_slots=1, endpoint_timeout=60))
    await b.start()
    alice, bob = Client("alice"), Client("bob")
    try:
        await alice.join(b, "nack", [Source(0x4343, "video", "alice", "alice-v0"),
                                     Source(0x4344, "video", "alice", "alice-v0")], [SourceGroup("FID", [0x4343, 0x4344])])
        await bob.join(b, "nack")
        conf = b.conferences["nack"]

        def nacked() -> list[list[int]]:
            return [rtp.parse_nack(d, off, length) for d in alice.rtcp_in
                    for pt, fmt, off, length in rtp.iter_rtcp(d) if pt == 205 and fmt == 1]

        def payload(i: int) -> bytes:
            return b"\x10\x02\x00" + struct.pack("!H", i) + bytes(200)

        await until(lambda: conf.endpoints["bob"].video_slots[0].source == 0x4343, 5, "bob's slot")
        for i in range(20):
            if i not in (11, 12):
                alice.send(0x4343, 1000 + i, i * 3000, payload(i))
        await until(lambda: [1011, 1012] in nacked(), 5, "a NACK for the two missing packets")
        # not resent: asked once more; then resent, and forwarded to bob
        await until(lambda: nacked().count([1011, 1012]) == 2, 5, "the NACK repeated")
        # resent on her RTX stream (RFC 4588: PT 96, the original number leading the payload)
        got = bob.received
        alice.send(0x4343, 1011, 11 * 3000, payload(11))
        alice.send(0x4344, 1, 12 * 3000, struct.pack("!H", 1012) + payload(12), pt=96)
        await until(lambda: bob.received >= got + 2, 5, "the resent packets at bob")
        assert conf.nacks_sent == 2 and conf.rtx_received == 1
        cache = conf.endpoints["alice"].video_cache[0x4343]
        assert cache[1012 % len(cache)] is not None and cache[1012 % len(cache)][0] == 1012
        assert rtp.rtp_ssrc(cache[1012 % len(cache)][1]) == 0x4343
        # a gap of hundreds: a keyframe request, not a NACK
        plis = len([1 for d in alice.rtcp_in for pt, fmt, _, _ in rtp.iter_rtcp(d) if pt == 206 and fmt == 1])
        alice.send(0x4343, 1400, 400 * 3000, payload(400))
        await until(lambda: len([1 for d in alice.rtcp_in for pt, fmt, _, _ in rtp.iter_rtcp(d)
                                 if pt == 206 and fmt == 1]) > plis, 5, "a PLI for the big gap")
        assert conf.nacks_sent == 2
    finally:
        for c in (alice, bob):
            await c.transport.stop()
        await b.stop()
