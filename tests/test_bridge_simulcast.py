"""Simulcast forwarding: the VP8 descriptor (bridge/vp8.py), layer choice and switching at
keyframes (bridge/simulcast.py, Slot.rewrite_layer / watch_keyframe, Conference routes).

Unit tests use hand-built descriptors (aiortc's own VP8 descriptor parser as an independent
check); the conference tests feed synthetic three-layer VP8 RTP into `Conference.on_rtp` with
fake transports that record what the bridge sends.
"""
from __future__ import annotations

import itertools
import random
import struct

import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor

from bridge import conference as conference_mod
from bridge import rtp, vp8
from bridge.channel import handle_message
from bridge.conference import Conference
from bridge.endpoint import Endpoint
from bridge.simulcast import UNLIMITED, layer_for_height
from jitsi_protocols.model import Source, SourceGroup
from jitsi_protocols.sdp import default_media

VP8_PT = 100  # default_media()


# ---- VP8 payload descriptor ----------------------------------------------------------------------
def descriptor(start: bool = True, partition: int = 0, picture_id: int | None = None, wide: bool = True,
               tl0: int | None = None, tid: int | None = None, keyidx: int | None = None,
               non_ref: bool = False) -> bytes:
    """RFC 7741 4.2, built by hand."""
    ext = (0x80 if picture_id is not None else 0) | (0x40 if tl0 is not None else 0) \
        | (0x20 if tid is not None else 0) | (0x10 if keyidx is not None else 0)
    b0 = (0x80 if ext else 0) | (0x20 if non_ref else 0) | (0x10 if start else 0) | partition
    out = bytearray([b0])
    if ext:
        out.append(ext)
        if picture_id is not None:
            out += struct.pack("!H", 0x8000 | picture_id) if wide else bytes([picture_id & 0x7F])
        if tl0 is not None:
            out.append(tl0)
        if tid is not None or keyidx is not None:
            out.append(((tid or 0) << 6) | (0x20 if tid is not None else 0) | (keyidx or 0))
    return bytes(out)


KEY_HEADER = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A]) + struct.pack("<HH", 640, 360)  # P=0: keyframe
DELTA_HEADER = bytes([0x11, 0x02, 0x00])  # P=1


@pytest.mark.parametrize("wide", [True, False])
@pytest.mark.parametrize("tl0", [None, 200])
def test_parse_picture_id_and_tl0(wide, tl0):
    pid = 0x1234 if wide else 0x55
    d = descriptor(picture_id=pid, wide=wide, tl0=tl0, tid=1, keyidx=3)
    pkt = b"\x00" * 5 + d + KEY_HEADER  # at an offset, as after an RTP header
    got = vp8.parse(pkt, 5)
    assert got is not None
    assert got.picture_id == pid and got.picture_id_bits == (15 if wide else 7)
    assert got.tl0picidx == tl0
    assert got.tid == 1 and got.layer_sync and got.keyidx == 3
    assert got.size == len(d) and got.start and got.partition == 0 and got.keyframe
    assert pkt[got.picture_id_at] & 0x80 == (0x80 if wide else 0)
    # aiortc reads the same fields
    ref, rest = VpxPayloadDescriptor.parse(pkt[5:])
    assert ref.picture_id == pid and ref.tl0picidx == tl0 and rest == KEY_HEADER
    assert vp8.is_keyframe(pkt, 5)
    assert vp8.keyframe_size(pkt, 5) == (640, 360)


def test_keyframe_or_not():
    key = descriptor(picture_id=7) + KEY_HEADER
    assert vp8.is_keyframe(key, 0) and vp8.parse(key, 0).keyframe
    delta = descriptor(picture_id=8) + DELTA_HEADER
    assert not vp8.is_keyframe(delta, 0) and not vp8.parse(delta, 0).keyframe
    assert vp8.keyframe_size(delta, 0) is None
    # a keyframe's later packets (S=0) and other partitions do not start it
    assert not vp8.is_keyframe(descriptor(start=False, picture_id=7) + KEY_HEADER, 0)
    assert not vp8.is_keyframe(descriptor(partition=1, picture_id=7) + KEY_HEADER, 0)
    # no extension at all: one byte of descriptor
    short = descriptor() + KEY_HEADER
    assert vp8.parse(short, 0).size == 1 and vp8.is_keyframe(short, 0)
    assert vp8.parse(short, 0).picture_id is None
    # the padding (end) hides the payload header: not a keyframe
    assert not vp8.is_keyframe(key, 0, end=len(key) - len(KEY_HEADER))


