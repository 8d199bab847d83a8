"""Send-side bandwidth estimation for one receiver, from its transport-cc feedback.

In the spirit of Google Congestion Control (draft-ietf-rmcat-gcc-02, and the trendline variant
browsers run today), kept small:

- **Delay-based.** Packets are grouped into bursts sent within 5 ms of each other. For two
  consecutive groups the *delay variation* is (arrival gap - send gap): positive when a queue
  builds up on the path. Its running sum, exponentially smoothed, is regressed against arrival
  time over the last 20 groups; the slope, scaled, is compared with an adaptive threshold that
  follows the signal (slowly up, faster down), so that a path whose delays are just noisy does
  not read as congestion, and a competing TCP flow does not starve us. Above the threshold for
  more than 10 ms (and growing): *overuse*; below minus the threshold: *underuse*; else *normal*.
- **Rate control (AIMD).** Overuse: the estimate drops to 0.85 x the acknowledged bitrate (what
  the receiver got over the last 500 ms, from the feedback itself), at most every 200 ms.
  Normal: it grows, multiplicatively (8 %/s; until the first decrease 25 %/s and at least 1.2 x
  the acknowledged bitrate, since we do not probe and a receiver already getting more than the
  start value must not be cut down to it) or, near the rate at which the last decreases
  happened (the link's capacity as far as we know), additively. Underuse: hold (the queue is
  draining).
- **Loss-based cap.** Over windows of at least 20 packets and 0.5 s: more than 10 % lost -> the
  cap becomes estimate x (1 - 0.5 x loss); under 2 % -> the cap may grow by 5 %.

The estimate is min(delay-based, loss cap), clamped to [50 kbit/s, 20 Mbit/s]. The bridge does
not pace or probe: a receiver whose link is never filled sees its estimate rise until a layer
switch up fills it (simulcast.py asks for a margin and some time before switching up).
"""
from __future__ import annotations

import logging
from collections import deque

log = logging.getLogger(__name__)

START_BPS = 1_000_000
MIN_BPS = 50_000
MAX_BPS = 20_000_000

BURST_MS = 5.0  # packets sent within this of a group's first one are one group
TREND_WINDOW = 20  # groups in the linear regression
SMOOTHING = 0.9  # of the accumulated delay
TREND_GAIN = 4.0
THRESHOLD_START = 12.5  # ms
THRESHOLD_MIN, THRESHOLD_MAX = 6.0, 600.0
K_UP, K_DOWN = 0.0087, 0.039  # threshold adaptation per ms
OVERUSE_TIME_MS = 10.0
BETA = 0.85  # multiplicative decrease (of the acknowledged bitrate)
DECREASE_INTERVAL = 0.2  # s between two decreases: the queue needs time to drain
INCREASE = 1.08  # per second, normally
STARTUP_INCREASE = 1.25  # per second, until the first decrease
STARTUP_FLOOR = 1.2  # until the first decrease, at least this times the acknowledged bitrate
ACKED_WINDOW_MS = 500.0
LOSS_HIGH, LOSS_LOW = 0.10, 0.02
LOSS_WINDOW = 0.5  # s
LOSS_MIN_PACKETS = 20

NORMAL, OVERUSE, UNDERUSE = "normal", "overuse", "underuse"


