"""Named limits with safe defaults: connection caps, failure counters (the token bucket they
share with the focus is jitsi_base.rate).

Each is a few integers per peer so that checking a limit costs less than what it protects.
"""
from __future__ import annotations

import time
from collections import defaultdict, deque

from jitsi_base.rate import TokenBucket

__all__ = ["TokenBucket", "ConnectionRefused", "ConnectionSlot", "ConnectionLimiter", "RateCounter", "is_loopback"]


class ConnectionRefused(Exception):
    """A connection over a cap; the message says which, for the stream error or HTTP reply."""

    def __init__(self, reason: str, per_address: bool) -> None:
        super().__init__(reason)
        self.per_address = per_address  # False: the server as a whole is full


class ConnectionSlot:
    """One admitted connection's place in the counts.

    Kept by the transport so that signing in and closing each change the counts exactly once,
    whichever of the session's or the transport's teardown paths runs first.
    """

    __slots__ = ("_limiter", "ip", "authenticated", "released")

    def __init__(self, limiter: "ConnectionLimiter", ip: str) -> None:
        self._limiter = limiter
        self.ip = ip
        self.authenticated = False
        self.released = False

    def authenticate(self) -> None:
        if not self.authenticated and not self.released:
            self.authenticated = True
            self._limiter._signed_in(self.ip)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._limiter._release(self.ip, self.authenticated)


class ConnectionLimiter:
    """Caps connections in total, per address, and per address before authentication.

    Only the pre-authentication cap is tight: it bounds what a stranger can hold open without
    signing in, while everyone signed in behind the same NAT counts only against the generous
    per-address total.
    """

    def __init__(self, max_total: int, per_ip: int, unauthenticated_per_ip: int = 0) -> None:
        self.max_total = max_total
        self.per_ip = per_ip
        self.unauthenticated_per_ip = unauthenticated_per_ip
        self.total = 0
        self.by_ip: dict[str, int] = defaultdict(int)
        self.unauthenticated: dict[str, int] = defaultdict(int)

    def acquire(self, ip: str) -> ConnectionSlot:
        """Admit a new, not yet authenticated connection, or raise ConnectionRefused."""
        if self.total >= self.max_total:
            raise ConnectionRefused("Too many connections to this server", per_address=False)
        if self.by_ip.get(ip, 0) >= self.per_ip:
            raise ConnectionRefused("Too many connections from your address", per_address=True)
        if self.unauthenticated_per_ip and self.unauthenticated.get(ip, 0) >= self.unauthenticated_per_ip:
            raise ConnectionRefused("Too many connections from your address that have not signed in",
                                    per_address=True)
        self.total += 1
        self.by_ip[ip] += 1
        self.unauthenticated[ip] += 1
        return ConnectionSlot(self, ip)

    def _signed_in(self, ip: str) -> None:
        _decrement(self.unauthenticated, ip)

    def _release(self, ip: str, authenticated: bool) -> None:
        self.total -= 1
        _decrement(self.by_ip, ip)
        if not authenticated:
            _decrement(self.unauthenticated, ip)


def _decrement(counts: dict[str, int], key: str) -> None:
    n = counts.get(key, 0) - 1
    if n <= 0:
        counts.pop(key, None)
    else:
        counts[key] = n


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