def test_garbage_never_raises():
    full = descriptor(picture_id=0x1234, tl0=9, tid=2, keyidx=1) + KEY_HEADER
    for n in range(len(full)):
        cut = full[:n]
        for off in (0, 1, n, n + 3, -1):
            vp8.parse(cut, off)
            vp8.is_keyframe(cut, off)
            vp8.keyframe_size(cut, off)
            vp8.rewrite(bytearray(cut), off, 1, 2)
    assert vp8.parse(full[:3], 0) is None  # 15-bit PictureID cut in half
    assert vp8.parse(b"", 0) is None and not vp8.is_keyframe(b"", 0)
    rnd = random.Random(7)
    for _ in range(2000):
        blob = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 12)))
        vp8.parse(blob, 0)
        vp8.is_keyframe(blob, 0)
        vp8.rewrite(bytearray(blob), 0, 5, 5)
    assert vp8.payload_end(b"\xa0" + b"\x00" * 11) is None  # padding bit, count 0
    assert vp8.payload_end(b"\xa0" + b"\x00" * 12 + b"\x02") == 12


@pytest.mark.parametrize("wide", [True, False])
def test_rewrite_keeps_width(wide):
    buf = bytearray(descriptor(picture_id=5, wide=wide, tl0=250, tid=0) + DELTA_HEADER)
    before = bytes(buf)
    assert vp8.rewrite(buf, 0, picture_id=0x7FFF + 3, tl0picidx=258)
    d = vp8.parse(buf, 0)
    assert d.picture_id == (2 if wide else 2 & 0x7F) and d.picture_id_bits == (15 if wide else 7)
    assert d.tl0picidx == 2 and d.tid == 0 and len(buf) == len(before)
    assert buf[d.size:] == DELTA_HEADER
    nothing = bytearray(descriptor() + DELTA_HEADER)  # no PictureID or TL0PICIDX: untouched
    assert vp8.rewrite(nothing, 0, 1, 1) and nothing == descriptor() + DELTA_HEADER
    assert not vp8.rewrite(bytearray(b""), 0, 1, 1)


def test_layer_for_height():
    assert [layer_for_height(h, 3) for h in (0, 1, 180, 181, 360, 361, 720, UNLIMITED)] == [-1, 0, 0, 1, 1, 2, 2, 2]
    assert layer_for_height(720, 2) == 1 and layer_for_height(720, 1) == 0


# ---- a conference with a synthetic simulcast sender ------------------------------------------------
class FakeTransport:
    state = "connected"

    def __init__(self) -> None:
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []

    def send_rtp(self, data: bytes) -> None:
        self.rtp.append(data)

    def send_rtcp(self, data: bytes) -> None:
        self.rtcp.append(data)

    def plis(self) -> list[int]:
        return [rtp.rtcp_media_ssrc(d, off) for d in self.rtcp for pt, fmt, off, _ in rtp.iter_rtcp(d)
                if pt == 206 and fmt == 1]


class FakeBridge:
    feedback_ssrc = 11
    feedback_ssrc_video = 12


LAYERS = (0x1000, 0x2000, 0x3000)  # SIM group, lowest first
RTX = (0x1001, 0x2001, 0x3001)


