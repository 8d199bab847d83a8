"""Per-packet cost of bridge/rtp.py against aiortc's RtpPacket/RtcpPacket, same packets, one run.

    python bench/rtp_rewrite.py [--repeat 5]

The RTP packet is 1200 bytes (a full-size video packet): 12-byte header, a one-byte (0xBEDE)
header extension block holding abs-send-time (id 3) and ssrc-audio-level (id 1), payload. The
RTCP packet is a browser-style compound SR (1 report block) + SDES CNAME + PLI.

Each row pairs what the bridge does per packet with the closest aiortc equivalent:

  rtp_ssrc                        RtpPacket.parse(pkt).ssrc
  audio_level                     RtpPacket.parse(pkt, ext_map).extensions.audio_level
  payload_offset                  RtpPacket.parse(pkt).payload
  rewrite_rtp (bytearray in place) parse, set ssrc/seq/timestamp, serialize(ext_map)
  bytearray + rewrite_rtp + bytes  same; the two copies are what forwarding really costs, since
                                   the packet arrives as bytes and pylibsrtp.protect wants bytes
  iter_rtcp (walk compound)       RtcpPacket.parse(compound)
  bytearray + rewrite_rtcp_ssrcs  RtcpPacket.parse, rewrite the SSRCs, bytes() each packet
    + bytes

Timing: timeit with a string statement (no lambda overhead), loop count from autorange, best of
--repeat runs, reported as ns per operation. Ratio = aiortc / ours (how many times faster).
"""
from __future__ import annotations

import argparse
import platform
import struct
import sys
import timeit

import aiortc
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtcpPacket, RtpPacket

from bridge import rtp as R

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def make_rtp_packet(size: int = 1200) -> bytes:
    ext = bytes([0x32, 0x12, 0x34, 0x56, 0x10, 0x80 | 37, 0, 0])
    head = struct.pack("!BBHII", 0x90, 96, 4711, 90000 * 7, 0x1234ABCD)
    head += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    return head + bytes((i * 7) & 0xFF for i in range(size - len(head)))


