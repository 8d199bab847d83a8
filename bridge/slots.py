"""Receiver slots: the fixed set of SSRCs the bridge sends each participant.

A receiver gets K audio and N video slots (N = last-N), each with a bridge-chosen SSRC announced
once in its Jingle offer. Whichever sender currently fills a slot has its packets rewritten to
the slot's SSRC, with sequence numbers and timestamps offset so the receiver sees one continuous
stream. Joins, leaves and speaker changes then need no renegotiation, only a new mapping and,
for video, a keyframe request to the new source (Jitsi calls this SSRC rewriting).

A slot holding a simulcast source (one logical source sent as k layer SSRCs) forwards exactly
one layer (`layer`) and may want another (`target`); it switches only at a keyframe of the
target layer. `rewrite_layer` forwards a packet of the current layer and also rewrites the VP8
PictureID and TL0PICIDX so they continue across switches; `watch_keyframe` sees packets of the
target layer and makes the switch. The conference routes each layer SSRC only to the slots
whose current or target layer it is (through the slot's `fwd` and `watch` route objects), and
decides the targets (see simulcast.py).
"""
from __future__ import annotations

import random
import struct
from typing import Any, Callable

from . import rtp, vp8

_SEQ_TS_SSRC = rtp._SEQ_TS_SSRC
_U16 = rtp._U16
_BHB = struct.Struct("!BHB")  # VP8 descriptor bytes 1..4 in the usual layout (kept below 2^30: fast ints)
_HB = struct.Struct("!HB")
_HEAD = struct.Struct("!BBHI")  # RTP bytes 0..7: V/P/X/CC, M/PT, seq, timestamp
ALL_PAYLOAD_TYPES = frozenset(range(128))

CACHE_SIZE = 512  # packets per video source kept for answering NACKs (about 1.5 s at 350 pkt/s)


def random_ssrc(taken: set[int]) -> int:
    while True:
        ssrc = random.getrandbits(32)
        if ssrc and ssrc not in taken:
            taken.add(ssrc)
            return ssrc


class LayerRoute:
    """What a route entry of a simulcast slot holds: the slot's `rewrite_layer` (current layer)
    or `watch_keyframe` (target layer) as `rewrite`, and what to do with the layer's SRs."""

    __slots__ = ("rewrite", "sender_report", "slot")

    def __init__(self, slot: "Slot", rewrite: Callable[[bytes, Any], bytes | None],
                 sender_report: Callable[[bytes], bytes | None]) -> None:
        self.slot = slot
        self.rewrite = rewrite
        self.sender_report = sender_report


def _no_report(sr: bytes) -> None:
    return None