class SimulcastSender:
    """Three VP8 layers at 30 fps; layer i sends i+1 packets a frame. Each packet's payload
    after the VP8 payload header says (layer, frame number). Keyframes on the first frame, every
    `gop` frames, and on the next frame after a PLI for the layer (`pli_delay` frames late)."""

    def __init__(self, conf: Conference, ep: Endpoint, gop: int = 1000, pli_delay: int = 3) -> None:
        self.conf, self.ep = conf, ep
        self.gop, self.pli_delay = gop, pli_delay
        rnd = random.Random(1)
        self.seq = [rnd.getrandbits(16) for _ in LAYERS]
        self.ts = [rnd.getrandbits(32) for _ in LAYERS]
        self.pid = [0x7FFF - 5 + 40 * i for i in range(3)]  # layer 0 wraps soon
        self.tl0 = [250 + i for i in range(3)]
        self.frame = 0
        self.key_at: list[int | None] = [0, 0, 0]
        self.plis_seen = 0
        self.sent: list[tuple[int, int, bool]] = []  # (layer, frame, keyframe) per packet sent

    def packet(self, layer: int, start: bool, marker: bool, key: bool, ext: bool) -> bytes:
        b0 = 0x90 if ext else 0x80
        head = struct.pack("!BBHII", b0, (0x80 if marker else 0) | VP8_PT, self.seq[layer], self.ts[layer],
                           LAYERS[layer])
        if ext:  # one-byte header extensions: abs-send-time (id 3), padded
            head += struct.pack("!HH", 0xBEDE, 1) + bytes([0x32, 1, 2, 3])
        d = descriptor(start=start, picture_id=self.pid[layer], tl0=self.tl0[layer], tid=0)
        vp8_header = (KEY_HEADER if key else DELTA_HEADER) if start else b""
        self.seq[layer] = (self.seq[layer] + 1) & 0xFFFF
        return head + d + vp8_header + struct.pack("!BH", layer, self.frame) + b"\x00" * 50

    def send_frame(self) -> None:
        plis = self.ep.transport.plis()
        for ssrc in plis[self.plis_seen:]:
            if ssrc in LAYERS:
                i = LAYERS.index(ssrc)
                if self.key_at[i] is None:
                    self.key_at[i] = self.frame + self.pli_delay
        self.plis_seen = len(plis)
        for layer in range(3):
            key = self.frame % self.gop == 0 or self.key_at[layer] == self.frame
            if key:
                self.key_at[layer] = None
            n = layer + 1
            for k in range(n):
                self.sent.append((layer, self.frame, key))
                self.conf.on_rtp(self.ep, self.packet(layer, k == 0, k == n - 1, key, ext=k % 2 == 0))
            self.ts[layer] = (self.ts[layer] + 3000) & 0xFFFFFFFF
            self.pid[layer] = (self.pid[layer] + 1) & 0x7FFF
            self.tl0[layer] = (self.tl0[layer] + 1) & 0xFF
        self.frame += 1


def make_conference(monkeypatch) -> tuple[Conference, Endpoint, Endpoint]:
    monkeypatch.setattr(conference_mod, "PLI_INTERVAL", 0.0)
    conf = Conference(FakeBridge(), "sim")  # type: ignore[arg-type]
    taken: set[int] = set()
    sender, recv = Endpoint(conf, "alice"), Endpoint(conf, "bob")
    for ep in (sender, recv):
        ep.make_slots(1, 2, taken)
        ep.set_media(default_media())
        ep.transport = FakeTransport()  # type: ignore[assignment]
        conf.add(ep)
    video = [Source(s, "video", "alice", "alice-v0") for s in LAYERS + RTX]
    sender.set_sources([Source(0x99, "audio", "alice", "alice-a0")] + video,
                       [SourceGroup("SIM", list(LAYERS))] + [SourceGroup("FID", [m, r]) for m, r in zip(LAYERS, RTX)])
    conf.reassign()
    return conf, sender, recv


def received(recv: Endpoint) -> list[tuple[int, int, int, int, int, int, bool, int, int]]:
    """(ssrc, seq, ts, picture id, tl0picidx, layer, keyframe start, frame, pid bits) per packet."""
    out = []
    for data in recv.transport.rtp:
        off = rtp.payload_offset(data)
        d = vp8.parse(data, off)
        body = off + d.size + ((len(KEY_HEADER) if d.keyframe else len(DELTA_HEADER)) if d.start else 0)
        layer, frame = struct.unpack_from("!BH", data, body)
        out.append((rtp.rtp_ssrc(data), rtp.rtp_seq(data), rtp.rtp_timestamp(data), d.picture_id,
                    d.tl0picidx, layer, d.keyframe, frame, d.picture_id_bits))
    return out


