"""The VP8 RTP payload descriptor (RFC 7741 section 4.2), read and patched in place.

A simulcast-forwarding SFU needs three things from a VP8 packet: whether it starts a keyframe
(a layer may only be switched there), and where the PictureID and TL0PICIDX are, to rewrite them
so the receiver sees one continuous picture numbering across layer switches.

Descriptor layout, from the start of the RTP payload::

     0 1 2 3 4 5 6 7
    +-+-+-+-+-+-+-+-+
    |X|R|N|S|R| PID | (required)
    +-+-+-+-+-+-+-+-+
    |I|L|T|K| RSV   | (present if X)
    +-+-+-+-+-+-+-+-+
    |M| PictureID   | (present if I; M: PictureID is 15 bits and continues in the next byte)
    +-+-+-+-+-+-+-+-+
    |   PictureID   | (present if M)
    +-+-+-+-+-+-+-+-+
    |   TL0PICIDX   | (present if L)
    +-+-+-+-+-+-+-+-+
    |TID|Y| KEYIDX  | (present if T or K)
    +-+-+-+-+-+-+-+-+

The VP8 payload header follows in the first packet of a frame (S=1, PID=0); bit 0 (P) of its
first byte is 0 for a keyframe, whose header then continues with the start code 9d 01 2a and
the 14-bit width and height (RFC 6386 section 9.1).

Everything here is fed from the network: readers bounds-check and return None instead of
raising. ``data`` may be ``bytes``, ``bytearray`` or ``memoryview``; ``off`` is the offset of
the RTP payload (``rtp.payload_offset``) and ``end`` the end of the payload (before RTP
padding; default: the end of the buffer).
"""
from __future__ import annotations

from typing import NamedTuple, Union

Buffer = Union[bytes, bytearray, memoryview]

__all__ = ["Descriptor", "parse", "is_keyframe", "keyframe_size", "rewrite", "payload_end"]


class Descriptor(NamedTuple):
    start: bool  # S: first packet of a VP8 partition
    partition: int  # PID: partition index
    non_reference: bool  # N
    picture_id: int | None
    picture_id_bits: int  # 0 (absent), 7 or 15
    picture_id_at: int  # offset in the buffer, -1 if absent
    tl0picidx: int | None
    tl0picidx_at: int  # offset in the buffer, -1 if absent
    tid: int | None  # temporal layer index (T)
    layer_sync: bool | None  # Y
    keyidx: int | None  # KEYIDX (K)
    size: int  # bytes of descriptor
    keyframe: bool  # this packet starts a keyframe


def payload_end(data: Buffer) -> int | None:
    """End of the RTP payload: the packet length less the RTP padding (P bit), or None if the
    padding count is inconsistent."""
    n = len(data)
    if n < 12:
        return None
    if data[0] & 0x20:
        pad = data[n - 1]
        if pad == 0 or pad > n - 12:
            return None
        return n - pad
    return n


def parse(data: Buffer, off: int, end: int | None = None) -> Descriptor | None:
    """The descriptor at ``off``, or None if it runs past ``end`` (an empty payload, e.g. an
    RTP padding-only packet, has none)."""
    n = len(data) if end is None else min(end, len(data))
    if off < 0 or off >= n:
        return None
    b0 = data[off]
    pos = off + 1
    picture_id = tl0 = tid = keyidx = None
    layer_sync = None
    bits = 0
    pid_at = tl0_at = -1
    if b0 & 0x80:
        if pos >= n:
            return None
        x = data[pos]
        pos += 1
        if x & 0x80:  # I
            if pos >= n:
                return None
            pid_at = pos
            if data[pos] & 0x80:  # M: 15 bits
                if pos + 2 > n:
                    return None
                picture_id = ((data[pos] & 0x7F) << 8) | data[pos + 1]
                bits = 15
                pos += 2
            else:
                picture_id = data[pos]
                bits = 7
                pos += 1
        if x & 0x40:  # L
            if pos >= n:
                return None
            tl0_at = pos
            tl0 = data[pos]
            pos += 1
        if x & 0x30:  # T or K share one byte
            if pos >= n:
                return None
            b = data[pos]
            if x & 0x20:
                tid = b >> 6
                layer_sync = bool(b & 0x20)
            if x & 0x10:
                keyidx = b & 0x1F
            pos += 1
    start = bool(b0 & 0x10)
    partition = b0 & 0x07
    keyframe = start and partition == 0 and pos < n and not data[pos] & 0x01
    return Descriptor(start, partition, bool(b0 & 0x20), picture_id, bits, pid_at, tl0, tl0_at,
                      tid, layer_sync, keyidx, pos - off, keyframe)


def is_keyframe(data: Buffer, off: int, end: int | None = None) -> bool:
    """True if the packet starts a keyframe: S=1, PID=0 and the payload header's P bit is 0."""
    n = len(data) if end is None else min(end, len(data))
    if off < 0 or off >= n:
        return False
    b0 = data[off]
    if b0 & 0x17 != 0x10:  # S=1, PID=0
        return False
    pos = off + 1
    if b0 & 0x80:
        if pos >= n:
            return False
        x = data[pos]
        pos += 1
        if x & 0x80:
            if pos >= n:
                return False
            pos += 2 if data[pos] & 0x80 else 1
        if x & 0x40:
            pos += 1
        if x & 0x30:
            pos += 1
    return pos < n and not data[pos] & 0x01


def keyframe_size(data: Buffer, off: int, end: int | None = None) -> tuple[int, int] | None:
    """(width, height) from the keyframe header of a packet that starts a keyframe, else None."""
    d = parse(data, off, end)
    if d is None or not d.keyframe:
        return None
    n = len(data) if end is None else min(end, len(data))
    pos = off + d.size
    if pos + 10 > n or bytes(data[pos + 3:pos + 6]) != b"\x9d\x01\x2a":
        return None
    width = (data[pos + 6] | data[pos + 7] << 8) & 0x3FFF
    height = (data[pos + 8] | data[pos + 9] << 8) & 0x3FFF
    return width, height


def rewrite(buf: bytearray, off: int, picture_id: int | None = None, tl0picidx: int | None = None,
            end: int | None = None) -> bool:
    """Set the PictureID (kept at the packet's width: the value is reduced modulo 2^7 or 2^15)
    and/or the TL0PICIDX (modulo 256) in place; fields the packet does not carry are left
    alone. False, with ``buf`` untouched, if there is no readable descriptor."""
    d = parse(buf, off, end)
    if d is None:
        return False
    if picture_id is not None and d.picture_id_at >= 0:
        pos = d.picture_id_at
        if d.picture_id_bits == 15:
            buf[pos] = 0x80 | (picture_id >> 8 & 0x7F)
            buf[pos + 1] = picture_id & 0xFF
        else:
            buf[pos] = picture_id & 0x7F
    if tl0picidx is not None and d.tl0picidx_at >= 0:
        buf[d.tl0picidx_at] = tl0picidx & 0xFF
    return True
