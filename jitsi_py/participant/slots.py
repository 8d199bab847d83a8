"""Receive slots: which remote source fills which slot, the slots' frames, and who watches them.

The bridge sends us a fixed set of receive slots per kind (one m-section each) and says over the
bridge channel who fills which slot now (`slot_owner`). Each slot's received media is drained all
the time by a pump (aiortc would otherwise queue decoded frames without bound), counted (for
`wait_frames`) and relayed to `SlotTrack` subscribers (`track_for`, recording). Its own part
because it is the one place that maps owners to media and back.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .core import Event, ParticipantCore
from .media import SlotTrack

log = logging.getLogger(__name__)


class Slots(ParticipantCore):
    """Owns `slot_owner`, the m-section and SSRC maps of the current offer, the pumps, frame
    counts and subscribers."""

    pc: RTCPeerConnection | None

    def _init_slots(self) -> None:
        self.slot_owner: dict[tuple[str, int], str | None] = {}
        self._mid_slot: dict[str, tuple[str, int]] = {}  # m-section mid -> (kind, slot index)
        self._ssrc_slot: dict[tuple[str, int], int] = {}  # (kind, slot ssrc) -> slot index
        self._pumps: list[asyncio.Task] = []
        self._frames: dict[tuple[str, int], int] = {}
        self._announced: dict[tuple[str, int], str | None] = {}  # slot -> owner a "media" event named
        self._subs: dict[tuple[str, int], list[SlotTrack]] = {}

    def _new_slots(self, mid_slot: dict[str, tuple[str, int]], ssrc_slot: dict[tuple[str, int], int]) -> None:
        """The slots of a new offer, none filled yet."""
        self._mid_slot = dict(mid_slot)
        self._ssrc_slot = dict(ssrc_slot)
        self.slot_owner = {key: None for key in self._mid_slot.values()}

    def _map_slots(self, kind: str, entries: list[Any]) -> None:
        """The bridge's sources map for `kind`: who fills which slot now (junk entries skipped)."""
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            slot = None
            try:
                slot = self._ssrc_slot.get((kind, int(entry.get("ssrc"))))
            except (TypeError, ValueError):
                pass
            if slot is None:
                try:
                    slot = int(entry.get("slot"))
                except (TypeError, ValueError):
                    continue
            owner = entry.get("owner") or None
            self.slot_owner[(kind, slot)] = owner

    def _start_pump(self, mid: str, track: MediaStreamTrack) -> None:
        """Drain the received track of m-section `mid`, if that is a slot."""
        key = self._mid_slot.get(mid)
        if key is not None:
            self._pumps.append(self._spawn(self._pump(key, track)))

    def _stop_pumps(self) -> None:
        pumps, self._pumps = self._pumps, []
        for p in pumps:
            p.cancel()

    async def _pump(self, key: tuple[str, int], track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self._frames[key] = self._frames.get(key, 0) + 1
            owner = self.slot_owner.get(key)
            if owner and self._announced.get(key) != owner:
                self._announced[key] = owner
                self._emit(Event("media", owner, kind=key[0]))
            for sub in list(self._subs.get(key, ())):
                sub.push(frame)
            if self._waiters:
                self._notify()

    def _slot_of(self, owner: str, kind: str) -> tuple[str, int] | None:
        return next((key for key, o in sorted(self.slot_owner.items(), key=lambda kv: kv[0][1])
                     if o == owner and key[0] == kind), None)

    def _subscribe(self, key: tuple[str, int], **kwargs: Any) -> SlotTrack:
        track = SlotTrack(key[0], key[1], on_stop=self._unsubscribe, **kwargs)
        self._subs.setdefault(key, []).append(track)
        return track

    def _unsubscribe(self, track: SlotTrack) -> None:
        subs = self._subs.get((track.kind, track.slot), [])
        if track in subs:
            subs.remove(track)

    def track_for(self, owner: str, kind: str) -> SlotTrack | None:
        """A track of the slot `owner`'s `kind` media currently arrives in (None: no such slot).

        It relays that slot's decoded frames (it follows the slot, not the owner, like the
        RemoteStreamTrack it stands for); `stop()` it when done.
        """
        key = self._slot_of(owner, kind)
        return None if key is None else self._subscribe(key)

    async def wait_frames(self, owner: str, kind: str, count: int = 3, timeout: float = 15.0) -> None:
        """Wait for `count` decoded frames from the slot mapped to `owner` (counted from now)."""
        state: dict[str, Any] = {"key": None, "base": 0}

        def enough() -> bool:
            key = self._slot_of(owner, kind)
            if key != state["key"]:
                state["key"], state["base"] = key, self._frames.get(key, 0) if key else 0
                return False
            return key is not None and self._frames.get(key, 0) - state["base"] >= count

        try:
            await self._until(enough, timeout, f"{count} {kind} frames from {owner}")
        except TimeoutError:
            got = self._frames.get(state["key"], 0) - state["base"] if state["key"] else 0
            raise TimeoutError(f"{self.nick}: {got}/{count} {kind} frames from {owner} in {timeout:g} s "
                               f"(slots: {self.slot_owner}, media: {self.pc and self.pc.connectionState})") from None


    def _stop_relays(self) -> None:
        """End every subscriber's track (leaving)."""
        for subs in list(self._subs.values()):
            for t in list(subs):
                t.stop()