def constrain(recv: Endpoint, height: int) -> None:
    handle_message(recv, {"colibriClass": "ReceiverVideoConstraints", "defaultConstraints": {"maxHeight": height}})


def test_endpoint_sees_one_logical_source(monkeypatch):
    conf, sender, recv = make_conference(monkeypatch)
    assert set(sender.logical) == {0x99, LAYERS[0]}
    assert sender.simulcast == {LAYERS[0]: LAYERS}
    assert sender.layers == {s: (LAYERS[0], i) for i, s in enumerate(LAYERS)}
    assert not set(RTX) & set(sender.forwarded)
    slot = next(s for s in recv.video_slots if s.source is not None)
    assert slot.source == LAYERS[0] and slot.layers == LAYERS
    assert [s for s in recv.video_slots if s.source is not None] == [slot]  # one slot, not three
    assert slot.target == 2  # no constraints: the top layer
    assert LAYERS[2] in conf.routes and LAYERS[0] not in conf.routes and LAYERS[1] not in conf.routes


def test_switch_up_and_down_on_keyframes_only(monkeypatch):
    conf, sender, recv = make_conference(monkeypatch)
    slot = next(s for s in recv.video_slots if s.source is not None)
    src = SimulcastSender(conf, sender)
    constrain(recv, 180)
    assert slot.target == 0
    for _ in range(10):
        src.send_frame()
    assert slot.layer == 0
    sender.transport.rtcp.clear()
    src.plis_seen = 0
    constrain(recv, 720)  # a big tile: layer 2, once it has a keyframe
    assert slot.target == 2 and slot.layer == 0
    assert sender.transport.plis() == [LAYERS[2]]  # asked of the layer we want
    for _ in range(10):
        src.send_frame()
    assert slot.layer == 2 and slot.switches == 2  # (the first was onto layer 0)
    n_before_down = len(recv.transport.rtp)
    sender.transport.rtcp.clear()
    src.plis_seen = 0
    constrain(recv, 100)
    assert sender.transport.plis() == [LAYERS[0]]
    for _ in range(10):
        src.send_frame()
    assert slot.layer == 0 and slot.switches == 3
    assert len(recv.transport.rtp) > n_before_down

    got = received(recv)
    assert {g[0] for g in got} == {slot.out_ssrc}  # one SSRC
    for a, b in zip(got, got[1:]):  # seq continuous, PictureID and TL0PICIDX advance by 0 or 1
        assert b[1] == (a[1] + 1) & 0xFFFF
        assert b[3] in (a[3], (a[3] + 1) & 0x7FFF) and b[8] == 15
        assert b[4] in (a[4], (a[4] + 1) & 0xFF)
        assert (b[3] == a[3]) == (b[2] == a[2])  # a new picture is a new timestamp
        assert 0 <= (b[2] - a[2]) & 0xFFFFFFFF <= 3000
    # layer 1 never, each layer change at a keyframe start, and in the order 0 -> 2 -> 0
    runs = [got[0]]
    for a, b in zip(got, got[1:]):
        if b[5] != a[5]:
            runs.append(b)
    assert [r[5] for r in runs] == [0, 2, 0]
    assert all(r[6] for r in runs)
    # the switch up waited for the keyframe the PLI asked for: layer 2's delta frames before it
    # (sent after the constraint) were not forwarded
    up = runs[1]
    key_frame_no = up[7]
    assert any(layer == 2 and frame < key_frame_no and frame >= 10 for layer, frame, _ in src.sent)
    assert not any(g[5] == 2 and g[7] < key_frame_no for g in got)
    # nothing of a layer was forwarded while another layer was current
    forwarded_by_layer = {0: 0, 1: 0, 2: 0}
    for g in got:
        forwarded_by_layer[g[5]] += 1
    assert forwarded_by_layer[1] == 0
    assert sum(forwarded_by_layer.values()) == len(got)


