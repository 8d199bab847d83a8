"""Transport-wide congestion control: the sequence number extension and the feedback packet.

draft-holmer-rmcat-transport-wide-cc-extensions-01. Every RTP packet on one transport (all
SSRCs, audio and video together) carries a 16-bit *transport-wide* sequence number in a header
extension; the receiver reports, per sequence number, whether and when it arrived. That lets the
*sender* run the delay-based estimator (bwe.py) on exact send and arrival times, instead of the
receiver guessing and reporting a REMB.

The bridge plays both roles: towards each receiver it numbers what it sends (`stamp`, in the
per-receiver copy that slots.py makes anyway) and reads that receiver's feedback; towards each
sender it records arrivals (`ArrivalLog`) and sends feedback, because a browser whose offer has
transport-cc stops adapting its rate to REMB and waits for this.

Feedback layout (RTPFB, PT=205, FMT=15), after the 12-byte feedback header:

    base sequence number (16) | packet status count (16)
    reference time (24, signed, 64 ms units) | feedback packet count (8)
    packet chunks (16 bits each) ... receive deltas (8 or 16 bits each) ... zero padding

A chunk is either a run (T=0: 2-bit status, 13-bit length) or a status vector (T=1; S=0: 14
one-bit symbols "received / not"; S=1: seven two-bit symbols). Status 0 = not received, 1 =
received with a one-byte delta (0..63.75 ms), 2 = received with a two-byte signed delta. Deltas
are in 250 us units, the first one from the reference time, each next one from the previous
received packet.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from . import rtp

__all__ = ["TCC_URI", "MAX_STATUS_RUN", "find_transport_seq", "read_transport_seq", "write_transport_seq",
           "Feedback", "build_feedback", "parse_feedback", "ArrivalLog", "SendLog"]

TCC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
FMT_TCC = 15
MAX_STATUS_RUN = 0x1FFF  # 13 bits of run length
REFERENCE_US = 64_000  # reference time unit
DELTA_US = 250  # receive delta unit

_U16 = struct.Struct("!H")
_HEAD = struct.Struct("!BBHIIHHI")  # V/P/FMT, PT, length, sender, media, base, count, ref<<8|fb count
_HH = struct.Struct("!HH")
_h = struct.Struct("!h")
_U16_pack_into = _U16.pack_into

NOT_RECEIVED, SMALL, LARGE = 0, 1, 2


# ---- the header extension ------------------------------------------------------------------------
def find_transport_seq(data: rtp.Buffer, ext_id: int) -> int:
    """Offset of the 2-byte transport-wide sequence number in ``data`` (one-byte or two-byte
    header extension form), or -1 when the packet has no such element of length 2. Once per
    incoming packet: the generic lookup costs ~0.08 us more than a walk of our own would, which
    is not worth a second copy of it."""
    r = rtp._find_extension(data, ext_id)
    if r < 0 or r & 0xFF != 2:
        return -1
    return r >> 8


def read_transport_seq(data: rtp.Buffer, ext_id: int) -> int | None:
    """The transport-wide sequence number of an RTP packet, None if it carries none."""
    at = find_transport_seq(data, ext_id)
    return _U16.unpack_from(data, at)[0] if at >= 0 else None


def write_transport_seq(buf: bytearray, ext_id: int, seq: int) -> bool:
    """Overwrite the transport-wide sequence number in place; False if the packet has no slot
    for it (we never grow a packet: the sender's extension slot is reused)."""
    at = find_transport_seq(buf, ext_id)
    if at < 0:
        return False
    _U16.pack_into(buf, at, seq & 0xFFFF)
    return True


# ---- the feedback packet -------------------------------------------------------------------------
@dataclass
class Feedback:
    """One parsed feedback packet. ``arrivals[i]`` is the arrival time in microseconds (in the
    feedback sender's clock: reference time + deltas) of packet ``base_seq + i``, None if not
    received. ``reference`` is the raw 24-bit reference time (64 ms units)."""

    sender_ssrc: int
    media_ssrc: int
    base_seq: int
    reference: int
    fb_count: int
    arrivals: list[int | None] = field(default_factory=list)


def _statuses(arrivals: list[int | None], reference_us: int) -> tuple[list[int], list[int]]:
    """Status symbol per packet and delta (250 us ticks) per received packet. Deltas are
    rounded against the accumulated time, so rounding errors do not add up."""
    symbols: list[int] = []
    deltas: list[int] = []
    last = reference_us // DELTA_US
    for t in arrivals:
        if t is None:
            symbols.append(NOT_RECEIVED)
            continue
        tick = t // DELTA_US
        d = tick - last
        last = tick
        if 0 <= d <= 0xFF:
            symbols.append(SMALL)
        elif -0x8000 <= d <= 0x7FFF:
            symbols.append(LARGE)
        else:
            raise ValueError(f"receive delta {d * DELTA_US} us does not fit in a feedback packet")
        deltas.append(d)
    return symbols, deltas


def _chunks(symbols: list[int]) -> list[int]:
    """Encode status symbols greedily: a run where 7 or more equal symbols follow, else a
    1-bit vector (14 symbols) if they are all "not received"/"small", else a 2-bit vector (7).
    A vector past the end is filled with "not received", which the status count excludes."""
    out: list[int] = []
    i, n = 0, len(symbols)
    while i < n:
        s = symbols[i]
        run = 1
        while i + run < n and symbols[i + run] == s and run < MAX_STATUS_RUN:
            run += 1
        if run >= 7 or i + run == n:  # a long run, or the rest is one symbol
            out.append((s << 13) | run)
            i += run
            continue
        window = symbols[i:i + 14]
        if all(x <= SMALL for x in window):
            chunk = 0x8000
            for k, x in enumerate(window):
                chunk |= x << (13 - k)
            out.append(chunk)
            i += 14
        else:
            chunk = 0xC000
            for k, x in enumerate(symbols[i:i + 7]):
                chunk |= x << (12 - 2 * k)
            out.append(chunk)
            i += 7
    return out


def build_feedback(sender_ssrc: int, media_ssrc: int, base_seq: int, fb_count: int,
                   arrivals: list[int | None]) -> bytes:
    """A transport-cc feedback packet for packets ``base_seq``, ``base_seq+1``, ... with arrival
    times ``arrivals`` (microseconds in our own clock, None: not received). The reference time
    is the first arrival rounded down to 64 ms. Raises ValueError when there is nothing to
    report or a delta does not fit 16 bits (more than 8 s between two arrivals): the caller
    reports such packets in separate feedback."""
    first = next((t for t in arrivals if t is not None), None)
    if first is None or not arrivals or len(arrivals) > 0xFFFF:
        raise ValueError("feedback needs at least one received packet (and at most 65535)")
    reference = first // REFERENCE_US
    symbols, deltas = _statuses(arrivals, reference * REFERENCE_US)
    chunks = _chunks(symbols)
    body = bytearray(struct.pack("!%dH" % len(chunks), *chunks))
    for s, d in zip((x for x in symbols if x != NOT_RECEIVED), deltas):
        if s == SMALL:
            body.append(d)
        else:
            body += _h.pack(d)
    pad = -(20 + len(body)) % 4
    b0 = 0x80 | FMT_TCC
    if pad:  # RFC 3550 padding: the last byte counts the padding bytes
        body += bytes(pad - 1) + bytes([pad])
        b0 |= 0x20
    words = (20 + len(body)) // 4 - 1
    return _HEAD.pack(b0, rtp.RTCP_RTPFB, words, sender_ssrc, media_ssrc, base_seq & 0xFFFF, len(arrivals),
                      ((reference & 0xFFFFFF) << 8) | (fb_count & 0xFF)) + bytes(body)


def parse_feedback(data: rtp.Buffer, off: int, length: int) -> Feedback | None:
    """The feedback packet at ``off`` (as iter_rtcp yields it), or None if it is malformed or
    truncated. Status symbol 3 (reserved; some senders mean "received, no delta") counts as
    received without a time, i.e. as not usable: None."""
    end = min(off + length, len(data))
    if off < 0 or end - off < 20:
        return None
    b0, _pt, _w, sender, media, base, count, ref = _HEAD.unpack_from(data, off)
    if b0 & 0x20 and end - off > 20:  # padding counted in the last byte
        end -= data[end - 1]
    pos = off + 20
    symbols: list[int] = []
    while len(symbols) < count:
        if pos + 2 > end:
            return None
        chunk = _U16.unpack_from(data, pos)[0]
        pos += 2
        if not chunk & 0x8000:
            symbols.extend([(chunk >> 13) & 3] * (chunk & 0x1FFF))
        elif not chunk & 0x4000:
            symbols.extend((chunk >> (13 - k)) & 1 for k in range(14))
        else:
            symbols.extend((chunk >> (12 - 2 * k)) & 3 for k in range(7))
    del symbols[count:]
    reference = ref >> 8
    signed_ref = reference - (1 << 24) if reference & 0x800000 else reference
    t = signed_ref * REFERENCE_US
    arrivals: list[int | None] = []
    for s in symbols:
        if s == SMALL:
            if pos + 1 > end:
                return None
            t += data[pos] * DELTA_US
            pos += 1
            arrivals.append(t)
        elif s == LARGE:
            if pos + 2 > end:
                return None
            t += _h.unpack_from(data, pos)[0] * DELTA_US
            pos += 2
            arrivals.append(t)
        else:
            arrivals.append(None)
    return Feedback(sender, media, base, reference, ref & 0xFF, arrivals)


# ---- arrivals of one sender's packets, for the feedback we send it -------------------------------
class ArrivalLog:
    """Arrival times of a sender's packets by transport-wide sequence number, until the next
    feedback. A fixed ring (``size`` entries, indexed seq % size) so the receive path never
    allocates; `feedback` reports from the oldest unreported sequence number to the newest
    seen, at most ``size`` packets (anything older is reported lost: it was too late anyway)."""

    __slots__ = ("size", "times", "seqs", "next_seq", "high", "fb_count", "started")

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self.times = [0] * size  # arrival, microseconds
        self.seqs = [-1] * size  # unwrapped seq stored in that place (-1: empty)
        self.next_seq = 0  # unwrapped: first seq not yet reported
        self.high = -1  # unwrapped: highest seq seen
        self.fb_count = 0
        self.started = False

    def add(self, seq: int, now_us: int) -> None:
        if not self.started:
            self.started = True
            self.next_seq = self.high = seq
        else:
            ext = self.high + (((seq - self.high + 0x8000) & 0xFFFF) - 0x8000)
            if ext < self.next_seq:
                return  # already reported (lost then); a late arrival is not worth a packet
            if ext > self.high:
                self.high = ext
            seq = ext
        i = seq % self.size
        self.times[i] = now_us
        self.seqs[i] = seq

    def feedback(self, sender_ssrc: int, media_ssrc: int) -> list[bytes]:
        """Feedback packets for everything since the last call ([] if nothing arrived)."""
        if not self.started or self.high < self.next_seq:
            return []
        start = max(self.next_seq, self.high - self.size + 1)
        arrivals: list[int | None] = []
        for s in range(start, self.high + 1):
            i = s % self.size
            arrivals.append(self.times[i] if self.seqs[i] == s else None)
        self.next_seq = self.high + 1
        out: list[bytes] = []
        base = start
        while arrivals:  # split where two arrivals are too far apart for one packet
            cut = len(arrivals)
            prev = None
            for k, t in enumerate(arrivals):
                if t is None:
                    continue
                if prev is not None and abs(t - prev) >= 0x7FFF * DELTA_US:
                    cut = k
                    break
                prev = t
            part, arrivals = arrivals[:cut], arrivals[cut:]
            if any(t is not None for t in part):
                out.append(build_feedback(sender_ssrc, media_ssrc, base, self.fb_count, part))
                self.fb_count = (self.fb_count + 1) & 0xFF
            base += cut
        return out


# ---- what we sent one receiver, for reading its feedback -----------------------------------------
class SendLog:
    """Transport-wide numbering of the packets we send one receiver, and their send times and
    sizes for its feedback. Preallocated ring indexed seq % size (size a power of two): `stamp`
    runs for every forwarded packet, so it allocates nothing and looks nothing up.

    `stamp` overwrites the sequence number the *sender* put in the packet (its own numbering)
    with ours. What it gets from the conference is one tuple per *incoming* packet, (offset of
    the number, time, size), shared by every receiver's copy: the ring keeps a reference to it,
    so a forwarded packet costs no clock read and no new objects. The offset is where the
    sender's packet has it: the focus offers every participant the same extension id, so the
    slot is where the receiver expects it."""

    __slots__ = ("ext_id", "seq", "mask", "sent")

    def __init__(self, ext_id: int, size: int = 4096) -> None:
        assert size & (size - 1) == 0
        self.ext_id = ext_id
        self.seq = 0
        self.mask = size - 1
        self.sent: list[tuple[int, float, int] | None] = [None] * size

    def stamp(self, buf: bytearray, info: tuple[int, float, int]) -> None:
        """Number `buf` (a copy about to be sent); `info` = (offset, time.monotonic(), size)."""
        seq = self.seq
        self.seq = (seq + 1) & 0xFFFF
        _U16_pack_into(buf, info[0], seq)
        self.sent[seq & self.mask] = info

    def packets(self, fb: Feedback) -> list[tuple[float, int | None, int]]:
        """(send time, arrival us or None, size) for each packet of a feedback that we still
        remember (sent at most `size` packets ago; older or never sent ones are skipped)."""
        out: list[tuple[float, int | None, int]] = []
        newest = (self.seq - 1) & 0xFFFF
        mask = self.mask
        sent = self.sent
        for k, arrival in enumerate(fb.arrivals):
            seq = (fb.base_seq + k) & 0xFFFF
            if (newest - seq) & 0xFFFF > mask:
                continue  # not sent yet, or overwritten since
            info = sent[seq & mask]
            if info is not None:
                out.append((info[1], arrival, info[2]))
        return out
