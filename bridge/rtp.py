"""Byte-level RTP/RTCP helpers for the bridge's hot path.

Packets arrive as plain ``bytes`` (already SRTP-decrypted).  The bridge only needs a handful of
fields per packet (SSRC, sequence number, an audio level, the payload offset) and needs to rewrite
three of them (SSRC, sequence number, timestamp) when forwarding.  Parsing every packet into an
object and serialising it again costs microseconds per packet; reading the fields straight out of
the buffer with precompiled ``struct.Struct`` objects and patching them in place costs a fraction
of that.  So everything here works on offsets into the caller's buffer:

* readers take ``bytes``/``bytearray``/``memoryview`` and never copy the packet;
* writers take a ``bytearray`` and patch it with ``pack_into``;
* anything that walks variable-length structures (header extensions, compound RTCP, NACK FCI)
  bounds-checks every step and returns ``None`` / ``False`` / stops on garbage instead of raising,
  because everything here is fed straight from the network.

Fixed-header accessors (``rtp_ssrc`` ...) do *not* re-validate: call ``is_rtp`` (or
``is_rtcp``) once per datagram first, as the demultiplexer does anyway.

References: RFC 3550 (RTP/RTCP), RFC 5761 (RTP/RTCP mux), RFC 8285 (header extensions),
RFC 6464 (audio level), RFC 4585 (generic NACK, PLI), RFC 5104 (FIR),
draft-alvestrand-rmcat-remb (REMB).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Iterator, Union

__all__ = [
    "Buffer",
    "RTCP_SR", "RTCP_RR", "RTCP_SDES", "RTCP_BYE", "RTCP_APP", "RTCP_RTPFB", "RTCP_PSFB",
    "RTCP_XR", "RTPFB_NACK", "PSFB_PLI", "PSFB_FIR", "PSFB_AFB",
    "is_rtcp", "is_rtp",
    "rtp_ssrc", "rtp_seq", "rtp_timestamp", "rtp_payload_type", "rtp_marker",
    "rewrite_rtp",
    "header_extension", "audio_level", "payload_offset", "padding_only", "unwrap_rtx",
    "iter_rtcp", "rtcp_sender_ssrc", "rtcp_media_ssrc", "iter_fir",
    "build_pli", "build_fir", "build_remb", "parse_remb",
    "ReportBlock", "build_receiver_report", "parse_report_blocks",
    "build_nack", "parse_nack",
    "rewrite_rtcp_ssrcs",
    "seq_delta", "seq_newer", "ts_delta", "StreamRewriter",
]

Buffer = Union[bytes, bytearray, memoryview]

# RTCP packet types (RFC 3550 section 12.1, RFC 4585, RFC 3611).
RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204
RTCP_RTPFB = 205
RTCP_PSFB = 206
RTCP_XR = 207

RTPFB_NACK = 1   # generic NACK (RFC 4585 6.2.1)
PSFB_PLI = 1     # picture loss indication (RFC 4585 6.3.1)
PSFB_FIR = 4     # full intra request (RFC 5104 4.3.1)
PSFB_AFB = 15    # application layer feedback, used by REMB

# Precompiled structs (network byte order).  Struct.unpack_from/pack_into avoid both slicing and
# re-parsing the format string per call.
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_HH = struct.Struct("!HH")            # header extension: profile, length in words
_HH_unpack_from = _HH.unpack_from
_SEQ_TS_SSRC = struct.Struct("!HII")  # RTP bytes 2..11
_SEQ_TS = struct.Struct("!HI")        # RTP bytes 2..7
_BBH = struct.Struct("!BBH")          # RTCP common header
_RTCP_FB = struct.Struct("!BBHII")    # RTCP feedback header: V/P/FMT, PT, length, sender, media
_FIR_FCI = struct.Struct("!IB3x")     # RFC 5104 FIR FCI entry: SSRC, seq nr, reserved
_NACK_FCI = struct.Struct("!HH")      # RFC 4585 generic NACK FCI: PID, BLP
_REMB_HEAD = struct.Struct("!4sBBH")  # "REMB", num SSRC, exp(6)|mantissa(18)
_RR_HEAD = struct.Struct("!BBHI")     # RR header + sender SSRC
# report block: SSRC, fraction lost|cumulative lost, extended highest seq, jitter, LSR, DLSR
_REPORT_BLOCK = struct.Struct("!IIIIII")

_REMB_ID = b"REMB"
_RTCP_VERSION_BITS = 0x80


# --------------------------------------------------------------------------------------------
# Demultiplexing


def is_rtcp(data: Buffer) -> bool:
    """RTCP vs RTP on a muxed port (RFC 5761 section 4): RTCP packet types 192..223 land in the
    second byte where RTP has marker+payload type, and no RTP payload type may use 64..95."""
    return len(data) >= 4 and data[0] & 0xC0 == 0x80 and 192 <= data[1] <= 223


def is_rtp(data: Buffer) -> bool:
    """Version 2, at least the 12-byte fixed header, and not RTCP (RFC 5761 demux)."""
    return len(data) >= 12 and data[0] & 0xC0 == 0x80 and not 192 <= data[1] <= 223


# --------------------------------------------------------------------------------------------
# RTP fixed header (caller has checked is_rtp)


def rtp_ssrc(data: Buffer) -> int:
    """Synchronisation source, bytes 8..11: the key for routing a packet to its source."""
    return _U32.unpack_from(data, 8)[0]


def rtp_seq(data: Buffer) -> int:
    """16-bit sequence number, bytes 2..3."""
    return _U16.unpack_from(data, 2)[0]


def rtp_timestamp(data: Buffer) -> int:
    """32-bit media timestamp, bytes 4..7."""
    return _U32.unpack_from(data, 4)[0]


def rtp_payload_type(data: Buffer) -> int:
    """7-bit payload type: tells RTX (RFC 4588) and codec packets apart on one SSRC space."""
    return data[1] & 0x7F


def rtp_marker(data: Buffer) -> bool:
    """Marker bit: last packet of a video frame / start of a talkspurt."""
    return data[1] & 0x80 != 0


def rewrite_rtp(buf: bytearray, ssrc: int, seq: int, timestamp: int) -> None:
    """Patch SSRC, sequence number and timestamp in place (one pack_into, no reparse), which is
    all a forwarding SFU changes in the fixed header.  seq/timestamp are reduced modulo 2^16/2^32
    so callers can pass offset arithmetic results directly."""
    _SEQ_TS_SSRC.pack_into(buf, 2, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)


# --------------------------------------------------------------------------------------------
# Header extensions (RFC 8285) and payload offset


def _find_extension(data: Buffer, ext_id: int) -> int:
    """Locate element ``ext_id`` in the header extension block.

    Returns ``(offset << 8) | length`` of the element's data (one int, so callers allocate
    nothing), or -1 when absent or when the packet is malformed/truncated."""
    n = len(data)
    if n < 16:
        return -1
    b0 = data[0]
    if b0 & 0xD0 != 0x90:  # version 2 with the X bit
        return -1
    off = 12 + ((b0 & 0x0F) << 2)
    if off + 4 > n:
        return -1
    profile, words = _HH_unpack_from(data, off)
    pos = off + 4
    end = pos + (words << 2)
    if end > n:
        return -1
    if profile == 0xBEDE:  # one-byte header form
        if not 0 < ext_id < 15:
            return -1
        while pos < end:
            b = data[pos]
            eid = b >> 4
            if eid == ext_id:
                pos += 1
                length = (b & 0x0F) + 1
                return (pos << 8) | length if pos + length <= end else -1
            if b == 0:  # padding byte
                pos += 1
            elif eid == 15 or eid == 0:  # 15: stop (RFC 8285 4.2); 0 with L != 0: garbage
                return -1
            else:
                pos += (b & 0x0F) + 2
        return -1
    if profile & 0xFFF0 == 0x1000:  # two-byte header, low 4 bits are "appbits"
        if not 0 < ext_id < 256:
            return -1
        while pos < end:
            eid = data[pos]
            if eid == 0:  # padding byte
                pos += 1
                continue
            if pos + 2 > end:
                return -1
            length = data[pos + 1]
            pos += 2
            if eid == ext_id:
                return (pos << 8) | length if pos + length <= end else -1
            pos += length
        return -1
    return -1


def header_extension(data: Buffer, ext_id: int) -> Buffer | None:
    """Data of the RFC 8285 header-extension element with local id ``ext_id`` (one-byte 0xBEDE
    or two-byte 0x100X form), as a slice of ``data`` (same type as ``data``; pass a memoryview
    to avoid a copy), or None if absent, the id is out of range for the form, or the packet is
    malformed.  A two-byte-form element may legitimately be empty."""
    r = _find_extension(data, ext_id)
    if r < 0:
        return None
    pos = r >> 8
    return data[pos:pos + (r & 0xFF)]


def audio_level(data: Buffer, ext_id: int) -> tuple[bool, int] | None:
    """RFC 6464 client-to-mixer audio level: (voice activity flag, level in -dBov 0..127 where
    127 is silence), or None if the extension is absent/empty/malformed.

    Dominant-speaker detection reads this for every audio packet of every participant, so the
    usual case (one-byte form, as browsers send it) is walked inline here; other forms go
    through the generic lookup."""
    n = len(data)
    if n >= 16 and data[0] & 0xD0 == 0x90 and 0 < ext_id < 15:
        off = 12 + ((data[0] & 0x0F) << 2)
        if off + 4 <= n:
            profile, words = _HH_unpack_from(data, off)
            if profile == 0xBEDE:
                pos = off + 4
                end = pos + (words << 2)
                if end > n:
                    return None
                while pos < end:
                    b = data[pos]
                    eid = b >> 4
                    if eid == ext_id:
                        if pos + 1 + (b & 0x0F) >= end:
                            return None
                        b = data[pos + 1]
                        return b > 0x7F, b & 0x7F
                    if b == 0:
                        pos += 1
                    elif eid == 15 or eid == 0:
                        return None
                    else:
                        pos += (b & 0x0F) + 2
                return None
    r = _find_extension(data, ext_id)
    if r < 0 or not r & 0xFF:
        return None
    b = data[r >> 8]
    return b > 0x7F, b & 0x7F


def payload_offset(data: Buffer) -> int | None:
    """Offset of the payload (after fixed header, CSRCs and header extension), or None if those
    run past the packet or the RTP padding count is inconsistent.  Used to find e.g. the VP8
    payload descriptor without parsing the packet."""
    n = len(data)
    if n < 12:
        return None
    b0 = data[0]
    if b0 & 0xC0 != 0x80:
        return None
    off = 12 + ((b0 & 0x0F) << 2)
    if b0 & 0x10:
        if off + 4 > n:
            return None
        off += 4 + (_U16.unpack_from(data, off + 2)[0] << 2)
    if off > n:
        return None
    if b0 & 0x20:  # padding: last byte counts padding bytes, itself included
        pad = data[n - 1] if n > off else 0
        if pad == 0 or off + pad > n:
            return None
    return off


def unwrap_rtx(data: Buffer, ssrc: int, payload_type: int) -> bytes | None:
    """The packet an RTX retransmission (RFC 4588 4) carries: the original sequence number from
    the first two payload bytes, `ssrc` and `payload_type` of the stream it repairs, the rest of
    the header (extensions, marker, timestamp) as it is. None if it is too short to carry one."""
    off = payload_offset(data)
    if off is None:
        return None
    end = len(data) - (data[len(data) - 1] if data[0] & 0x20 else 0)
    if end - off < 2:
        return None
    osn = _U16.unpack_from(data, off)[0]
    buf = bytearray(data[:off])
    buf += data[off + 2:end]
    buf[0] &= 0xDF  # the padding went with the RTX wrapper
    buf[1] = (buf[1] & 0x80) | payload_type
    rewrite_rtp(buf, ssrc, osn, rtp_timestamp(data))
    return bytes(buf)


def padding_only(data: Buffer) -> bool:
    """True for a packet that is all padding (RFC 3550 5.1, P bit): what a sender's pacer sends
    to probe its link (browsers do, on audio too, once transport-cc is negotiated). Nothing for
    a receiver to decode; aiortc's decoders even break on the empty payload. Malformed padding
    counts too: it cannot be forwarded either."""
    if not data[0] & 0x20:
        return False
    off = payload_offset(data)
    return off is None or data[len(data) - 1] >= len(data) - off


# --------------------------------------------------------------------------------------------
# RTCP reading


def iter_rtcp(data: Buffer) -> Iterator[tuple[int, int, int, int]]:
    """Walk a compound RTCP packet, yielding ``(packet_type, fmt_or_count, offset, length_bytes)``
    per packet.  Stops silently at the first header that is not version 2 or whose length runs
    past the buffer, so garbage never raises."""
    n = len(data)
    off = 0
    unpack = _BBH.unpack_from
    while off + 4 <= n:
        b0, pt, words = unpack(data, off)
        length = (words + 1) << 2
        if b0 & 0xC0 != 0x80 or off + length > n:
            return
        yield pt, b0 & 0x1F, off, length
        off += length


def rtcp_sender_ssrc(data: Buffer, off: int) -> int | None:
    """SSRC of the packet sender (offset+4 in SR, RR, RTPFB, PSFB, APP) or None if truncated."""
    if off < 0 or off + 8 > len(data):
        return None
    return _U32.unpack_from(data, off + 4)[0]


def rtcp_media_ssrc(data: Buffer, off: int) -> int | None:
    """Media source SSRC of a feedback packet (RFC 4585 6.1, offset+8): which forwarded stream a
    NACK/PLI refers to, so the bridge can map it back to the original source.  None if
    truncated.  0 for FIR and REMB, whose targets are in the FCI."""
    if off < 0 or off + 12 > len(data):
        return None
    return _U32.unpack_from(data, off + 8)[0]


def iter_fir(data: Buffer, off: int, length: int) -> Iterator[tuple[int, int]]:
    """``(ssrc, command_seq_nr)`` for each FCI entry of a FIR (RFC 5104 4.3.1.1: entries of 8
    bytes from offset+12).  Stops at the packet end or the buffer end."""
    if off < 0:
        return
    end = min(off + length, len(data))
    pos = off + 12
    while pos + 8 <= end:
        yield _FIR_FCI.unpack_from(data, pos)
        pos += 8


# --------------------------------------------------------------------------------------------
# RTCP builders


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """Picture Loss Indication (RFC 4585 6.3.1): PSFB fmt 1, no FCI.  Sent to a video source
    when a receiver needs a keyframe."""
    return _RTCP_FB.pack(_RTCP_VERSION_BITS | PSFB_PLI, RTCP_PSFB, 2, sender_ssrc, media_ssrc)


def build_fir(sender_ssrc: int, media_ssrc: int, seq_nr: int) -> bytes:
    """Full Intra Request (RFC 5104 4.3.1): PSFB fmt 4.  The header's media source SSRC is 0 as
    the RFC requires; the target is in the FCI with the command sequence number, which the
    sender must increment per new request (repeats of one request keep it)."""
    return _RTCP_FB.pack(_RTCP_VERSION_BITS | PSFB_FIR, RTCP_PSFB, 4, sender_ssrc, 0) + \
        _FIR_FCI.pack(media_ssrc, seq_nr & 0xFF)


def build_remb(sender_ssrc: int, bitrate_bps: int, ssrcs: list[int] | tuple[int, ...]) -> bytes:
    """Receiver Estimated Max Bitrate (draft-alvestrand-rmcat-remb): PSFB fmt 15, media SSRC 0,
    "REMB", SSRC count, bitrate as 6-bit exponent and 18-bit mantissa (rounded down, so the
    sender is never told more than the estimate), then the SSRCs it applies to."""
    bitrate = max(0, int(bitrate_bps))
    exp = 0
    while bitrate >> exp > 0x3FFFF:
        exp += 1
    if exp > 63:
        exp, mantissa = 63, 0x3FFFF
    else:
        mantissa = bitrate >> exp
    count = len(ssrcs)
    if count > 255:
        raise ValueError("REMB carries at most 255 SSRCs")
    return (_RTCP_FB.pack(_RTCP_VERSION_BITS | PSFB_AFB, RTCP_PSFB, 4 + count, sender_ssrc, 0)
            + _REMB_HEAD.pack(_REMB_ID, count, (exp << 2) | (mantissa >> 16), mantissa & 0xFFFF)
            + struct.pack("!%dI" % count, *ssrcs))


def parse_remb(data: Buffer, off: int, length: int) -> tuple[int, list[int]] | None:
    """``(bitrate_bps, ssrcs)`` of a REMB packet at ``off`` (PSFB fmt 15 with the "REMB"
    identifier), or None if it is not a well-formed REMB."""
    end = off + length
    if off < 0 or end > len(data) or length < 20:
        return None
    ident, count, b1, low = _REMB_HEAD.unpack_from(data, off + 12)
    if ident != _REMB_ID or off + 20 + 4 * count > end:
        return None
    bitrate = (((b1 & 0x03) << 16) | low) << (b1 >> 2)
    return bitrate, [_U32.unpack_from(data, off + 20 + 4 * i)[0] for i in range(count)]


@dataclass(slots=True)
class ReportBlock:
    """One RTCP reception report block (RFC 3550 6.4.1).

    ``fraction_lost`` is the 8-bit fixed-point fraction (lost/expected * 256), ``cumulative_lost``
    a signed 24-bit count (clamped when packed), ``highest_seq`` the extended highest sequence
    number, ``jitter`` in timestamp units, ``lsr``/``dlsr`` the middle 32 bits of the last SR's
    NTP time and the delay since it in 1/65536 s."""
    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_seq: int
    jitter: int
    lsr: int
    dlsr: int


def _pack_report_block(buf: bytearray, pos: int, r: ReportBlock) -> None:
    lost = min(max(r.cumulative_lost, -0x800000), 0x7FFFFF) & 0xFFFFFF
    _REPORT_BLOCK.pack_into(buf, pos, r.ssrc, ((r.fraction_lost & 0xFF) << 24) | lost,
                            r.highest_seq & 0xFFFFFFFF, r.jitter & 0xFFFFFFFF,
                            r.lsr & 0xFFFFFFFF, r.dlsr & 0xFFFFFFFF)


def build_receiver_report(sender_ssrc: int, reports: list[ReportBlock]) -> bytes:
    """Receiver Report(s) (RFC 3550 6.4.2) from the bridge about the streams it receives.  The
    5-bit count allows 31 blocks per RR, so more reports become several RR packets in one
    compound packet; no reports gives the empty RR that starts a compound packet."""
    chunks = [reports[i:i + 31] for i in range(0, len(reports), 31)] or [[]]
    size = sum(8 + 24 * len(c) for c in chunks)
    buf = bytearray(size)
    pos = 0
    for chunk in chunks:
        count = len(chunk)
        _RR_HEAD.pack_into(buf, pos, _RTCP_VERSION_BITS | count, RTCP_RR, 1 + 6 * count,
                           sender_ssrc)
        pos += 8
        for r in chunk:
            _pack_report_block(buf, pos, r)
            pos += 24
    return bytes(buf)


def parse_report_blocks(data: Buffer, off: int, length: int) -> list[ReportBlock]:
    """Report blocks of an SR (blocks from offset+28) or RR (from offset+8) at ``off``; [] for
    other types, and only the blocks that fit in both the packet and the buffer."""
    if off < 0 or off + 4 > len(data):
        return []
    b0, pt = data[off], data[off + 1]
    if pt == RTCP_SR:
        pos = off + 28
    elif pt == RTCP_RR:
        pos = off + 8
    else:
        return []
    end = min(off + length, len(data))
    out = []
    for _ in range(b0 & 0x1F):
        if pos + 24 > end:
            break
        ssrc, fl, hs, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, pos)
        lost = fl & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        out.append(ReportBlock(ssrc, fl >> 24, lost, hs, jitter, lsr, dlsr))
        pos += 24
    return out


def build_nack(sender_ssrc: int, media_ssrc: int, lost_seqs: list[int]) -> bytes:
    """Generic NACK (RFC 4585 6.2.1): RTPFB fmt 1 with (PID, BLP) pairs, each covering PID and
    the 16 following sequence numbers.  Input order does not matter and wrap-around is handled:
    numbers are sorted in sequence space relative to the first one, duplicates merged.
    Raises ValueError for an empty list (a NACK needs at least one FCI entry)."""
    if not lost_seqs:
        raise ValueError("NACK without lost sequence numbers")
    ref = lost_seqs[0] & 0xFFFF
    # Sort by signed distance to the first entry, so [65535, 0, 1] stays in that order.
    ordered = sorted({s & 0xFFFF for s in lost_seqs},
                     key=lambda s: ((s - ref + 0x8000) & 0xFFFF) - 0x8000)
    fci = bytearray()
    pid = ordered[0]
    blp = 0
    for s in ordered[1:]:
        d = (s - pid) & 0xFFFF
        if d <= 16:
            blp |= 1 << (d - 1)
        else:
            fci += _NACK_FCI.pack(pid, blp)
            pid, blp = s, 0
    fci += _NACK_FCI.pack(pid, blp)
    return _RTCP_FB.pack(_RTCP_VERSION_BITS | RTPFB_NACK, RTCP_RTPFB, 2 + len(fci) // 4,
                         sender_ssrc, media_ssrc) + bytes(fci)


def parse_nack(data: Buffer, off: int, length: int) -> list[int]:
    """Lost sequence numbers of a generic NACK at ``off`` (FCI from offset+12), in packet order;
    [] when truncated or empty.  Used to serve retransmissions from the bridge's history."""
    end = min(off + length, len(data))
    pos = off + 12
    out: list[int] = []
    if off < 0:
        return out
    while pos + 4 <= end:
        pid, blp = _NACK_FCI.unpack_from(data, pos)
        out.append(pid)
        bit = 0
        while blp:
            if blp & 1:
                out.append((pid + bit + 1) & 0xFFFF)
            blp >>= 1
            bit += 1
        pos += 4
    return out