class Slot:
    __slots__ = ("kind", "index", "out_ssrc", "rtx_ssrc", "source", "owner", "fresh", "seq_off", "ts_off",
                 "last_seq", "last_ts", "sent",
                 # simulcast: layer SSRCs (None: not a simulcast source), current and wanted layer
                 # index (-1: none), VP8 payload types, PictureID/TL0PICIDX continuity
                 "layers", "layer", "target", "vp8_pts", "anchor", "pid_off", "tl0_off",
                 "last_pid", "last_tl0", "pid_fresh", "tl0_fresh", "vp8_fresh", "switches",
                 "on_switch", "fwd", "watch",
                 # the receiver's transport-cc numbering (twcc.SendLog), None if it has none
                 "tcc")

    def __init__(self, kind: str, index: int, out_ssrc: int, rtx_ssrc: int = 0) -> None:
        self.kind = kind
        self.index = index
        self.out_ssrc = out_ssrc
        # the slot's RTX SSRC as source maps name it (Jitsi clients pair every video SSRC with
        # one); nothing is sent on it: receivers get retransmissions on out_ssrc from our cache
        self.rtx_ssrc = rtx_ssrc
        self.source: int | None = None  # the sender SSRC filling the slot
        self.owner: str = ""  # that sender's endpoint id
        self.fresh = True  # next packet starts a new source: recompute offsets
        self.seq_off = 0
        self.ts_off = 0
        self.last_seq = random.getrandbits(15)
        self.last_ts = random.getrandbits(31)
        self.sent = 0
        self.layers: tuple[int, ...] | None = None
        self.layer = -1
        self.target = -1
        self.vp8_pts: frozenset[int] = ALL_PAYLOAD_TYPES
        self.anchor = 0  # input seq of the first packet of the current layer
        self.pid_off = 0
        self.tl0_off = 0
        self.last_pid = random.getrandbits(15)
        self.last_tl0 = random.getrandbits(8)
        self.pid_fresh = True
        self.tl0_fresh = True
        self.vp8_fresh = True  # either of the two
        self.switches = 0
        self.on_switch: Callable[["Slot"], Any] | None = None  # the conference re-routes
        self.fwd = LayerRoute(self, self.rewrite_layer, self.sender_report)
        self.watch = LayerRoute(self, self.watch_keyframe, _no_report)
        self.tcc: Any = None

    @property
    def name(self) -> str:
        return f"jvb-{self.kind[0]}{self.index}"

    def assign(self, source: int | None, owner: str = "") -> None:
        if source != self.source:
            self.source = source
            self.owner = owner if source is not None else ""
            self.fresh = True
            self.layers = None
            self.layer = self.target = -1
            self.pid_fresh = self.tl0_fresh = self.vp8_fresh = True

    # ---- simulcast ---------------------------------------------------------------------------
    def set_layers(self, layers: tuple[int, ...] | None, vp8_pts: frozenset[int] = ALL_PAYLOAD_TYPES) -> None:
        """The layer SSRCs (lowest first) of the simulcast source in this slot, None for a plain
        source. A change (the sender re-signalled) starts over: no layer until a keyframe."""
        self.vp8_pts = vp8_pts
        if layers != self.layers:
            self.layers = layers
            self.layer = self.target = -1
            self.fresh = self.pid_fresh = self.tl0_fresh = self.vp8_fresh = True

    @property
    def layer_ssrc(self) -> int | None:
        """The layer SSRC forwarded now."""
        return self.layers[self.layer] if self.layers is not None and self.layer >= 0 else None

    @property
    def pending(self) -> int | None:
        """The layer SSRC waited for (a keyframe of it), if a switch is pending."""
        if self.layers is None or self.target < 0 or self.target == self.layer:
            return None
        return self.layers[self.target]

    def set_target(self, target: int) -> bool:
        """Want layer `target` (-1: none); True if the routes of the source must change. Turning
        the layer off is immediate; any other change waits for a keyframe of the target."""
        if self.layers is None:
            return False
        target = min(target, len(self.layers) - 1)
        if target == self.target:
            return False
        self.target = target
        if target < 0 and self.layer >= 0:
            self.layer = -1
            self.fresh = True  # what comes next follows on, one frame later
            self.pid_fresh = self.tl0_fresh = self.vp8_fresh = True
        return True

    def watch_keyframe(self, data: bytes, tcc: tuple[int, float, int] | None = None) -> bytes | None:
        """A packet of the target layer: switch to it if it starts a keyframe (for a codec other
        than VP8 we cannot tell, and switch at once), else drop it."""
        if data[1] & 0x7F in self.vp8_pts:
            off = rtp.payload_offset(data)
            if off is None or not vp8.is_keyframe(data, off, vp8.payload_end(data)):
                return None
        if self.target < 0 or self.layers is None:
            return None
        self.layer = self.target
        self.fresh = True
        self.pid_fresh = self.tl0_fresh = self.vp8_fresh = True
        self.switches += 1
        if self.on_switch is not None:
            self.on_switch(self)
        return self.rewrite_layer(data, tcc)

    def rewrite_layer(self, data: bytes, tcc: tuple[int, float, int] | None = None) -> bytes | None:
        """A packet of the current layer as this slot sends it: SSRC, seq and timestamp as in
        `rewrite`, and the VP8 PictureID (at the packet's 7 or 15 bits) and TL0PICIDX offset so
        they continue from the previous layer. None for a packet from before the switch.

        Every forwarded packet of a simulcast source comes through here, so the usual VP8
        layout (X, I with a 15-bit PictureID, L: what browsers send) is read and written with
        one struct call each; any other layout takes the general path."""
        b0, b1, seq, ts = _HEAD.unpack_from(data)
        if self.fresh:
            self.seq_off = (self.last_seq + 1 - seq) & 0xFFFF
            self.ts_off = (self.last_ts + 3000 - ts) & 0xFFFFFFFF
            self.anchor = seq
            self.fresh = False
        else:
            d = (seq - self.anchor) & 0xFFFF
            if d & 0x8000:
                return None  # older than the layer's first packet: its numbers are taken
            if d > 0x4000:
                self.anchor = (seq - 0x2000) & 0xFFFF  # keep the window ahead of wrap-around
        out_seq = (seq + self.seq_off) & 0xFFFF
        out_ts = (ts + self.ts_off) & 0xFFFFFFFF
        newest = 0 < ((out_seq - self.last_seq) & 0xFFFF) < 0x8000
        if newest:
            self.last_seq = out_seq
            self.last_ts = out_ts
        buf = bytearray(data)
        _SEQ_TS_SSRC.pack_into(buf, 2, out_seq, out_ts, self.out_ssrc)
        if tcc is not None and self.tcc is not None:
            self.tcc.stamp(buf, tcc)
        self.sent += 1
        if b1 & 0x7F not in self.vp8_pts:
            return bytes(buf)
        # the VP8 descriptor; bounds are checked against the payload end, so garbage and
        # padding-only packets go out with their payload untouched
        n = len(buf)
        off = 12 + ((b0 & 0x0F) << 2)
        if b0 & 0x10:
            if off + 4 > n:
                return bytes(buf)
            off += 4 + (_U16.unpack_from(buf, off + 2)[0] << 2)
        if b0 & 0x20:
            n -= buf[n - 1]
        if off + 5 <= n and buf[off] & 0x80:
            x, w, t = _BHB.unpack_from(buf, off + 1)  # I|L|T|K|RSV, M|PictureID (15), TL0PICIDX
            if x & 0xC0 == 0xC0 and w & 0x8000:  # I, L and M: the usual layout
                if self.vp8_fresh:
                    self._anchor_vp8(w & 0x7FFF, t)
                pid = (w + self.pid_off) & 0x7FFF
                t = (t + self.tl0_off) & 0xFF
                _HB.pack_into(buf, off + 2, 0x8000 | pid, t)
                if newest:
                    self.last_pid = pid
                    self.last_tl0 = t
                return bytes(buf)
        return self._rewrite_vp8(buf, off, n, newest)

    def _anchor_vp8(self, pid: int | None, tl0: int | None) -> None:
        """First PictureID/TL0PICIDX of a layer: continue one after the last ones sent."""
        if pid is not None and self.pid_fresh:
            self.pid_off = (self.last_pid + 1 - pid) & 0x7FFF
            self.pid_fresh = False
        if tl0 is not None and self.tl0_fresh:
            self.tl0_off = (self.last_tl0 + 1 - tl0) & 0xFF
            self.tl0_fresh = False
        self.vp8_fresh = self.pid_fresh or self.tl0_fresh

    def _rewrite_vp8(self, buf: bytearray, off: int, end: int, newest: bool) -> bytes:
        """Any other descriptor layout (7-bit PictureID, no TL0PICIDX ...), or none."""
        d = vp8.parse(buf, off, end)
        if d is None:
            return bytes(buf)
        if self.vp8_fresh:
            self._anchor_vp8(d.picture_id, d.tl0picidx)
        if d.picture_id is not None:
            pid = (d.picture_id + self.pid_off) & 0x7FFF
            pos = d.picture_id_at
            if d.picture_id_bits == 15:
                buf[pos] = 0x80 | (pid >> 8)
                buf[pos + 1] = pid & 0xFF
            else:
                buf[pos] = pid & 0x7F
            if newest:
                self.last_pid = pid
        if d.tl0picidx is not None:
            t = (d.tl0picidx + self.tl0_off) & 0xFF
            buf[d.tl0picidx_at] = t
            if newest:
                self.last_tl0 = t
        return bytes(buf)

    def rewrite(self, data: bytes, tcc: tuple[int, float, int] | None = None) -> bytes:
        """The packet as this slot sends it; one copy, rewritten in place. ``tcc``: where the
        packet has a transport-wide sequence number, when it came and its size (None: it has
        none), so that the copy gets the receiver's number if it has transport-cc
        (twcc.SendLog.stamp)."""
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
        if tcc is not None and self.tcc is not None:
            self.tcc.stamp(buf, tcc)
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
