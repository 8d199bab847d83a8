"""Which simulcast layer each receiver gets.

A sender's video source with an SSRC group SIM of k SSRCs is one logical source in k layers,
lowest first (the first SSRC names the source: it is what fills a receiver's slot). A receiver's
slot holding such a source forwards one layer at a time (slots.py does the per-packet part and
switches only at a keyframe of the target layer); this module picks the target.

Target = the layer for the receiver's constraint on that source (Jitsi's bridge-channel message
ReceiverVideoConstraints: per-source `constraints` or `defaultConstraints`, {"maxHeight": H};
H <= 180 -> layer 0, <= 360 -> 1, else 2, capped at the layers the source has; 0 = no video;
no constraint = the top layer), lowered while that layer is not arriving (measured 0 bits/s
over the last second, while another layer of the source does arrive) or does not fit the
receiver's bandwidth.

Bandwidth, kept simple: the only estimate is the REMB the receiver sends us (none: no limit).
A REMB reflects what the receiver gets, so it cannot tell us a higher layer would fit; we read
it as a congestion signal only. When a REMB is below 90% of what we forward to that receiver
(video, measured at the senders), its estimate becomes a budget for BWE_HOLD seconds (renewed
by every such REMB): slots in speaker order get the highest layer that fits what is left
(layer 0 at least: video is never turned off for bandwidth). After the hold the receiver goes back to its constraints; if
the link still cannot take that, the next REMB limits it again. No probing, no pacing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from .endpoint import Endpoint
    from .slots import Slot

UNLIMITED = 1 << 16  # a max height that means "no limit"
BWE_HOLD = 10.0  # seconds a receiver's REMB limits its layers after it showed congestion
CONGESTED = 0.9  # a REMB below this share of what we forward shows congestion (not measurement noise)
LAYER_HEIGHTS = (180, 360)  # heights up to which layer 0, 1 suffice; above: layer 2


def layer_for_height(height: int, layers: int) -> int:
    """Layer index for a max height (-1: no video), capped at the source's `layers`."""
    if height <= 0:
        return -1
    index = len(LAYER_HEIGHTS)
    for i, h in enumerate(LAYER_HEIGHTS):
        if height <= h:
            index = i
            break
    return min(index, layers - 1)


def budget(recv: "Endpoint", now: float) -> float | None:
    """bits/s the receiver's video may use, None if unlimited."""
    if recv.remb_bps is not None and now < recv.bwe_limited_until:
        return float(recv.remb_bps)
    return None


def forwarded_rate(recv: "Endpoint", owner_of: dict[int, "Endpoint"]) -> float:
    """bits/s of video we forward to `recv` now (measured at the senders)."""
    total = 0.0
    for slot in recv.video_slots:
        ssrc = slot.layer_ssrc if slot.layers is not None else slot.source
        owner = owner_of.get(ssrc) if ssrc is not None else None
        rate = owner.bitrate(ssrc) if owner is not None and ssrc is not None else None
        total += rate or 0.0
    return total


def on_remb(recv: "Endpoint", bps: int, now: float, owner_of: dict[int, "Endpoint"]) -> bool:
    """Note a REMB from `recv`; True if its layers should be chosen again."""
    recv.remb_bps = bps
    if bps < CONGESTED * forwarded_rate(recv, owner_of):
        recv.bwe_limited_until = now + BWE_HOLD
        return True
    return now < recv.bwe_limited_until  # limited: a new estimate may change the budget


def allocate(recv: "Endpoint", slots: Iterable["Slot"], owner_of: dict[int, "Endpoint"], now: float,
             changed: Callable[["Slot"], None]) -> None:
    """Set the target layer of each of `recv`'s simulcast slots (`slots`: the receiver's video
    slots, most important first); `changed(slot)` for each slot whose target changed."""
    left = budget(recv, now)
    for slot in slots:
        if slot.source is None:
            continue
        owner = owner_of.get(slot.source)
        if owner is None:
            continue
        if slot.layers is None:  # a plain source takes what it takes
            if left is not None:
                left -= owner.bitrate(slot.source) or 0.0
            continue
        layers = slot.layers
        want = layer_for_height(recv.max_height(owner.sources.get(slot.source), owner.id), len(layers))
        rates = [owner.bitrate(ssrc) for ssrc in layers]
        silent = all(r == 0.0 for r in rates)  # nothing arrives yet: nothing to learn from it
        while want > 0:
            rate = rates[want]
            if (rate == 0.0 and not silent) or (left is not None and rate is not None and rate > left):
                want -= 1  # not arriving, or does not fit
            else:
                break
        if left is not None and want >= 0:
            left -= rates[want] or 0.0
        if slot.set_target(want):
            changed(slot)