# --------------------------------------------------------------------------------------------
# RTCP SSRC rewriting


def _rtcp_ssrc_positions(buf: Buffer) -> list[int] | None:
    """Offsets of every SSRC field rewrite_rtcp_ssrcs knows about, or None if the compound
    packet is malformed or holds a packet type it cannot rewrite."""
    n = len(buf)
    if n < 4:
        return None
    out: list[int] = []
    add = out.append
    off = 0
    while off < n:
        if off + 4 > n:
            return None
        b0, pt, words = _BBH.unpack_from(buf, off)
        end = off + ((words + 1) << 2)
        if b0 & 0xC0 != 0x80 or end > n:
            return None
        count = b0 & 0x1F
        if pt == RTCP_SR or pt == RTCP_RR:
            pos = off + (28 if pt == RTCP_SR else 8)
            if pos + 24 * count > end:
                return None
            add(off + 4)
            for _ in range(count):
                add(pos)
                pos += 24
        elif pt == RTCP_RTPFB or pt == RTCP_PSFB:
            if end - off < 12:
                return None
            add(off + 4)
            if _U32.unpack_from(buf, off + 8)[0] != 0:  # 0 in FIR and REMB: not an SSRC
                add(off + 8)
            if pt == RTCP_PSFB and count == PSFB_FIR:
                pos = off + 12
                while pos + 8 <= end:
                    add(pos)
                    pos += 8
            elif pt == RTCP_PSFB and count == PSFB_AFB and end - off >= 20 \
                    and buf[off + 12:off + 16] == _REMB_ID:
                pos = off + 20
                stop = pos + 4 * buf[off + 16]
                if stop > end:
                    return None
                while pos < stop:
                    add(pos)
                    pos += 4
        elif pt == RTCP_SDES:
            pos = off + 4
            for _ in range(count):
                # chunk: SSRC, items (type, len, text) up to a null type, padded to 32 bits
                if pos + 4 > end:
                    return None
                add(pos)
                pos += 4
                while True:
                    if pos >= end:
                        return None
                    if buf[pos] == 0:
                        pos = (pos + 4) & ~3  # offsets are relative to a 32-bit aligned start
                        break
                    if pos + 2 > end:
                        return None
                    pos += 2 + buf[pos + 1]
                if pos > end:
                    return None
        elif pt == RTCP_BYE:
            if off + 4 + 4 * count > end:
                return None
            out.extend(range(off + 4, off + 4 + 4 * count, 4))
        else:
            return None
        off = end
    return out


