"""CPU cost of the bridge's forwarding decision per forwarded packet, in process, no I/O.

    python bench/forward_path.py [--receivers 10] [--packets 20000] [--repeat 5]

One sender and R receivers in a `bridge.conference.Conference`; every receiver's transport is a
stub whose `send_rtp` is a C-level no-op (`deque(maxlen=1).append`), so what is timed is
`Conference.on_rtp`: lookup, per-receiver copy + rewrite (and, with transport-cc, the
transport-wide sequence number stamped into the copy and its send time recorded), not SRTP or
sendto (those are measured by bench/bridge_forward.py). Packets are 1200-byte VP8-like RTP with
a one-byte header extension block as browsers send it: abs-send-time (id 3) and the
transport-wide sequence number (id 5).

Rows: a plain video source (`Slot.rewrite`) and a three-layer simulcast source (top layer
forwarded, `Slot.rewrite_layer`), each with the receivers' transport-cc off and on (the same
packets; "off" = the receivers did not negotiate the extension). Best of --repeat, ns per
forwarded packet.
"""
from __future__ import annotations

import argparse
import platform
import struct
import time
from collections import deque

from bridge.conference import Conference
from bridge.endpoint import Endpoint
from jitsi_protocols.model import HeaderExtension, Source, SourceGroup
from jitsi_protocols.sdp import default_media

TCC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
LAYERS = (0x1000, 0x2000, 0x3000)


class StubTransport:
    state = "connected"

    def __init__(self) -> None:
        self.send_rtp = deque(maxlen=1).append
        self.send_rtcp = deque(maxlen=1).append


class StubBridge:
    feedback_ssrc = 11
    feedback_ssrc_video = 12


def media(tcc: bool):
    out = default_media()
    for m in out:
        m.header_extensions = [e for e in m.header_extensions if e.uri != TCC_URI]
        if tcc:
            m.header_extensions.append(HeaderExtension(5, TCC_URI))
    return out


def packets(ssrc: int, count: int) -> list[bytes]:
    out = []
    for i in range(count):
        head = struct.pack("!BBHII", 0x90, 100, i & 0xFFFF, i * 3000, ssrc)
        head += struct.pack("!HH", 0xBEDE, 2) + bytes([0x32, 1, 2, 3, 0x51, 0, i & 0xFF, 0])
        vp8 = bytes([0x90, 0xC0, 0x80 | (i >> 8 & 0x7F), i & 0xFF, i & 0xFF, 0x11, 0x02, 0x00])
        out.append(head + vp8 + bytes(1200 - len(head) - len(vp8)))
    return out


def build(receivers: int, tcc: bool, simulcast: bool) -> tuple[Conference, Endpoint]:
    conf = Conference(StubBridge(), "bench")  # type: ignore[arg-type]
    taken: set[int] = set()
    eps = [Endpoint(conf, f"e{i}") for i in range(receivers + 1)]
    for i, ep in enumerate(eps):
        ep.make_slots(1, 1, taken)
        ep.set_media(media(tcc or i == 0))
        ep.transport = StubTransport()  # type: ignore[assignment]
        conf.add(ep)
    sender = eps[0]
    if simulcast:
        sender.set_sources([Source(s, "video", "e0", "e0-v0") for s in LAYERS], [SourceGroup("SIM", list(LAYERS))])
    else:
        sender.set_sources([Source(LAYERS[2], "video", "e0", "e0-v0")], [])
    conf.reassign()
    return conf, sender


def measure(receivers: int, tcc: bool, simulcast: bool, count: int, repeat: int) -> float:
    conf, sender = build(receivers, tcc, simulcast)
    pkts = packets(LAYERS[2], count)
    # a keyframe first, so simulcast slots switch onto the top layer
    key = bytearray(pkts[0])
    key[24 + 5:24 + 8] = bytes([0x10, 0x02, 0x00])
    key[24] = 0x90
    conf.on_rtp(sender, bytes(key[:24]) + bytes([0x90, 0xC0, 0x80, 0, 0]) + bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A])
                + bytes(1000))
    on_rtp = conf.on_rtp
    best = float("inf")
    for _ in range(repeat):
        before = conf.packets_forwarded
        t0 = time.perf_counter()
        for p in pkts:
            on_rtp(sender, p)
        elapsed = time.perf_counter() - t0
        forwarded = conf.packets_forwarded - before
        assert forwarded == count * receivers, (forwarded, count * receivers)
        best = min(best, elapsed / forwarded)
    return best * 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--receivers", type=int, default=10)
    ap.add_argument("--packets", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"# python {platform.python_version()}, {args.receivers} receivers, {args.packets} packets, "
          f"best of {args.repeat}; ns per forwarded packet")
    print("| source | transport-cc off | transport-cc on |")
    print("|---|--:|--:|")
    for simulcast in (False, True):
        off = measure(args.receivers, False, simulcast, args.packets, args.repeat)
        on = measure(args.receivers, True, simulcast, args.packets, args.repeat)
        print(f"| {'simulcast (rewrite_layer)' if simulcast else 'plain (rewrite)'} | {off:.0f} | {on:.0f} |")


if __name__ == "__main__":
    main()
