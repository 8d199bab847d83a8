"""A token bucket: the one rate limit everything here uses (per connection, per requester).

Its state is a few floats, so checking it costs less than what it protects.
"""
from __future__ import annotations

import time

__all__ = ["TokenBucket"]


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