def rewrite_rtcp_ssrcs(buf: bytearray, mapping: Callable[[int], int | None]) -> bool:
    """Rewrite in place every SSRC of a compound RTCP packet through ``mapping`` (old -> new, or
    None for unknown): sender and report-block SSRCs of SR/RR, chunk SSRCs of SDES, SSRCs of BYE,
    sender and media SSRCs of RTPFB/PSFB plus the FIR and REMB FCI SSRCs (a media SSRC of 0, as
    in FIR and REMB, is left alone).  Used to forward e.g. a source's SR to a receiver under the
    SSRC the receiver knows, without leaking the original SSRCs.

    Returns False, leaving ``buf`` untouched, if any SSRC maps to None, if the compound holds a
    packet type whose SSRCs this function does not know (APP, XR, ...), or if it is malformed
    (including trailing bytes)."""
    positions = _rtcp_ssrc_positions(buf)
    if positions is None:
        return False
    original = bytes(buf)  # RTCP packets are small: a snapshot is cheaper than two passes
    unpack = _U32.unpack_from
    pack = _U32.pack_into
    for pos in positions:
        ssrc = mapping(unpack(original, pos)[0])
        if ssrc is None:
            buf[:] = original
            return False
        pack(buf, pos, ssrc)
    return True


# --------------------------------------------------------------------------------------------
# Sequence number arithmetic