def make_compound() -> bytes:
    sr_body = struct.pack("!IIIIII", 0xAAAA0001, 0xE1234567, 0x89ABCDEF, 123456, 100, 20000)
    sr_body += struct.pack("!IIIIII", 0xBBBB0002, (5 << 24) | 7, 70000, 33, 0x45678901, 6553)
    sr = struct.pack("!BBH", 0x81, 200, (4 + len(sr_body)) // 4 - 1) + sr_body
    cname = b"{d4f1c9a2-5e6b-4c1e-9a0b-3f2e1d0c9b8a}"
    chunk = struct.pack("!I", 0xAAAA0001) + bytes([1, len(cname)]) + cname + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    sdes = struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk
    return sr + sdes + R.build_pli(0xAAAA0001, 0xBBBB0002)


def aiortc_rewrite(pkt, ext_map):
    p = RtpPacket.parse(pkt, ext_map)
    p.ssrc = 0xDEADBEEF
    p.sequence_number = 7
    p.timestamp = 99
    return p.serialize(ext_map)


def aiortc_rtcp_rewrite(data, mapping):
    out = []
    for p in RtcpPacket.parse(data):
        if hasattr(p, "ssrc"):
            p.ssrc = mapping[p.ssrc]
        if getattr(p, "media_ssrc", 0):
            p.media_ssrc = mapping[p.media_ssrc]
        for r in getattr(p, "reports", ()):
            r.ssrc = mapping[r.ssrc]
        for c in getattr(p, "chunks", ()):
            c.ssrc = mapping[c.ssrc]
        out.append(bytes(p))
    return b"".join(out)


def ours_rewrite_copy(pkt):
    buf = bytearray(pkt)
    R.rewrite_rtp(buf, 0xDEADBEEF, 7, 99)
    return bytes(buf)


def walk_rtcp(data):
    n = 0
    for pt, fmt, off, length in R.iter_rtcp(data):
        n += pt
    return n


def ours_rtcp_rewrite(data, mapping_get):
    buf = bytearray(data)
    R.rewrite_rtcp_ssrcs(buf, mapping_get)
    return bytes(buf)


ROWS = [
    # (label, our statement, aiortc label, aiortc statement)
    ("rtp_ssrc", "rtp_ssrc(pkt)",
     "RtpPacket.parse().ssrc", "RtpPacket.parse(pkt).ssrc"),
    ("audio_level", "audio_level(pkt, 1)",
     "parse(ext_map).extensions.audio_level",
     "RtpPacket.parse(pkt, ext_map).extensions.audio_level"),
    ("payload_offset", "payload_offset(pkt)",
     "RtpPacket.parse().payload", "RtpPacket.parse(pkt).payload"),
    ("rewrite_rtp (in place)", "rewrite_rtp(buf, 0xDEADBEEF, 7, 99)",
     "parse + set 3 fields + serialize", "aiortc_rewrite(pkt, ext_map)"),
    ("bytearray+rewrite_rtp+bytes()", "ours_rewrite_copy(pkt)",
     "parse + set 3 fields + serialize", "aiortc_rewrite(pkt, ext_map)"),
    ("iter_rtcp (SR+SDES+PLI)", "walk_rtcp(compound)",
     "RtcpPacket.parse(compound)", "RtcpPacket.parse(compound)"),
    ("rewrite_rtcp_ssrcs (+2 copies)", "ours_rtcp_rewrite(compound, mapping.get)",
     "parse + remap + bytes() each", "aiortc_rtcp_rewrite(compound, mapping)"),
]


def best_ns(stmt: str, env: dict, repeat: int) -> float:
    timer = timeit.Timer(stmt, globals=env)
    number, _ = timer.autorange()
    number = max(number, 10_000) if number < 10_000 else number
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="best of N timeit runs (default 5)")
    args = ap.parse_args()

    pkt = make_rtp_packet()
    compound = make_compound()
    ext_map = HeaderExtensionsMap()
    ext_map.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=1, uri=AUDIO_LEVEL_URI),
        RTCRtpHeaderExtensionParameters(id=3, uri=ABS_SEND_TIME_URI)]))
    mapping = {0xAAAA0001: 0x1001, 0xBBBB0002: 0x2002}
    # sanity: both sides agree on the inputs
    assert R.audio_level(pkt, 1) == RtpPacket.parse(pkt, ext_map).extensions.audio_level
    assert ours_rewrite_copy(pkt) == aiortc_rewrite(pkt, ext_map)
    assert ours_rtcp_rewrite(compound, mapping.get) == aiortc_rtcp_rewrite(compound, mapping)
    assert pkt[R.payload_offset(pkt):] == RtpPacket.parse(pkt).payload

    env = dict(vars(R))
    env.update(pkt=pkt, buf=bytearray(pkt), compound=compound, ext_map=ext_map, mapping=mapping,
               RtpPacket=RtpPacket, RtcpPacket=RtcpPacket, aiortc_rewrite=aiortc_rewrite,
               aiortc_rtcp_rewrite=aiortc_rtcp_rewrite, ours_rewrite_copy=ours_rewrite_copy,
               walk_rtcp=walk_rtcp, ours_rtcp_rewrite=ours_rtcp_rewrite)

    print(f"# rtp_rewrite: {len(pkt)}-byte RTP packet (one-byte ext: abs-send-time + audio level),"
          f" {len(compound)}-byte compound RTCP (SR+SDES+PLI)")
    print(f"# python {platform.python_version()} ({platform.python_implementation()}), "
          f"aiortc {aiortc.__version__}, {platform.machine()}; timeit best of {args.repeat}, ns/op")
    w1 = max(len(r[0]) for r in ROWS)
    w2 = max(len(r[2]) for r in ROWS)
    print(f"| {'ours':<{w1}} | {'ns/op':>8} | {'aiortc':<{w2}} | {'ns/op':>8} "
          f"| {'aiortc/ours':>11} |")
    print(f"|{'-' * (w1 + 2)}|{'-' * 9}:|{'-' * (w2 + 2)}|{'-' * 9}:|{'-' * 12}:|")
    cache: dict[str, float] = {}
    for label, ours, alabel, theirs in ROWS:
        ns_ours = best_ns(ours, env, args.repeat)
        if theirs not in cache:
            cache[theirs] = best_ns(theirs, env, args.repeat)
        ns_theirs = cache[theirs]
        print(f"| {label:<{w1}} | {ns_ours:8.0f} | {alabel:<{w2}} | {ns_theirs:8.0f} | "
              f"{ns_theirs / ns_ours:10.1f}x |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
