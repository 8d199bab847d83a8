"""Which bridge gets a new conference, and which bridges are gone.

Bridges announce themselves by joining the brewery room with their load in presence
(`<stats xmlns='http://jitsi.org/protocol/colibri'><stat name value/>`). The focus keeps no
other record of them: a restarted focus learns them again from the room.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger(__name__)


@dataclass
class Bridge:
    jid: str  # where COLIBRI2 requests go (the bridge's occupant JID in the brewery)
    stats: dict[str, str] = field(default_factory=dict)
    last_seen: float = field(default_factory=time.monotonic)
    failures: int = 0
    conferences: int = 0  # conferences this focus placed there

    @property
    def healthy(self) -> bool:
        return (self.stats.get("healthy", "true") != "false"
                and self.stats.get("drain", "false") != "true"
                and self.stats.get("shutting_down", "false") != "true"
                and self.failures < 2)

    @property
    def stress(self) -> float:
        try:
            return float(self.stats.get("stress_level", "0"))
        except ValueError:
            return 0.0

    def load_key(self) -> tuple[float, int, str]:
        # stress as the bridge reports it first, our own placements to spread a burst of new
        # conferences that arrives before the next stats update, then a stable tie-break
        return (round(self.stress, 2), self.conferences, self.jid)


class BridgeSelector:
    def __init__(self, presence_timeout: float = 45.0) -> None:
        self.bridges: dict[str, Bridge] = {}
        self.presence_timeout = presence_timeout
        self.on_removed: list[Callable[[Bridge], None]] = []

    def update(self, jid: str, stats: dict[str, str]) -> Bridge:
        bridge = self.bridges.get(jid)
        if bridge is None:
            bridge = self.bridges[jid] = Bridge(jid)
            log.info("bridge %s joined", jid)
        bridge.stats = stats
        bridge.last_seen = time.monotonic()
        bridge.failures = 0
        return bridge

    def remove(self, jid: str, reason: str) -> None:
        bridge = self.bridges.pop(jid, None)
        if bridge is None:
            return
        log.warning("bridge %s removed: %s", jid, reason)
        for callback in list(self.on_removed):
            callback(bridge)

    def failed(self, jid: str) -> None:
        """A request to the bridge timed out or failed; twice in a row removes it."""
        bridge = self.bridges.get(jid)
        if bridge is None:
            return
        bridge.failures += 1
        if not bridge.healthy:
            self.remove(jid, "requests failing")

    def expire_silent(self) -> None:
        now = time.monotonic()
        for jid, bridge in list(self.bridges.items()):
            if now - bridge.last_seen > self.presence_timeout:
                self.remove(jid, f"no presence for {self.presence_timeout:.0f} s")

    def select(self, exclude: set[str] | None = None) -> Bridge | None:
        candidates = [b for b in self.bridges.values() if b.healthy and b.jid not in (exclude or set())]
        if not candidates:
            return None
        return min(candidates, key=Bridge.load_key)