def seq_delta(a: int, b: int) -> int:
    """Signed distance a - b between 16-bit sequence numbers, in [-32768, 32767]: positive if
    ``a`` is newer than ``b`` across wrap-around (RFC 3550 A.1 style)."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def seq_newer(a: int, b: int) -> bool:
    """True if 16-bit sequence number ``a`` comes after ``b``."""
    return 0 < ((a - b) & 0xFFFF) < 0x8000


def ts_delta(a: int, b: int) -> int:
    """Signed distance a - b between 32-bit RTP timestamps."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


class StreamRewriter:
    """Keeps one outgoing stream (a receiver's slot: fixed SSRC) continuous while the source
    behind it changes, e.g. when the forwarded speaker or simulcast layer switches.

    Output seq = input seq + seq offset, output ts = input ts + ts offset.  After ``switch()``
    the next packet re-anchors the offsets so its seq follows the highest one sent and its
    timestamp advances by ``ts_gap`` (caller's estimate of the elapsed time in clock units).
    Packets from before the anchor of the current source are dropped (``rewrite`` returns
    False) because their rewritten numbers would collide with the previous source's."""

    __slots__ = ("ssrc", "_seq_off", "_ts_off", "_last_seq", "_last_ts", "_switch", "_gap",
                 "_hi_in", "_hi_pos", "_started")

    def __init__(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self._seq_off = 0
        self._ts_off = 0
        self._last_seq = 0   # highest output seq
        self._last_ts = 0    # output timestamp of that packet
        self._hi_in = 0      # highest input seq of the current source
        self._hi_pos = 0     # its distance from the anchor packet (unwrapped)
        self._switch = True
        self._started = False
        self._gap = 1

    def switch(self, ts_gap: int = 1) -> None:
        """The next packet comes from a new source (or follows a discontinuity)."""
        self._switch = True
        self._gap = max(1, ts_gap)

    def rewrite(self, buf: bytearray) -> bool:
        """Rewrite SSRC, seq and timestamp of ``buf`` in place; False if it must be dropped."""
        seq, ts = _SEQ_TS.unpack_from(buf, 2)
        if self._switch:
            self._switch = False
            self._hi_in = seq
            self._hi_pos = 0
            if self._started:
                self._seq_off = (self._last_seq + 1 - seq) & 0xFFFF
                self._ts_off = (self._last_ts + self._gap - ts) & 0xFFFFFFFF
            else:
                self._started = True
                self._seq_off = 0
                self._ts_off = 0
        else:
            d = ((seq - self._hi_in + 0x8000) & 0xFFFF) - 0x8000
            pos = self._hi_pos + d
            if pos < 0:
                return False
            if d > 0:
                self._hi_in = seq
                self._hi_pos = pos
        out_seq = (seq + self._seq_off) & 0xFFFF
        out_ts = (ts + self._ts_off) & 0xFFFFFFFF
        if self._hi_in == seq:
            self._last_seq = out_seq
            self._last_ts = out_ts
        _SEQ_TS_SSRC.pack_into(buf, 2, out_seq, out_ts, self.ssrc)
        return True