def test_non_keyframe_never_switches_and_other_layers_cost_one_lookup(monkeypatch):
    conf, sender, recv = make_conference(monkeypatch)
    slot = next(s for s in recv.video_slots if s.source is not None)
    src = SimulcastSender(conf, sender, pli_delay=10 ** 6)  # the sender ignores PLIs
    constrain(recv, 180)
    for _ in range(3):
        src.send_frame()
    assert slot.layer == 0
    constrain(recv, 720)
    for _ in range(20):
        src.send_frame()
    assert slot.layer == 0 and slot.pending == LAYERS[2]  # no keyframe: still layer 0
    assert {g[5] for g in received(recv)} == {0}
    assert LAYERS[1] not in conf.routes  # nobody wants layer 1: not routed at all
    src.gop = 5  # a periodic keyframe comes along: switch then
    src.frame = 25
    src.send_frame()
    assert slot.layer == 2
    conf._measured -= 1.0  # a measurement: layer bitrates; a pending switch would ask again
    conf.measure()
    assert sender.bitrate(LAYERS[2]) > sender.bitrate(LAYERS[0]) > 0


def test_constraint_zero_stops_video_and_per_source_constraints(monkeypatch):
    conf, sender, recv = make_conference(monkeypatch)
    slot = next(s for s in recv.video_slots if s.source is not None)
    src = SimulcastSender(conf, sender)
    src.send_frame()
    assert slot.layer == 2
    constrain(recv, 0)
    assert slot.layer == -1 and not any(s in conf.routes for s in LAYERS)
    n = len(recv.transport.rtp)
    src.send_frame()
    assert len(recv.transport.rtp) == n
    assert sender.sent_ideal_height == 0  # nobody wants its video
    # per source (by source name) beats the default
    handle_message(recv, {"colibriClass": "ReceiverVideoConstraints", "defaultConstraints": {"maxHeight": 0},
                          "constraints": {"alice-v0": {"maxHeight": 360}}})
    assert slot.target == 1 and sender.sent_ideal_height == 360
    src.gop = 1
    src.send_frame()
    assert slot.layer == 1
    handle_message(recv, {"colibriClass": "ReceiverVideoConstraints", "constraints": {"alice": {"maxHeight": -1}}})
    assert slot.target == 2 and sender.sent_ideal_height == 720  # by endpoint id; -1: no limit
    handle_message(recv, {"colibriClass": "ReceiverVideoConstraints", "constraints": {"alice": {"maxHeight": "x"}},
                          "defaultConstraints": "nonsense"})  # ignored, never raises


def test_remb_congestion_lowers_the_layer(monkeypatch):
    conf, sender, recv = make_conference(monkeypatch)
    slot = next(s for s in recv.video_slots if s.source is not None)
    src = SimulcastSender(conf, sender, gop=10)
    for _ in range(30):
        src.send_frame()
    assert slot.layer == 2
    conf.measure(now=conf._measured + 1.0)  # the bitrates of the last "second"
    rates = [sender.bitrate(s) for s in LAYERS]
    assert rates[0] < rates[1] < rates[2]
    # a REMB above what bob gets changes nothing
    conf.on_rtcp(recv, rtp.build_remb(1234, int(rates[2] * 2), [slot.out_ssrc]))
    assert slot.target == 2
    # one below it: the budget holds layer 1 but not 2
    conf.on_rtcp(recv, rtp.build_remb(1234, int((rates[1] + rates[2]) / 2), [slot.out_ssrc]))
    assert slot.target == 1 and recv.bwe_limited_until > 0
    assert sender.transport.plis()[-1] == LAYERS[1]
    # the hold expires: back to what bob's constraints say
    for _ in range(30):
        src.send_frame()
    conf.measure(now=recv.bwe_limited_until + 0.1)
    assert slot.target == 2
    # a layer that stops arriving (0 bits/s over a measurement) is not waited for
    for _ in range(30):
        src.send_frame()
    stats = sender.stream_stats
    stats[LAYERS[2]].octets_prior = stats[LAYERS[2]].octets
    conf.measure(now=conf._measured + 1.0)
    assert slot.target == 1


