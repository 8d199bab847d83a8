"""What every part of a participant shares: its errors, its events, and waiting on its state.

The participant's parts (signalling, room, focus, session, channel, slots, recording) change
one shared state from XMPP handlers, aiortc callbacks and tasks; callers wait for a condition
on that state (`_until`), re-checked whenever a part says it changed (`_notify`), and fail at
once when the participant failed for good (`_failure`). Listeners get `Event`s. Tasks a part
starts (`_spawn`) are owned here so that leaving cancels them all.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable

from jitsi_protocols.model import Source

log = logging.getLogger(__name__)


class ParticipantError(Exception):
    """Joining failed or the conference went away; the message says why, for a person."""


class Refused(ParticipantError):
    """The focus or the room said no (not a transient failure): trying again will not help."""


@dataclass
class Event:
    """What happened, for listeners (the CLI prints these)."""

    type: str  # joined | occupant-joined | occupant-left | source-add | source-remove | media | session-initiate
    # | waiting-for-host (a guest whose meeting no host has opened yet)
    # | session-terminate | connection | dominant-speaker | chat | kicked | disconnected (for good)
    # | reconnecting (the connection dropped; trying again) | reconnected (back in the room)
    nick: str = ""
    kind: str = ""
    text: str = ""
    sources: list[Source] | None = None


class ParticipantCore:
    """Events, waiting and tasks; also the life cycle flags every part reads."""

    nick: str
    room_jid: str

    def _init_core(self) -> None:
        self._waiters: list[asyncio.Future] = []
        self._listeners: list[Callable[[Event], None]] = []
        self._failure: ParticipantError | None = None
        self._tasks: set[asyncio.Task] = set()
        self._step = "starting"  # what join() (or a reconnect) is doing, for error messages
        self._joined = False
        self._established = False  # join() succeeded: a lost connection is reconnected from now on
        self._left = False

    @property
    def occupant_jid(self) -> str:
        return f"{self.room_jid}/{self.nick}"

    @property
    def focus_occupant(self) -> str:
        return f"{self.room_jid}/focus"

    def add_listener(self, callback: Callable[[Event], None]) -> None:
        self._listeners.append(callback)

    def _emit(self, event: Event) -> None:
        for cb in list(self._listeners):
            try:
                cb(event)
            except Exception:
                log.exception("participant listener failed")
        self._notify()

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def _until(self, predicate: Callable[[], Any], timeout: float | None, what: str) -> Any:
        """Wait until `predicate()` is true (re-checked after every state change)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self._failure is not None:
                raise self._failure
            value = predicate()
            if value:
                return value
            fut = loop.create_future()
            self._waiters.append(fut)
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"{self.nick}: timed out waiting for {what}")
            try:
                await asyncio.wait_for(fut, remaining)
            except asyncio.TimeoutError:
                raise TimeoutError(f"{self.nick}: timed out waiting for {what}") from None

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("%s: task failed", self.nick, exc_info=t.exception())
        task.add_done_callback(done)
        return task
