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

Bandwidth. A receiver that negotiated transport-cc and sends us its feedback has our own
estimate (bwe.py, fed in Conference.on_rtcp), and that estimate *is* its budget, continuously:
slots in speaker order get the highest layer that fits what is left (layer 0 at least: video
is never turned off for bandwidth). So that a receiver just under a layer's rate does not flap,
a slot moves *up* only to a layer that fits the lowest estimate of the last UP_HOLD seconds
with UP_MARGIN to spare; moving down (or staying) needs only the current estimate. A
significant change of the estimate re-runs the choice (at most every REALLOCATE_INTERVAL).

Without transport-cc feedback (aiortc, or none for TCC_STALE seconds) the estimate is the REMB
the receiver sends us (none: no limit). A REMB reflects what the receiver gets, so it cannot
tell us a higher layer would fit; we read it as a congestion signal only. When a REMB is below
90% of what we forward to that receiver (video, measured at the senders), its estimate becomes
a budget for BWE_HOLD seconds (renewed by every such REMB). After the hold the receiver goes
back to its constraints; if the link still cannot take that, the next REMB limits it again.
No probing, no pacing, in either case.
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
UP_MARGIN = 1.1  # a layer up must fit the estimate with 10 % to spare ...
UP_HOLD = 2.0  # ... for this many seconds
REALLOCATE_INTERVAL = 0.5  # s: a changed transport-cc estimate re-runs the layer choice at most this often
REALLOCATE_CHANGE = 0.1  # what counts as a changed estimate (share of the last one acted on)


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
    if recv.bwe_source(now) == "transport-cc":
        assert recv.bwe is not None
        return recv.bwe.estimate
    if recv.remb_bps is not None and now < recv.bwe_limited_until:
        return float(recv.remb_bps)
    return None


def up_budget(recv: "Endpoint", now: float) -> float | None:
    """bits/s a layer *up* must fit in: with transport-cc the lowest estimate of the last UP_HOLD
    seconds, less the margin; otherwise the same as `budget`."""
    if recv.bwe_source(now) == "transport-cc" and recv.bwe_history:
        return min(bps for _, bps in recv.bwe_history) / UP_MARGIN
    return budget(recv, now)


def on_bwe(recv: "Endpoint", now: float) -> bool:
    """Note a new transport-cc estimate of `recv`; True if its layers should be chosen again."""
    assert recv.bwe is not None
    bps = recv.bwe.estimate
    history = recv.bwe_history
    history.append((now, bps))
    while len(history) > 1 and history[1][0] <= now - UP_HOLD:
        history.popleft()  # keep one entry from before the window: the estimate then held till the next
    then, acted = recv.bwe_allocated
    if now - then >= REALLOCATE_INTERVAL and abs(bps - acted) > REALLOCATE_CHANGE * acted:
        recv.bwe_allocated = (now, bps)
        return True
    return False


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
    left_up = up_budget(recv, now)
    for slot in slots:
        if slot.source is None:
            continue
        owner = owner_of.get(slot.source)
        if owner is None:
            continue
        if slot.layers is None:  # a plain source takes what it takes
            rate = owner.bitrate(slot.source) or 0.0
            if left is not None:
                left -= rate
            if left_up is not None:
                left_up -= rate
            continue
        layers = slot.layers
        want = layer_for_height(recv.max_height(owner.sources.get(slot.source), owner.id), len(layers))
        rates = [owner.bitrate(ssrc) for ssrc in layers]
        silent = all(r == 0.0 for r in rates)  # nothing arrives yet: nothing to learn from it
        while want > 0:
            rate = rates[want]
            limit = left_up if want > slot.target else left
            if (rate == 0.0 and not silent) or (limit is not None and rate is not None and rate > limit):
                want -= 1  # not arriving, or does not fit
            else:
                break
        if want >= 0:
            if left is not None:
                left -= rates[want] or 0.0
            if left_up is not None:
                left_up -= rates[want] or 0.0
        if slot.set_target(want):
            changed(slot)
