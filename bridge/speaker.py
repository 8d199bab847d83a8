"""Dominant speaker detection from RFC 6464 audio levels, without decoding any audio.

Each audio packet carries the sender's level in -dBov (0 loud .. 127 silent). We keep a decaying
per-endpoint loudness and, on a periodic tick, rank endpoints by it; the dominant speaker changes
only when someone is clearly louder for a while, so the video layout does not flicker on a cough.
"""
from __future__ import annotations

import time

SILENCE = 127
THRESHOLD = 20.0  # loudness (127 - dBov, decayed) below which nobody is speaking
MARGIN = 1.25  # a challenger must be this much louder than the current speaker
HOLD = 1.0  # seconds the current speaker keeps the floor against an equal challenger


class SpeakerDetector:
    def __init__(self) -> None:
        self._energy: dict[str, float] = {}
        self._peak: dict[str, float] = {}
        self.dominant: str | None = None
        self._since = 0.0
        self.ranking: list[str] = []
        self.version = 0  # changes whenever `ranking` may have (callers cache by it)

    def level(self, endpoint: str, dbov: int) -> None:
        """Hot path: one call per audio packet (also for the silent ones we do not forward)."""
        loud = float(SILENCE - dbov) if 0 <= dbov <= SILENCE else 0.0
        peak = self._peak.get(endpoint, 0.0)
        if loud > peak:
            self._peak[endpoint] = loud

    def remove(self, endpoint: str) -> None:
        self.version += 1
        self._energy.pop(endpoint, None)
        self._peak.pop(endpoint, None)
        if endpoint in self.ranking:
            self.ranking.remove(endpoint)
        if self.dominant == endpoint:
            self.dominant = None

    def add(self, endpoint: str) -> None:
        self.version += 1
        self._energy.setdefault(endpoint, 0.0)
        if endpoint not in self.ranking:
            self.ranking.append(endpoint)

    def tick(self, now: float | None = None) -> bool:
        """Fold the last interval's peaks in; True when the dominant speaker changed."""
        now = time.monotonic() if now is None else now
        for ep in list(self._energy):
            self._energy[ep] = 0.6 * self._energy[ep] + 0.4 * self._peak.get(ep, 0.0)
        self._peak.clear()
        self.version += 1
        # stable sort: ties keep their previous order, so quiet rooms do not reshuffle
        self.ranking.sort(key=lambda ep: -self._energy.get(ep, 0.0))
        if not self.ranking:
            return False
        top = self.ranking[0]
        top_e = self._energy.get(top, 0.0)
        cur = self.dominant
        cur_e = self._energy.get(cur, 0.0) if cur is not None else 0.0
        if top == cur or top_e < THRESHOLD:
            return False
        if cur is not None and top_e < cur_e * MARGIN and now - self._since < HOLD:
            return False
        if cur is not None and top_e < cur_e * MARGIN and cur_e >= THRESHOLD:
            return False
        self.dominant = top
        self._since = now
        if top in self.ranking:
            self.ranking.remove(top)
        self.ranking.insert(0, top)
        return True
