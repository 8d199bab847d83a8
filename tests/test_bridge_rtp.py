"""Unit tests for bridge/rtp.py: hand-built packets, aiortc's parsers as an independent check."""
from __future__ import annotations

import random
import struct

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    HeaderExtensionsMap,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSrPacket,
    RtpPacket,
    unpack_remb_fci,
)

from bridge import rtp
from bridge.rtp import (
    ReportBlock,
    StreamRewriter,
    audio_level,
    build_fir,
    build_nack,
    build_pli,
    build_receiver_report,
    build_remb,
    header_extension,
    is_rtcp,
    is_rtp,
    iter_fir,
    iter_rtcp,
    parse_nack,
    parse_remb,
    parse_report_blocks,
    padding_only,
    payload_offset,
    unwrap_rtx,
    rewrite_rtcp_ssrcs,
    rewrite_rtp,
    rtcp_media_ssrc,
    rtcp_sender_ssrc,
    rtp_marker,
    rtp_payload_type,
    rtp_seq,
    rtp_ssrc,
    rtp_timestamp,
    seq_delta,
    seq_newer,
    ts_delta,
)

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"


# ------------------------------------------------------------------------------------------------
# Hand-built packets


def make_rtp(pt: int, seq: int, ts: int, ssrc: int, *, marker: bool = False,
             csrcs: tuple[int, ...] = (), ext: tuple[int, bytes] | None = None,
             payload: bytes = b"", padding: int = 0) -> bytes:
    """RFC 3550 5.1 packet from its parts; ``ext`` is (profile, element bytes) and gets padded
    to 32 bits with zero bytes; ``padding`` bytes (count in the last one) are appended."""
    b0 = 0x80 | len(csrcs)
    if ext is not None:
        b0 |= 0x10
    if padding:
        b0 |= 0x20
    out = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    out += b"".join(struct.pack("!I", c) for c in csrcs)
    if ext is not None:
        profile, body = ext
        body += b"\x00" * (-len(body) % 4)
        out += struct.pack("!HH", profile, len(body) // 4) + body
    out += payload
    if padding:
        out += b"\x00" * (padding - 1) + bytes([padding])
    return out


OPUS_PAYLOAD = bytes(random.Random(1).randrange(256) for _ in range(71))


def opus_packet(seq: int = 4711, ts: int = 960 * 1000, ssrc: int = 0x1234ABCD,
                level: int = 42, voice: bool = True) -> bytes:
    """What Chrome sends for Opus: PT 111, one-byte extensions: abs-send-time (id 3, 3 bytes),
    then ssrc-audio-level (id 1, 1 byte), padded with zero bytes to a 32-bit boundary."""
    ext = bytes([0x32, 0x12, 0x34, 0x56]) + bytes([0x10, (0x80 if voice else 0) | level])
    return make_rtp(111, seq, ts, ssrc, ext=(0xBEDE, ext), payload=OPUS_PAYLOAD)


VP8_PAYLOAD = bytes([0x90, 0x80, 0x81, 0x23]) + bytes(range(200))


def vp8_packet() -> bytes:
    """VP8 with 2 CSRCs, marker, and two-byte header extensions (profile 0x1000, appbits 0):
    id 5 (2 bytes), a padding byte, id 200 (empty), id 17 (5 bytes), trailing padding."""
    ext = (bytes([5, 2, 0xAA, 0xBB]) + b"\x00" + bytes([200, 0]) +
           bytes([17, 5]) + b"hello")
    return make_rtp(96, 65535, 0xFFFFFF00, 0xCAFEBABE, marker=True,
                    csrcs=(0x11111111, 0x22222222), ext=(0x1000, ext), payload=VP8_PAYLOAD)


def ext_map(*pairs: tuple[int, str]) -> HeaderExtensionsMap:
    m = HeaderExtensionsMap()
    m.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=i, uri=u) for i, u in pairs]))
    return m


OPUS_MAP = ext_map((1, AUDIO_LEVEL_URI), (3, ABS_SEND_TIME_URI))


