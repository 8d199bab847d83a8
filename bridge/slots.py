"""Receiver slots: the fixed set of SSRCs the bridge sends each participant.

A receiver gets K audio and N video slots (N = last-N), each with a bridge-chosen SSRC announced
once in its Jingle offer. Whichever sender currently fills a slot has its packets rewritten to
the slot's SSRC, with sequence numbers and timestamps offset so the receiver sees one continuous
stream. Joins, leaves and speaker changes then need no renegotiation, only a new mapping and,
for video, a keyframe request to the new source (Jitsi calls this SSRC rewriting).
"""
from __future__ import annotations

import random

from . import rtp

CACHE_SIZE = 512  # packets per video source kept for answering NACKs (about 1.5 s at 350 pkt/s)


def random_ssrc(taken: set[int]) -> int:
    while True:
        ssrc = random.getrandbits(32)
        if ssrc and ssrc not in taken:
            taken.add(ssrc)
            return ssrc


class Slot:
    __slots__ = ("kind", "index", "out_ssrc", "source", "owner", "fresh", "seq_off", "ts_off",
                 "last_seq", "last_ts", "sent")

    def __init__(self, kind: str, index: int, out_ssrc: int) -> None:
        self.kind = kind
        self.index = index
        self.out_ssrc = out_ssrc
        self.source: int | None = None  # the sender SSRC filling the slot
        self.owner: str = ""  # that sender's endpoint id
        self.fresh = True  # next packet starts a new source: recompute offsets
        self.seq_off = 0
        self.ts_off = 0
        self.last_seq = random.getrandbits(15)
        self.last_ts = random.getrandbits(31)
        self.sent = 0

    @property
    def name(self) -> str:
        return f"jvb-{self.kind[0]}{self.index}"

    def assign(self, source: int | None, owner: str = "") -> None:
        if source != self.source:
            self.source = source
            self.owner = owner if source is not None else ""
            self.fresh = True

    def rewrite(self, data: bytes) -> bytes:
        """The packet as this slot sends it; one copy, rewritten in place."""
        seq = rtp.rtp_seq(data)
        ts = rtp.rtp_timestamp(data)
        if self.fresh:
            # continue right after what the receiver saw last, one frame later
            self.seq_off = (self.last_seq + 1 - seq) & 0xFFFF
            self.ts_off = (self.last_ts + (3000 if self.kind == "video" else 960) - ts) & 0xFFFFFFFF
            self.fresh = False
        out_seq = (seq + self.seq_off) & 0xFFFF
        out_ts = (ts + self.ts_off) & 0xFFFFFFFF
        if rtp.seq_delta(out_seq, self.last_seq) > 0:
            self.last_seq = out_seq
            self.last_ts = out_ts
        buf = bytearray(data)
        rtp.rewrite_rtp(buf, self.out_ssrc, out_seq, out_ts)
        self.sent += 1
        return bytes(buf)

    def source_seq(self, out_seq: int) -> int:
        """The sender's sequence number behind one we sent (to answer a receiver's NACK)."""
        return (out_seq - self.seq_off) & 0xFFFF

    def sender_report(self, sr: bytes) -> bytes | None:
        """A sender's SR re-addressed to this slot: our SSRC, the offset RTP timestamp, no blocks."""
        if len(sr) < 28 or self.fresh:
            return None
        buf = bytearray(sr[:28])
        buf[0] = 0x80  # V=2, no padding, RC=0
        buf[2:4] = (6).to_bytes(2, "big")
        buf[4:8] = self.out_ssrc.to_bytes(4, "big")
        ts = (int.from_bytes(buf[16:20], "big") + self.ts_off) & 0xFFFFFFFF
        buf[16:20] = ts.to_bytes(4, "big")
        return bytes(buf)
