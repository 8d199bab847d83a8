"""Named limits with safe defaults: token buckets, connection caps, failure counters.

Each is a few integers per peer so that checking a limit costs less than what it protects.
"""
from __future__ import annotations

import time
from collections import defaultdict, deque


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up. rate <= 0 means unlimited."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self, n: float = 1.0) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        self.tokens -= n  # debt: the caller waits it off (see wait_time)
        return False

    def wait_time(self) -> float:
        """Seconds until the bucket is out of debt."""
        if self.rate <= 0 or self.tokens >= 0:
            return 0.0
        return -self.tokens / self.rate


class ConnectionLimiter:
    """Caps total connections and connections per remote address."""

    def __init__(self, max_total: int, per_ip: int) -> None:
        self.max_total = max_total
        self.per_ip = per_ip
        self.total = 0
        self.by_ip: dict[str, int] = defaultdict(int)

    def acquire(self, ip: str) -> str | None:
        """None when admitted, else the reason it was refused."""
        if self.total >= self.max_total:
            return "Too many connections to this server"
        if self.by_ip[ip] >= self.per_ip:
            return "Too many connections from your address"
        self.total += 1
        self.by_ip[ip] += 1
        return None

    def release(self, ip: str) -> None:
        self.total -= 1
        n = self.by_ip[ip] - 1
        if n <= 0:
            self.by_ip.pop(ip, None)
        else:
            self.by_ip[ip] = n


class RateCounter:
    """Events per address within a sliding window (failed logins, anonymous sign-ins)."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self.events: dict[str, deque[float]] = {}

    def _trim(self, ip: str, now: float) -> deque[float]:
        q = self.events.get(ip)
        if q is None:
            q = self.events[ip] = deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def exceeded(self, ip: str) -> bool:
        if self.limit <= 0:
            return False
        q = self._trim(ip, time.monotonic())
        if not q:
            self.events.pop(ip, None)
        return len(q) >= self.limit

    def hit(self, ip: str) -> None:
        if self.limit > 0:
            self._trim(ip, time.monotonic()).append(time.monotonic())


def is_loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip in ("::1", "localhost") or ip.startswith("::ffff:127.")