def test_nack_answered_from_the_current_layer(monkeypatch):
    conf, sender, recv = make_conference(monkeypatch)
    slot = next(s for s in recv.video_slots if s.source is not None)
    src = SimulcastSender(conf, sender)
    constrain(recv, 180)
    for _ in range(3):
        src.send_frame()
    constrain(recv, 720)
    for _ in range(6):
        src.send_frame()
    assert slot.layer == 2
    got = recv.transport.rtp
    first_up = next(i for i, g in enumerate(received(recv)) if g[5] == 2)
    lost = got[first_up + 2]
    before_switch = got[first_up - 1]
    n = len(got)
    conf.on_rtcp(recv, rtp.build_nack(1234, slot.out_ssrc, [rtp.rtp_seq(lost), rtp.rtp_seq(before_switch)]))
    assert got[n:] == [lost]  # the same bytes again; the layer-0 packet is not in layer 2's cache


# ---- a real receiver decodes across switches -----------------------------------------------------
def encode_layers(frames: int = 12) -> list[list[tuple[bytes, bool]]]:
    """VP8 frames (keyframe first) at 320x180, 640x360 and 1280x720, encoded with libvpx."""
    from fractions import Fraction

    import av
    import numpy as np
    out = []
    for w, h, rate in ((320, 180, 150_000), (640, 360, 500_000), (1280, 720, 1_500_000)):
        ctx = av.CodecContext.create("libvpx", "w")
        ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
        ctx.time_base = Fraction(1, 30)
        ctx.bit_rate = rate
        ctx.gop_size = 1000
        ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        layer = []
        for i in range(frames):
            arr = np.zeros((h, w, 3), np.uint8)
            arr[:, :, 0] = (np.arange(w) * 255 // w)[None, :]
            arr[(i * 8) % h:(i * 8) % h + 20, :, 1] = 255
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            frame.time_base = ctx.time_base
            layer += [(bytes(p), p.is_keyframe) for p in ctx.encode(frame)]
        layer += [(bytes(p), p.is_keyframe) for p in ctx.encode(None)]
        assert layer[0][1] and not any(k for _, k in layer[1:])
        out.append(layer)
    return out


class SyntheticTransport(FakeTransport):
    """Stands in for a simulcast sender's transport: the bridge's PLIs land here."""

    last_received = 0.0
    stats: dict = {}

    def refresh_pair(self) -> None:
        pass

    async def stop(self) -> None:
        self.state = "closed"


async def test_aiortc_receiver_decodes_across_layer_switches():
    """A synthetic simulcast sender (libvpx frames at three sizes, packetized here) and a real
    aiortc receiver over ICE/DTLS-SRTP: the decoded size follows the receiver's constraints."""
    import asyncio
    import time

    from test_bridge_media import Peer

    from bridge.bridge import Bridge
    from jitsi_py.config import BridgeSection
    from jitsi_protocols import colibri2

    encoded = await asyncio.get_running_loop().run_in_executor(None, encode_layers)
    b = Bridge(BridgeSection(id="jvbsim", last_n=2, audio_slots=1, endpoint_timeout=60))
    await b.start()
    bob = Peer(b, "simc", "bob")
    sizes: list[tuple[int, int]] = []
    readers: list[asyncio.Task] = []
    feeder = None
    try:
        await b.handle(colibri2.ConferenceModify(meeting_id="simc", create=True, endpoints=[
            colibri2.Endpoint(id="alice", create=True, media=default_media())]))
        conf = b.conferences["simc"]
        alice = conf.endpoints["alice"]
        await alice.transport.stop()
        alice.transport = SyntheticTransport()
        video = [Source(s, "video", "alice", "alice-v0") for s in LAYERS]
        await b.handle(colibri2.ConferenceModify(meeting_id="simc", endpoints=[colibri2.Endpoint(
            id="alice", sources_given=True, sources=video, groups=[SourceGroup("SIM", list(LAYERS))])]))
        await bob.join()
        recv = conf.endpoints["bob"]
        handle_message(recv, {"colibriClass": "ReceiverVideoConstraints", "defaultConstraints": {"maxHeight": 180}})

        async def feed() -> None:
            rnd = random.Random(3)
            seq = [rnd.getrandbits(16) for _ in LAYERS]
            ts0 = [rnd.getrandbits(32) for _ in LAYERS]
            pid = [rnd.getrandbits(15) for _ in LAYERS]
            index = [0, 0, 0]
            seen = 0
            start = time.monotonic()
            n = 0
            while True:
                plis = alice.transport.plis()
                for ssrc in plis[seen:]:
                    if ssrc in LAYERS:
                        index[LAYERS.index(ssrc)] = 0  # start over at the keyframe
                seen = len(plis)
                for layer in range(3):
                    data, _ = encoded[layer][index[layer]]
                    index[layer] = (index[layer] + 1) % len(encoded[layer])
                    chunks = [data[i:i + 1000] for i in range(0, len(data), 1000)]
                    for k, chunk in enumerate(chunks):
                        head = struct.pack("!BBHII", 0x80, (0x80 if k == len(chunks) - 1 else 0) | VP8_PT,
                                           seq[layer], (ts0[layer] + 3000 * n) & 0xFFFFFFFF, LAYERS[layer])
                        seq[layer] = (seq[layer] + 1) & 0xFFFF
                        conf.on_rtp(alice, head + descriptor(start=k == 0, picture_id=pid[layer], tl0=n & 0xFF,
                                                             tid=0) + chunk)
                    pid[layer] = (pid[layer] + 1) & 0x7FFF
                n += 1
                await asyncio.sleep(max(0.0, start + n / 30 - time.monotonic()))

        async def read(track) -> None:
            while True:
                frame = await track.recv()
                sizes.append((frame.width, frame.height))

        feeder = asyncio.ensure_future(feed())
        readers = [asyncio.ensure_future(read(t)) for t in bob.tracks if t.kind == "video"]

        async def until(size: tuple[int, int], frames: int = 5) -> None:
            mark = len(sizes)
            while sum(1 for s in sizes[mark:] if s == size) < frames:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(until((320, 180)), 20)
        slot = next(s for s in recv.video_slots if s.source == LAYERS[0])
        assert slot.layer == 0
        handle_message(recv, {"colibriClass": "ReceiverVideoConstraints", "defaultConstraints": {"maxHeight": 720}})
        await asyncio.wait_for(until((1280, 720)), 10)
        assert slot.layer == 2
        handle_message(recv, {"colibriClass": "ReceiverVideoConstraints", "defaultConstraints": {"maxHeight": 360}})
        await asyncio.wait_for(until((640, 360)), 10)
        assert slot.layer == 1 and slot.switches == 3
        # each switch is clean: the sizes come in three runs, no frame of an old layer after a switch
        runs = [size for size, _ in itertools.groupby(sizes)]
        assert runs == [(320, 180), (1280, 720), (640, 360)]
    finally:
        for t in readers + ([feeder] if feeder else []):
            t.cancel()
        await bob.close()
        await b.stop()


# ---- the slot's per-packet part on other layouts -------------------------------------------------
def rtp_packet(ssrc: int, seq: int, ts: int, payload: bytes, pt: int = VP8_PT, padding: int = 0) -> bytes:
    b0 = 0x80 | (0x20 if padding else 0)
    tail = bytes(padding - 1) + bytes([padding]) if padding else b""
    return struct.pack("!BBHII", b0, pt, seq, ts, ssrc) + payload + tail


def test_slot_general_path_seven_bit_ids_padding_and_garbage():
    from bridge.slots import Slot
    slot = Slot("video", 0, 0xABC)
    slot.assign(LAYERS[0], "alice")
    slot.set_layers(LAYERS, frozenset([VP8_PT]))
    assert slot.set_target(0) and slot.pending == LAYERS[0]
    switched = []
    slot.on_switch = switched.append
    # not a keyframe: dropped while waiting
    def seven(pid: int) -> bytes:
        return descriptor(picture_id=pid & 0x7F, wide=False)
    assert slot.watch_keyframe(rtp_packet(LAYERS[0], 10, 0, seven(120) + DELTA_HEADER)) is None
    out = [slot.watch_keyframe(rtp_packet(LAYERS[0], 11, 0, seven(121) + KEY_HEADER))]
    assert switched == [slot] and slot.layer == 0 and slot.pending is None
    for i in range(12, 20):  # 7-bit ids wrap at 128
        out.append(slot.rewrite_layer(rtp_packet(LAYERS[0], i, 3000 * (i - 11), seven(110 + i) + DELTA_HEADER)))
    # a padding-only packet and a garbage payload keep their payload, only seq etc. change
    pad = rtp_packet(LAYERS[0], 20, 3000 * 9, b"", padding=20)
    out.append(slot.rewrite_layer(pad))
    assert out[-1][12:] == pad[12:]
    junk = rtp_packet(LAYERS[0], 21, 3000 * 9, b"\x80")
    out.append(slot.rewrite_layer(junk))
    assert out[-1][12:] == b"\x80"
    # switch to layer 1 (15-bit ids, TL0PICIDX): ids continue from the 7-bit ones
    slot.set_target(1)
    early = rtp_packet(LAYERS[1], 500, 77, descriptor(picture_id=9000, tl0=3) + DELTA_HEADER)
    assert slot.watch_keyframe(early) is None
    out.append(slot.watch_keyframe(rtp_packet(LAYERS[1], 501, 77, descriptor(picture_id=9001, tl0=4) + KEY_HEADER)))
    out.append(slot.rewrite_layer(rtp_packet(LAYERS[1], 502, 3077, descriptor(picture_id=9002, tl0=5) + DELTA_HEADER)))
    # a packet of layer 1 from before its keyframe is dropped: its number is taken
    assert slot.rewrite_layer(rtp_packet(LAYERS[1], 499, 0, descriptor(picture_id=8999, tl0=2) + DELTA_HEADER)) is None
    seqs = [rtp.rtp_seq(p) for p in out]
    assert all(b == (a + 1) & 0xFFFF for a, b in zip(seqs, seqs[1:]))
    assert {rtp.rtp_ssrc(p) for p in out} == {0xABC}
    pids = [vp8.parse(p, 12).picture_id for p in out if len(p) > 13 and vp8.parse(p, 12).picture_id is not None]
    assert all(b & 0x7F == (a + 1) & 0x7F for a, b in zip(pids, pids[1:])), pids
    assert vp8.parse(out[-1], 12).tl0picidx == (vp8.parse(out[-2], 12).tl0picidx + 1) & 0xFF
    ts = [rtp.rtp_timestamp(p) for p in out]
    assert (ts[-2] - ts[-4]) & 0xFFFFFFFF == 3000  # the new layer's first frame: one frame on


def test_non_vp8_switches_at_once_and_sr_only_for_the_current_layer(monkeypatch):
    conf, sender, recv = make_conference(monkeypatch)
    slot = next(s for s in recv.video_slots if s.source is not None)
    # a payload type that is not VP8: no keyframe detection, the first packet switches
    conf.on_rtp(sender, rtp_packet(LAYERS[2], 1, 1, b"\x00" * 20, pt=101))
    assert slot.layer == 2 and len(recv.transport.rtp) == 1
    sr = struct.pack("!BBHI", 0x80, 200, 6, LAYERS[2]) + struct.pack("!IIIII", 1, 2, 1000, 5, 500)
    conf.on_rtcp(sender, sr)
    assert len(recv.transport.rtcp) == 1 and rtp.rtcp_sender_ssrc(recv.transport.rtcp[0], 0) == slot.out_ssrc
    conf.on_rtcp(sender, struct.pack("!BBHI", 0x80, 200, 6, LAYERS[0]) + struct.pack("!IIIII", 1, 2, 1000, 5, 500))
    assert len(recv.transport.rtcp) == 1