class Estimator:
    """Feed it `on_feedback` with the packets one feedback reports; read `estimate` (bit/s)."""

    def __init__(self, start_bps: float = START_BPS, min_bps: float = MIN_BPS, max_bps: float = MAX_BPS) -> None:
        self.min_bps, self.max_bps = float(min_bps), float(max_bps)
        self.estimate = float(start_bps)
        self.delay_bps = float(start_bps)
        self.loss_bps = self.max_bps
        self.acked_bps: float | None = None
        self.state = NORMAL
        self.feedbacks = 0
        self.last_feedback = 0.0  # caller's clock (s) of the last feedback
        # packet groups: [first send ms, last send ms, last arrival ms]
        self._group: list[float] | None = None
        self._prev_group: list[float] | None = None
        # trendline
        self._first_arrival: float | None = None
        self._acc = 0.0
        self._smoothed = 0.0
        self._window: deque[tuple[float, float]] = deque(maxlen=TREND_WINDOW)
        self._deltas = 0
        self.trend = 0.0
        # overuse detector
        self.threshold = THRESHOLD_START
        self._over_ms = -1.0
        self._over_count = 0
        self._prev_m = 0.0
        self._threshold_at: float | None = None
        # rate control
        self._last_update: float | None = None
        self._last_decrease = float("-inf")
        self._startup = True
        self.link_capacity: float | None = None
        # acknowledged bitrate: (arrival ms, bytes) over the last ACKED_WINDOW_MS
        self._acked: deque[tuple[float, int]] = deque()
        self._acked_bytes = 0
        self._acked_first: float | None = None
        # loss
        self._sent = 0
        self._lost = 0
        self._loss_since: float | None = None
        self.last_loss = 0.0  # loss fraction of the last complete window
        self._arrival_base = 0.0  # unwraps the feedback's 24-bit reference time

    # ---- input ------------------------------------------------------------------------------
    def on_feedback(self, packets: list[tuple[float, int | None, int]], now: float) -> float:
        """One feedback's packets in sequence (= send) order: (send time s in our clock, arrival
        us in the receiver's clock or None if lost, size in bytes). Returns the new estimate."""
        self.feedbacks += 1
        self.last_feedback = now
        for send_s, arrival_us, size in packets:
            self._sent += 1
            if arrival_us is None:
                self._lost += 1
                continue
            arrival = self._unwrap(arrival_us / 1000.0)
            self._ack(arrival, size)
            self._packet(send_s * 1000.0, arrival)
        self._loss_update(now)
        self._rate_update(now)
        return self.estimate

    def _unwrap(self, arrival_ms: float) -> float:
        """The reference time is 24 bits of 64 ms (about 12 days, signed): keep arrivals
        continuous across its wrap."""
        span = (1 << 24) * 64.0
        arrival_ms += self._arrival_base
        if self._first_arrival is not None and self._acked:
            last = self._acked[-1][0]
            if arrival_ms < last - span / 2:
                self._arrival_base += span
                arrival_ms += span
            elif arrival_ms > last + span / 2:
                self._arrival_base -= span
                arrival_ms -= span
        return arrival_ms

    def _ack(self, arrival: float, size: int) -> None:
        acked = self._acked
        acked.append((arrival, size))
        self._acked_bytes += size
        if self._acked_first is None:
            self._acked_first = arrival
        newest = max(arrival, acked[-1][0])
        while acked and acked[0][0] < newest - ACKED_WINDOW_MS:
            self._acked_bytes -= acked.popleft()[1]
        span = min(ACKED_WINDOW_MS, newest - self._acked_first)
        if span >= 50.0:
            self.acked_bps = self._acked_bytes * 8000.0 / span

    # ---- delay-based: groups, trendline, detector ---------------------------------------------
    def _packet(self, send: float, arrival: float) -> None:
        g = self._group
        if g is None:
            self._group = [send, send, arrival]
            return
        if send < g[0]:
            return  # reordered across groups: not usable
        if send - g[0] <= BURST_MS:
            g[1] = max(g[1], send)
            g[2] = max(g[2], arrival)
            return
        prev = self._prev_group
        if prev is not None:
            self._trendline(g[2] - prev[2], g[1] - prev[1], g[2])
        self._prev_group = g
        self._group = [send, send, arrival]

    def _trendline(self, recv_delta: float, send_delta: float, arrival: float) -> None:
        if self._first_arrival is None:
            self._first_arrival = arrival
        self._deltas = min(self._deltas + 1, 1000)
        self._acc += recv_delta - send_delta
        self._smoothed = SMOOTHING * self._smoothed + (1 - SMOOTHING) * self._acc
        self._window.append((arrival - self._first_arrival, self._smoothed))
        if len(self._window) == TREND_WINDOW:
            self.trend = _slope(self._window)
        self._detect(send_delta, arrival)

    def _detect(self, send_delta: float, now_ms: float) -> None:
        m = min(self._deltas, 60) * self.trend * TREND_GAIN
        if m > self.threshold:
            self._over_ms = send_delta / 2 if self._over_ms < 0 else self._over_ms + send_delta
            self._over_count += 1
            if self._over_ms > OVERUSE_TIME_MS and self._over_count > 1 and m >= self._prev_m:
                self._over_ms = 0.0
                self._over_count = 0
                self.state = OVERUSE
        elif m < -self.threshold:
            self._over_ms = -1.0
            self._over_count = 0
            self.state = UNDERUSE
        else:
            self._over_ms = -1.0
            self._over_count = 0
            self.state = NORMAL
        self._prev_m = m
        self._adapt_threshold(m, now_ms)

    def _adapt_threshold(self, m: float, now_ms: float) -> None:
        last = self._threshold_at
        self._threshold_at = now_ms
        if last is None or abs(m) > self.threshold + 15.0:
            return  # a spike (e.g. a route change) must not drag the threshold along
        k = K_DOWN if abs(m) < self.threshold else K_UP
        dt = min(max(now_ms - last, 0.0), 100.0)
        self.threshold = min(max(self.threshold + k * (abs(m) - self.threshold) * dt, THRESHOLD_MIN), THRESHOLD_MAX)

    # ---- rate control ---------------------------------------------------------------------------
    def _rate_update(self, now: float) -> None:
        last = self._last_update
        self._last_update = now
        dt = 0.0 if last is None else min(max(now - last, 0.0), 1.0)
        rate = self.delay_bps
        if self.state == OVERUSE:
            if now - self._last_decrease >= DECREASE_INTERVAL:
                base = self.acked_bps if self.acked_bps is not None else rate
                rate = min(rate, BETA * base)
                self._last_decrease = now
                self._startup = False
                cap = self.acked_bps or rate
                self.link_capacity = cap if self.link_capacity is None else 0.8 * self.link_capacity + 0.2 * cap
        elif self.state == NORMAL and dt > 0:
            cap = self.link_capacity
            if cap is not None and rate > 1.5 * cap:
                self.link_capacity = cap = None  # far above what failed before: the link changed
            if cap is not None and rate >= 0.9 * cap:
                rate += dt * max(1200 * 8 / 0.3, 0.03 * rate)  # near capacity: carefully
            else:
                rate *= (STARTUP_INCREASE if self._startup else INCREASE) ** dt
            if self._startup and self.acked_bps is not None:
                # nothing has queued yet: the link carries at least what it delivered, so a
                # receiver that already gets more than our start value is not cut down to it
                rate = max(rate, STARTUP_FLOOR * self.acked_bps)
        self.delay_bps = min(max(rate, self.min_bps), self.max_bps)
        self.estimate = min(max(min(self.delay_bps, self.loss_bps), self.min_bps), self.max_bps)

    def _loss_update(self, now: float) -> None:
        if self._loss_since is None:
            self._loss_since = now
        if self._sent < LOSS_MIN_PACKETS or now - self._loss_since < LOSS_WINDOW:
            return
        loss = self._lost / self._sent
        self._sent = self._lost = 0
        self._loss_since = now
        if loss > LOSS_HIGH:
            self.loss_bps = max(self.min_bps, self.estimate * (1 - 0.5 * loss))
            self._startup = False
        elif loss < LOSS_LOW:
            self.loss_bps = min(self.max_bps, self.loss_bps * 1.05)
        self.last_loss = loss


def _slope(points: deque[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    num = sum((x - mx) * (y - my) for x, y in points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return num / den if den > 0 else 0.0
