"""Transport-wide congestion control: the feedback packet and the sequence number extension
(bridge/twcc.py, with aiortc's RTCP parser as an independent check), and the estimator
(bridge/bwe.py) on synthetic feedback sequences."""
from __future__ import annotations

import random
import struct

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from bridge import bwe, rtp, twcc
from bridge.twcc import ArrivalLog, build_feedback, parse_feedback, read_transport_seq, write_transport_seq


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