def sr_packet(ssrc: int, report_ssrc: int) -> bytes:
    """Sender report with one report block (RFC 3550 6.4.1)."""
    body = struct.pack("!IIIIII", ssrc, 0xE1234567, 0x89ABCDEF, 123456, 100, 20000)
    body += struct.pack("!IIIIII", report_ssrc, (5 << 24) | 7, 70000, 33, 0x45678901, 6553)
    return struct.pack("!BBH", 0x81, 200, (4 + len(body)) // 4 - 1) + body


def sdes_packet(ssrc: int, cname: bytes) -> bytes:
    chunk = struct.pack("!I", ssrc) + bytes([1, len(cname)]) + cname + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk


def compound() -> bytes:
    """SR + SDES(CNAME) + PLI, as a browser sends it."""
    return (sr_packet(0xAAAA0001, 0xBBBB0002) + sdes_packet(0xAAAA0001, b"user@host-x")
            + build_pli(0xAAAA0001, 0xBBBB0002))


# ------------------------------------------------------------------------------------------------
# Demux and fixed header


def test_demux():
    assert is_rtp(opus_packet()) and not is_rtcp(opus_packet())
    assert is_rtp(vp8_packet()) and not is_rtcp(vp8_packet())
    for pkt in (sr_packet(1, 2), build_pli(1, 2), build_nack(1, 2, [5]), build_remb(1, 10, [2])):
        assert is_rtcp(pkt) and not is_rtp(pkt)
    # marker + dynamic payload type lands above 223: still RTP
    marked = make_rtp(96, 1, 2, 3, marker=True)
    assert marked[1] == 224 and is_rtp(marked) and not is_rtcp(marked)
    # boundaries of the RFC 5761 range
    for b1, expect in ((191, False), (192, True), (223, True), (224, False)):
        pkt = bytes([0x80, b1]) + bytes(10)
        assert is_rtcp(pkt) is expect and is_rtp(pkt) is not expect
    # STUN (first byte 0/1), DTLS (20..63), short, wrong version
    for junk in (b"", b"\x80", bytes([0x00, 0x01]) + bytes(18), bytes([22, 0xFE]) + bytes(20),
                 bytes([0x40, 200, 0, 1]) + bytes(8), bytes([0x80, 111]) + bytes(9)):
        assert not is_rtp(junk)
    assert not is_rtcp(bytes([0x80, 200, 0]))


def test_fixed_header_accessors_match_aiortc():
    for pkt in (opus_packet(), vp8_packet(), make_rtp(0, 0, 0, 0)):
        ref = RtpPacket.parse(pkt)
        assert rtp_ssrc(pkt) == ref.ssrc
        assert rtp_seq(pkt) == ref.sequence_number
        assert rtp_timestamp(pkt) == ref.timestamp
        assert rtp_payload_type(pkt) == ref.payload_type
        assert rtp_marker(pkt) is bool(ref.marker)
    pkt = vp8_packet()
    assert (rtp_ssrc(pkt), rtp_seq(pkt), rtp_timestamp(pkt)) == (0xCAFEBABE, 65535, 0xFFFFFF00)
    assert rtp_payload_type(pkt) == 96 and rtp_marker(pkt)
    assert not rtp_marker(opus_packet()) and rtp_payload_type(opus_packet()) == 111
    # accessors work on bytearray and memoryview too
    assert rtp_ssrc(bytearray(pkt)) == rtp_ssrc(memoryview(pkt)) == 0xCAFEBABE


def test_rewrite_rtp_in_place_matches_aiortc():
    src = opus_packet()
    buf = bytearray(src)
    rewrite_rtp(buf, 0xDEADBEEF, 65536 + 7, 2**32 + 99)  # out-of-range values are wrapped
    assert len(buf) == len(src)
    assert buf[:2] == src[:2] and buf[12:] == src[12:]
    before, after = RtpPacket.parse(src, OPUS_MAP), RtpPacket.parse(bytes(buf), OPUS_MAP)
    assert (after.ssrc, after.sequence_number, after.timestamp) == (0xDEADBEEF, 7, 99)
    assert after.payload == before.payload == OPUS_PAYLOAD
    assert after.extensions.audio_level == before.extensions.audio_level == (True, 42)
    assert after.payload_type == 111 and after.marker == 0

    buf = bytearray(vp8_packet())
    rewrite_rtp(buf, 1, 2, 3)
    after = RtpPacket.parse(bytes(buf))
    assert (after.ssrc, after.sequence_number, after.timestamp) == (1, 2, 3)
    assert after.csrc == [0x11111111, 0x22222222] and after.marker == 1
    assert after.payload == VP8_PAYLOAD


# ------------------------------------------------------------------------------------------------
# Header extensions, audio level, payload offset


def test_one_byte_extensions():
    pkt = opus_packet()
    assert bytes(header_extension(pkt, 3)) == b"\x12\x34\x56"
    assert bytes(header_extension(pkt, 1)) == bytes([0x80 | 42])
    assert header_extension(pkt, 2) is None
    assert header_extension(pkt, 0) is None and header_extension(pkt, 15) is None
    assert header_extension(pkt, 200) is None  # out of range for the one-byte form
    mv = header_extension(memoryview(pkt), 3)
    assert isinstance(mv, memoryview) and mv.tobytes() == b"\x12\x34\x56"
    # padding bytes between elements are skipped
    ext = b"\x00\x00" + bytes([0x10, 0x05]) + b"\x00" + bytes([0x41]) + b"m7"
    pkt = make_rtp(111, 1, 2, 3, ext=(0xBEDE, ext), payload=b"x")
    assert bytes(header_extension(pkt, 1)) == b"\x05"
    assert bytes(header_extension(pkt, 4)) == b"m7"
    ref = RtpPacket.parse(pkt, ext_map((1, AUDIO_LEVEL_URI), (4, MID_URI)))
    assert ref.extensions.audio_level == (False, 5) and ref.extensions.mid == "m7"
    # ID 15 stops processing: later elements are not seen
    pkt = make_rtp(111, 1, 2, 3, ext=(0xBEDE, bytes([0x10, 0x05, 0xF0, 0x20, 0x07])))
    assert header_extension(pkt, 1) == b"\x05" and header_extension(pkt, 2) is None
    # an element running past the extension block
    pkt = make_rtp(111, 1, 2, 3, ext=(0xBEDE, bytes([0x10, 0x05, 0x2F])))
    assert header_extension(pkt, 2) is None and header_extension(pkt, 1) == b"\x05"


def test_two_byte_extensions_with_csrcs():
    pkt = vp8_packet()
    assert header_extension(pkt, 5) == b"\xAA\xBB"
    assert header_extension(pkt, 200) == b""  # empty element is legal in the two-byte form
    assert header_extension(pkt, 17) == b"hello"
    assert header_extension(pkt, 6) is None and header_extension(pkt, 0) is None
    assert header_extension(pkt, 256) is None
    assert audio_level(pkt, 200) is None  # empty: no level
    # appbits in the low nibble of the profile are allowed
    pkt = make_rtp(111, 1, 2, 3, ext=(0x100F, bytes([1, 1, 0x7F])))
    assert audio_level(pkt, 1) == (False, 127)
    # aiortc agrees on where the payload starts and on an element's value (id 17 as MID)
    ref = RtpPacket.parse(vp8_packet(), ext_map((17, MID_URI)))
    assert ref.payload == vp8_packet()[payload_offset(vp8_packet()):]
    assert ref.extensions.mid == "hello"
    assert ref.csrc == [0x11111111, 0x22222222]


def test_audio_level():
    assert audio_level(opus_packet(level=42, voice=True), 1) == (True, 42)
    assert audio_level(opus_packet(level=127, voice=False), 1) == (False, 127)
    assert audio_level(opus_packet(level=0, voice=True), 1) == (True, 0)
    assert audio_level(opus_packet(), 2) is None
    assert audio_level(make_rtp(111, 1, 2, 3, payload=b"abc"), 1) is None  # no extension
    # element whose length runs past the extension block
    assert audio_level(make_rtp(111, 1, 2, 3, ext=(0xBEDE, bytes([0, 0, 0x13]))), 1) is None
    # the level in a two-byte-form block (appbits set) and after padding bytes
    assert audio_level(make_rtp(111, 1, 2, 3, ext=(0x1003, bytes([0, 9, 1, 0x85]))), 9) == (
        True, 5)
    assert audio_level(make_rtp(111, 1, 2, 3, ext=(0xBEDE, bytes([0, 0, 0, 0x20, 0x7F]))), 2) == (
        False, 127)
    for level in (0, 1, 64, 126, 127):
        for voice in (False, True):
            pkt = opus_packet(level=level, voice=voice)
            assert audio_level(pkt, 1) == RtpPacket.parse(pkt, OPUS_MAP).extensions.audio_level
            assert audio_level(bytearray(pkt), 1) == (voice, level)


def test_payload_offset():
    pkt = opus_packet()
    assert payload_offset(pkt) == 12 + 4 + 8
    assert pkt[payload_offset(pkt):] == OPUS_PAYLOAD
    assert payload_offset(vp8_packet()) == 12 + 8 + 4 + 16
    assert vp8_packet()[payload_offset(vp8_packet())] == 0x90  # VP8 descriptor: X and S bits
    assert payload_offset(make_rtp(0, 1, 2, 3)) == 12
    assert payload_offset(make_rtp(0, 1, 2, 3, csrcs=(1, 2, 3))) == 24
    padded = make_rtp(96, 1, 2, 3, csrcs=(9,), payload=b"abcdef", padding=6)
    ref = RtpPacket.parse(padded)
    assert ref.padding_size == 6 and ref.payload == b"abcdef"
    assert payload_offset(padded) == 16
    # malformed: CSRCs past the end, extension past the end, bad padding
    assert payload_offset(make_rtp(0, 1, 2, 3, csrcs=(1, 2))[:19]) is None
    assert payload_offset(opus_packet()[:22]) is None
    assert payload_offset(opus_packet()[:15]) is None
    bad_pad = bytearray(padded)
    bad_pad[-1] = 0
    assert payload_offset(bad_pad) is None
    bad_pad[-1] = 30
    assert payload_offset(bad_pad) is None
    assert payload_offset(bytes([0x40]) + bytes(15)) is None  # version 1
    assert payload_offset(b"") is None


def test_unwrap_rtx():
    """RFC 4588: the original sequence number leads the RTX payload; unwrapped, the packet is
    the original one again (aiortc's own unwrap as the reference), extensions kept, the RTX
    wrapper's padding gone."""
    from aiortc.rtp import RtpPacket as AioPacket
    from aiortc.rtp import unwrap_rtx as aio_unwrap
    original = make_rtp(100, 4711, 90000, 0xAAAA, marker=True, ext=(0xBEDE, bytes([0x51, 0x12, 0x34])),
                        payload=b"vp8 payload")
    rtx = make_rtp(96, 17, 90000, 0xBBBB, marker=True, ext=(0xBEDE, bytes([0x51, 0x12, 0x34])),
                   payload=struct.pack("!H", 4711) + b"vp8 payload", padding=4)
    assert unwrap_rtx(rtx, 0xAAAA, 100) == original
    ref = aio_unwrap(AioPacket.parse(rtx), payload_type=100, ssrc=0xAAAA)
    assert (ref.sequence_number, ref.payload, ref.marker) == (4711, b"vp8 payload", 1)
    assert unwrap_rtx(make_rtp(96, 1, 2, 3, payload=b"x"), 0xAAAA, 100) is None  # no room for an OSN


def test_padding_only():
    """A pacer's probe (all padding, as Chrome sends on audio too with transport-cc) is told
    apart from media that happens to be padded; malformed padding counts as padding-only."""
    probe = make_rtp(111, 7, 8, 9, ext=(0xBEDE, bytes([0x51, 0x00, 0x07])), padding=200)
    assert padding_only(probe)
    assert not padding_only(make_rtp(96, 1, 2, 3, csrcs=(9,), payload=b"abcdef", padding=6))
    assert not padding_only(opus_packet())
    bad = bytearray(make_rtp(96, 1, 2, 3, payload=b"abcdef", padding=6))
    bad[-1] = 0
    assert padding_only(bad)


def _garbage_inputs() -> list[bytes]:
    rng = random.Random(5104)
    samples = [opus_packet(), vp8_packet(), compound(), build_nack(1, 2, [1, 5, 40]),
               build_remb(1, 10**6, [2, 3]), build_fir(1, 2, 3),
               build_receiver_report(1, [ReportBlock(2, 3, 4, 5, 6, 7, 8)])]
    out = []
    for s in samples:
        out.extend(s[:i] for i in range(len(s) + 1))  # every truncation
        for _ in range(50):  # random byte flips
            b = bytearray(s)
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            out.append(bytes(b))
    for _ in range(500):  # random bytes with plausible first bytes
        b = bytearray(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        if b:
            b[0] = rng.choice((0x80, 0x90, 0x9F, 0xB0, 0x81, 0x8F, rng.randrange(256)))
        if len(b) > 13:
            b[12:14] = rng.choice((b"\xBE\xDE", b"\x10\x00", b"\x10\x05", b"\xff\xff"))
        out.append(bytes(b))
    # crafted lengths: extension length field pointing far past the end
    out.append(make_rtp(0, 1, 2, 3)[:12].replace(b"\x80", b"\x90", 1) + b"\xBE\xDE\xFF\xFF\x10\x01")
    out.append(bytes([0x81, 205, 0xFF, 0xFF]) + bytes(8))
    return out


def test_garbage_never_raises():
    for data in _garbage_inputs():
        for ext_id in (1, 3, 5, 15, 17, 200):
            elem = header_extension(data, ext_id)
            # the inlined one-byte fast path agrees with the generic lookup
            expect = (elem[0] > 127, elem[0] & 127) if elem else None
            assert audio_level(data, ext_id) == expect
        off = payload_offset(data)
        assert off is None or 12 <= off <= len(data)
        is_rtp(data), is_rtcp(data)
        for pt, fmt, off, length in iter_rtcp(data):
            assert 0 <= off and off + length <= len(data) and length % 4 == 0
            rtcp_sender_ssrc(data, off), rtcp_media_ssrc(data, off)
            parse_nack(data, off, length)
            parse_remb(data, off, length)
            parse_report_blocks(data, off, length)
            list(iter_fir(data, off, length))
        buf = bytearray(data)
        if not rewrite_rtcp_ssrcs(buf, lambda s: s ^ 1):
            assert buf == data  # untouched on failure
        # offsets straight past the end
        assert rtcp_sender_ssrc(data, len(data)) is None
        assert rtcp_media_ssrc(data, len(data) - 4) is None
        assert parse_nack(data, len(data), 16) == []
        assert parse_remb(data, len(data), 20) is None
        assert parse_report_blocks(data, len(data), 32) == []


# ------------------------------------------------------------------------------------------------
# RTCP reading


def test_iter_rtcp_compound_matches_aiortc():
    data = compound()
    items = list(iter_rtcp(data))
    assert [(pt, fmt) for pt, fmt, _, _ in items] == [(200, 1), (202, 1), (206, 1)]
    assert items[0][2] == 0 and items[0][3] == 52
    assert items[1][2] == 52 and items[2][2] == 52 + items[1][3]
    assert sum(i[3] for i in items) == len(data)
    ref = RtcpPacket.parse(data)
    assert [type(p) for p in ref] == [RtcpSrPacket, RtcpSdesPacket, RtcpPsfbPacket]
    _, _, off, length = items[2]
    assert rtcp_sender_ssrc(data, off) == ref[2].ssrc == 0xAAAA0001
    assert rtcp_media_ssrc(data, off) == ref[2].media_ssrc == 0xBBBB0002
    assert rtcp_sender_ssrc(data, 0) == ref[0].ssrc
    blocks = parse_report_blocks(data, 0, 52)
    assert blocks == [ReportBlock(0xBBBB0002, 5, 7, 70000, 33, 0x45678901, 6553)]
    assert parse_report_blocks(data, items[1][2], items[1][3]) == []  # SDES has none


def test_iter_rtcp_stops_on_garbage():
    good = build_pli(1, 2)
    assert list(iter_rtcp(good + b"\x00\x00\x00\x00")) == [(206, 1, 0, 12)]  # version 0
    assert list(iter_rtcp(good + bytes([0x80, 201, 0, 5]))) == [(206, 1, 0, 12)]  # too long
    assert list(iter_rtcp(good + b"\x80\xc9")) == [(206, 1, 0, 12)]  # partial header
    assert list(iter_rtcp(b"")) == [] and list(iter_rtcp(good[:11])) == []


def test_pli_matches_aiortc():
    pkt = build_pli(0x01020304, 0x0A0B0C0D)
    assert pkt == bytes.fromhex("81ce0002010203040a0b0c0d")
    (ref,) = RtcpPacket.parse(pkt)
    assert isinstance(ref, RtcpPsfbPacket)
    assert (ref.fmt, ref.ssrc, ref.media_ssrc, ref.fci) == (1, 0x01020304, 0x0A0B0C0D, b"")


def test_fir():
    pkt = build_fir(7, 0xCAFEBABE, 259)  # seq nr is 8 bits
    assert len(pkt) == 20
    (ref,) = RtcpPacket.parse(pkt)
    assert (ref.fmt, ref.ssrc, ref.media_ssrc) == (4, 7, 0)  # RFC 5104: media SSRC 0
    assert ref.fci == struct.pack("!IB3x", 0xCAFEBABE, 3)
    assert list(iter_rtcp(pkt)) == [(206, 4, 0, 20)]
    assert list(iter_fir(pkt, 0, 20)) == [(0xCAFEBABE, 3)]
    two = pkt[:2] + struct.pack("!H", 6) + pkt[4:] + struct.pack("!IB3x", 0x1234, 9)
    assert list(iter_fir(two, 0, 28)) == [(0xCAFEBABE, 3), (0x1234, 9)]
    assert list(iter_fir(two, 0, 27)) == [(0xCAFEBABE, 3)]


@pytest.mark.parametrize("bitrate", [0, 1, 0x3FFFF, 0x40000, 0x40001, 300_000, 2_500_000,
                                     10**9, 123_456_789_012])
def test_remb_hand_decoded(bitrate):
    ssrcs = [0x11112222, 0x33334444]
    pkt = build_remb(0xABCD, bitrate, ssrcs)
    assert len(pkt) == 20 + 4 * len(ssrcs)
    b0, pt, words, sender, media = struct.unpack_from("!BBHII", pkt)
    assert (b0, pt, (words + 1) * 4, sender, media) == (0x8F, 206, len(pkt), 0xABCD, 0)
    assert pkt[12:16] == b"REMB" and pkt[16] == len(ssrcs)
    exp = pkt[17] >> 2
    mantissa = ((pkt[17] & 3) << 16) | (pkt[18] << 8) | pkt[19]
    decoded = mantissa << exp
    assert decoded <= bitrate and decoded > bitrate - (1 << exp)  # rounded down, one step
    if bitrate <= 0x3FFFF:
        assert exp == 0 and mantissa == bitrate
    else:
        assert mantissa >= 0x20000  # smallest exponent, so the mantissa is normalised
    assert list(struct.unpack_from("!2I", pkt, 20)) == ssrcs
    (ref,) = RtcpPacket.parse(pkt)
    assert ref.fmt == 15 and unpack_remb_fci(ref.fci) == (decoded, ssrcs)
    assert parse_remb(pkt, 0, len(pkt)) == (decoded, ssrcs)


def test_remb_edge_cases():
    assert parse_remb(build_remb(1, 5000, []), 0, 20) == (5000, [])
    assert parse_remb(build_remb(1, 2**80, [1]), 0, 24) == (2**80, [1])  # exp 63 fits
    assert parse_remb(build_remb(1, 2**90, [1]), 0, 24) == (0x3FFFF << 63, [1])  # clamped
    assert build_remb(1, -5, [1])[17:20] == b"\x00\x00\x00"
    with pytest.raises(ValueError):
        build_remb(1, 1, list(range(256)))
    pli = build_pli(1, 2) + bytes(8)
    assert parse_remb(pli, 0, 20) is None  # no "REMB" identifier
    remb = build_remb(1, 5000, [1, 2])
    assert parse_remb(remb, 0, 24) is None  # count says 2, packet holds 1


def test_receiver_report_matches_aiortc():
    reports = [ReportBlock(0x11, 25, 1000, 0x0001FFFF, 480, 0x12345678, 65536),
               ReportBlock(0x22, 0, -3, 17, 0, 0, 0)]
    pkt = build_receiver_report(0xBEEF, reports)
    assert len(pkt) == 8 + 24 * 2
    (ref,) = RtcpPacket.parse(pkt)
    assert isinstance(ref, RtcpRrPacket) and ref.ssrc == 0xBEEF
    got = [(r.ssrc, r.fraction_lost, r.packets_lost, r.highest_sequence, r.jitter, r.lsr, r.dlsr)
           for r in ref.reports]
    assert got == [(r.ssrc, r.fraction_lost, r.cumulative_lost, r.highest_seq, r.jitter, r.lsr,
                    r.dlsr) for r in reports]
    assert parse_report_blocks(pkt, 0, len(pkt)) == reports
    # the signed 24-bit cumulative loss is clamped, not wrapped
    (blk,) = parse_report_blocks(build_receiver_report(1, [ReportBlock(2, 0, 1 << 30, 0, 0, 0, 0)]),
                                 0, 32)
    assert blk.cumulative_lost == 0x7FFFFF
    (blk,) = parse_report_blocks(build_receiver_report(1, [ReportBlock(2, 0, -(1 << 30), 0, 0, 0,
                                                                       0)]), 0, 32)
    assert blk.cumulative_lost == -0x800000


def test_receiver_report_empty_and_many():
    empty = build_receiver_report(5, [])
    assert empty == bytes.fromhex("80c9000100000005")
    (ref,) = RtcpPacket.parse(empty)
    assert ref.ssrc == 5 and ref.reports == []
    many = [ReportBlock(i, i, i, i, i, i, i) for i in range(40)]
    pkt = build_receiver_report(5, many)
    items = list(iter_rtcp(pkt))
    assert [(pt, count) for pt, count, _, _ in items] == [(201, 31), (201, 9)]
    refs = RtcpPacket.parse(pkt)
    assert [r.ssrc for p in refs for r in p.reports] == list(range(40))
    assert [b for _, _, off, ln in items for b in parse_report_blocks(pkt, off, ln)] == many


@pytest.mark.parametrize("lost", [
    [5],
    [100, 101, 102, 116],          # PID + bits 1, 2 and 16
    [100, 117],                    # 17 apart: two FCI entries
    [65534, 65535, 0, 1, 20],      # across the wrap
    [0, 65535],                    # unordered across the wrap
    [30, 10, 20, 10, 11],          # unordered with a duplicate
    list(range(1000, 1100, 3)),
])
def test_nack_round_trip(lost):
    pkt = build_nack(0x1111, 0x2222, lost)
    (ref,) = RtcpPacket.parse(pkt)
    assert isinstance(ref, RtcpRtpfbPacket)
    assert (ref.fmt, ref.ssrc, ref.media_ssrc) == (1, 0x1111, 0x2222)
    [(pt, fmt, off, length)] = list(iter_rtcp(pkt))
    assert (pt, fmt, length) == (205, 1, len(pkt))
    got = parse_nack(pkt, off, length)
    assert sorted(set(got)) == sorted(set(lost)) and len(got) == len(set(lost))
    # aiortc 1.16 does not reduce PID + n modulo 2^16 (reports 65536 for 0), hence the mask
    assert sorted(s & 0xFFFF for s in ref.lost) == sorted(set(lost))
    # sorted in sequence space relative to the first number
    first = lost[0]
    assert got == sorted(got, key=lambda s: seq_delta(s, first))


def test_nack_packing_is_compact():
    pkt = build_nack(1, 2, [100, 101, 102, 116])
    assert len(pkt) == 16 and struct.unpack_from("!HH", pkt, 12) == (100, 0b1000000000000011)
    pkt = build_nack(1, 2, [65535, 0, 15])
    assert struct.unpack_from("!HH", pkt, 12) == (65535, 0b1000000000000001)
    assert len(build_nack(1, 2, [100, 117])) == 20
    with pytest.raises(ValueError):
        build_nack(1, 2, [])


def test_parse_nack_truncated():
    pkt = build_nack(1, 2, [10, 50, 90])
    assert parse_nack(pkt, 0, len(pkt)) == [10, 50, 90]
    assert parse_nack(pkt[:-2], 0, len(pkt)) == [10, 50]
    assert parse_nack(pkt, 0, 12) == []
    assert parse_nack(pkt[:8], 0, len(pkt)) == []
    assert parse_nack(pkt, -4, 16) == []


# ------------------------------------------------------------------------------------------------
# RTCP SSRC rewriting


def test_rewrite_rtcp_ssrcs_compound():
    mapping = {0xAAAA0001: 0x0000A001, 0xBBBB0002: 0x0000B002}
    buf = bytearray(compound())
    assert rewrite_rtcp_ssrcs(buf, mapping.get) is True
    sr, sdes, pli = RtcpPacket.parse(bytes(buf))
    assert sr.ssrc == 0xA001 and [r.ssrc for r in sr.reports] == [0xB002]
    assert sr.sender_info.rtp_timestamp == 123456 and sr.reports[0].highest_sequence == 70000
    assert sdes.chunks[0].ssrc == 0xA001 and sdes.chunks[0].items == [(1, b"user@host-x")]
    assert (pli.ssrc, pli.media_ssrc) == (0xA001, 0xB002)
    assert len(buf) == len(compound())


def test_rewrite_rtcp_ssrcs_feedback():
    m = {1: 101, 2: 102, 3: 103}.get
    buf = bytearray(build_nack(1, 2, [7, 8]) + build_fir(1, 3, 5) + build_remb(1, 4000, [2, 3])
                    + build_receiver_report(1, [ReportBlock(2, 0, 0, 0, 0, 0, 0)])
                    + struct.pack("!BBHII", 0x82, 203, 2, 2, 3))  # BYE with 2 SSRCs
    assert rewrite_rtcp_ssrcs(buf, m)
    nack, fir, remb, rr, bye = RtcpPacket.parse(bytes(buf))
    assert (nack.ssrc, nack.media_ssrc, nack.lost) == (101, 102, [7, 8])
    assert (fir.ssrc, fir.media_ssrc) == (101, 0) and fir.fci[:4] == struct.pack("!I", 103)
    assert (remb.ssrc, remb.media_ssrc) == (101, 0)
    assert unpack_remb_fci(remb.fci) == (4000, [102, 103])
    assert rr.ssrc == 101 and rr.reports[0].ssrc == 102
    assert bye.sources == [102, 103]


def test_rewrite_rtcp_ssrcs_failures():
    # unknown SSRC anywhere -> False, and the buffer is left as it was
    buf = bytearray(compound())
    assert rewrite_rtcp_ssrcs(buf, {0xAAAA0001: 1}.get) is False
    assert bytes(buf) == compound()
    assert rewrite_rtcp_ssrcs(bytearray(build_pli(1, 2)), {1: 5}.get) is False
    # unknown packet type (APP) -> False
    app = struct.pack("!BBHI4s", 0x80, 204, 2, 1, b"abcd")
    assert rewrite_rtcp_ssrcs(bytearray(app), lambda s: s) is False
    # trailing garbage, truncation, empty
    assert rewrite_rtcp_ssrcs(bytearray(build_pli(1, 2) + b"\x01"), lambda s: s) is False
    assert rewrite_rtcp_ssrcs(bytearray(compound()[:-1]), lambda s: s) is False
    assert rewrite_rtcp_ssrcs(bytearray(), lambda s: s) is False
    # RR whose count claims more blocks than fit
    rr = bytearray(build_receiver_report(1, []))
    rr[0] |= 3
    assert rewrite_rtcp_ssrcs(rr, lambda s: s) is False
    # SDES chunk without its terminating null item
    sdes = bytearray(struct.pack("!BBHI", 0x81, 202, 2, 9) + bytes([1, 2]) + b"ab")
    assert rewrite_rtcp_ssrcs(sdes, lambda s: s) is False
    # identity mapping keeps the bytes
    buf = bytearray(compound())
    assert rewrite_rtcp_ssrcs(buf, lambda s: s) and bytes(buf) == compound()


# ------------------------------------------------------------------------------------------------
# Sequence arithmetic


def test_seq_helpers():
    assert seq_delta(5, 3) == 2 and seq_delta(3, 5) == -2
    assert seq_delta(0, 65535) == 1 and seq_delta(65535, 0) == -1
    assert seq_delta(0x8000, 0) == -0x8000 and seq_delta(0x7FFF, 0) == 0x7FFF
    assert seq_newer(0, 65535) and not seq_newer(65535, 0) and not seq_newer(7, 7)
    assert ts_delta(0, 0xFFFFFFFF) == 1 and ts_delta(0xFFFFFF00, 0x100) == -0x200


def _rtp(seq: int, ts: int, ssrc: int) -> bytearray:
    return bytearray(make_rtp(111, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload=b"p"))


def test_stream_rewriter_switch_keeps_stream_continuous():
    w = StreamRewriter(0x5107)
    out = []
    for i in range(5):
        pkt = _rtp(65533 + i, 1000 + 960 * i, 0xA)
        assert w.rewrite(pkt)
        out.append(pkt)
    w.switch(ts_gap=960)
    for i in range(5):
        pkt = _rtp(300 + i, 777_777 + 960 * i, 0xB)
        assert w.rewrite(pkt)
        out.append(pkt)
    parsed = [RtpPacket.parse(bytes(p)) for p in out]
    assert {p.ssrc for p in parsed} == {0x5107}
    seqs = [p.sequence_number for p in parsed]
    assert all(seq_delta(b, a) == 1 for a, b in zip(seqs, seqs[1:]))
    assert seqs[0] == 65533 and seqs[3] == 0  # first source passes through unchanged
    stamps = [p.timestamp for p in parsed]
    assert all(ts_delta(b, a) == 960 for a, b in zip(stamps, stamps[1:]))
    # a late packet of the new source from before its first one is dropped ...
    assert not w.rewrite(_rtp(299, 0, 0xB))
    # ... a reordered one after it is rewritten into the gap
    pkt = _rtp(303, 777_777 + 960 * 3, 0xB)
    assert w.rewrite(pkt) and rtp_seq(pkt) == seqs[8]


def test_stream_rewriter_long_run_and_reordering():
    w = StreamRewriter(1)
    seq0 = 60000
    for i in range(70000):  # longer than 2^16: no spurious drops across wraps
        pkt = _rtp(seq0 + i, 160 * i, 9)
        assert w.rewrite(pkt)
        assert rtp_seq(pkt) == (seq0 + i) & 0xFFFF
    late = _rtp(seq0 + 69990, 160 * 69990, 9)
    assert w.rewrite(late) and rtp_seq(late) == (seq0 + 69990) & 0xFFFF
    w.switch()
    nxt = _rtp(5, 42, 10)
    assert w.rewrite(nxt)
    assert rtp_seq(nxt) == (seq0 + 70000) & 0xFFFF
    assert rtp_timestamp(nxt) == (160 * 69999 + 1) & 0xFFFFFFFF


def test_module_api_present():
    for name in rtp.__all__:
        assert hasattr(rtp, name), name
