"""Jingle with the focus: who may steer our media, and what its session actions mean.

Its own part because it is the participant's trust boundary for media: Jingle (and nothing else
that steers media) is taken only from the room's `focus` occupant whose real JID, as the room
shows it in presence, is the focus account the conference IQ named. Any guest can send an IQ to
our occupant JID, and a guest could sit in a room under the nick `focus`. Accepted actions are
acknowledged first (XEP-0166), then handed on: a `session-initiate` to the media session, the
other participants' `source-add` / `source-remove` into `remote_sources`, a `session-terminate`
closes media (the focus then moves us to another bridge, unless it ended for good).
"""
from __future__ import annotations

import asyncio
import logging

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

from jitsi_base.errors import StanzaError
from jitsi_protocols import jingle
from jitsi_protocols.jingle import JingleAction
from jitsi_protocols.model import Source
from jitsi_protocols.slix import reply_error, to_et, to_lxml

from .core import Event, ParticipantCore, ParticipantError
from .offer import OfferPlan, nick_of, plan_offer

log = logging.getLogger(__name__)

HANDLED_ACTIONS = {"session-initiate", "session-terminate", "source-add", "addsource", "source-remove",
                   "removesource", "transport-info", "session-info"}


class Focus(ParticipantCore):
    """Owns the current session (`session`, `sid`, `bridge_session`, `sessions`), the other
    participants' announced sources (`remote_sources`) and whether the focus ended us for good."""

    client: slixmpp.ClientXMPP | None
    domain: str
    room_jid: str
    focus_jid: str
    _focus_real: str
    _in_room: bool
    _media_lock: asyncio.Lock

    def _init_focus(self) -> None:
        self.remote_sources: dict[str, list[Source]] = {}
        self.session: JingleAction | None = None  # the current session-initiate
        self.sid: str | None = None
        self.bridge_session = ""
        self.sessions = 0  # session-initiates handled (2+ means the focus moved us)
        self._removed: set[str] = set()  # owners whose sources were all removed
        self._ended = False  # the focus ended our session for good (success / gone)
        self._session_task: asyncio.Task | None = None

    def _session_lost(self) -> None:
        """The connection dropped: no session, and the next session-initiate lists who sends what."""
        self.sid = None
        self.session = None
        self.remote_sources.clear()
        self._removed.clear()

    def _iq_error(self, iq: slixmpp.Iq, exc: StanzaError) -> None:
        reply_error(iq, exc)

    @property
    def expected_focus(self) -> str:
        """The focus account's bare JID: as the conference IQ answer named it, else the default."""
        return slixmpp.JID(self.focus_jid).bare if self.focus_jid else f"focus@auth.{self.domain}"

    def _check_focus(self, frm: slixmpp.JID) -> None:
        """Raise unless `frm` is the room's occupant `focus` and that occupant is the real focus
        account (its real JID in the room's presence): anyone can send us an IQ, and a guest
        may sit in the room as `focus`."""
        if frm.bare != self.room_jid or frm.resource != "focus":
            raise StanzaError("not-acceptable", "Only the focus starts sessions with this participant")
        real = slixmpp.JID(self._focus_real).bare if self._focus_real else ""
        if real != self.expected_focus:
            raise StanzaError("forbidden", f"{frm} is not the conference focus ({self.expected_focus})")

    async def _on_jingle_iq(self, iq: slixmpp.Iq) -> None:
        if iq["type"] != "set":
            return
        try:
            try:
                self._check_focus(iq["from"])
            except StanzaError as exc:
                log.warning("%s: refused Jingle from %s (real JID %s): %s", self.nick, iq["from"],
                            self._focus_real or "unknown", exc.text)
                raise
            ja = jingle.parse_jingle(to_lxml(iq.xml.find("{%s}jingle" % jingle.NS)))
            if ja.action not in HANDLED_ACTIONS:
                raise StanzaError("bad-request", f"{ja.action} is not handled by this participant")
            if ja.action == "session-initiate":
                if self._left or not self._in_room:
                    raise StanzaError("not-acceptable", "Not in the conference")
                plan = plan_offer(ja, self.nick)  # bad offers are refused in the IQ answer
            elif ja.sid != self.sid:
                raise jingle.unknown_session()
        except StanzaError as exc:
            self._iq_error(iq, exc)
            return
        iq.reply(clear=True).send()  # acknowledge first (XEP-0166), then act
        if ja.action == "session-initiate":
            self._start_session(ja, plan)
        elif ja.action in ("source-add", "addsource"):
            self._sources_added(ja)
        elif ja.action in ("source-remove", "removesource"):
            self._sources_removed(ja)
        elif ja.action == "session-terminate":
            self._terminated(ja)
        # transport-info / session-info from the focus: nothing to do (ICE-lite bridge, no trickle)

    def _start_session(self, ja: JingleAction, plan: OfferPlan) -> None:
        if self._session_task is not None and not self._session_task.done():
            self._session_task.cancel()
        self.sid = ja.sid
        self.session = None
        self.sessions += 1
        self._session_task = self._spawn(self._set_up_session(ja, plan))

    async def _set_up_session(self, ja: JingleAction, plan: OfferPlan) -> None:
        async with self._media_lock:  # after any teardown still running, before the next one
            accept = await self._answer(ja, plan)
        if accept is None or self.sid != ja.sid:  # failed, or terminated while we answered
            return
        transport = plan.transport
        self.bridge_session = ja.bridge_session
        self.session = ja
        self._notify()
        self._emit(Event("session-initiate", self.nick, text=ja.sid))
        self._start_channel(ja.sid, plan.data is not None, transport.websocket_url)
        try:
            await self._send_jingle(accept)
        except ParticipantError as exc:
            log.warning("%s: %s", self.nick, exc)
            self._step = f"connecting media to the bridge (the focus refused our session-accept: {exc})"

    async def _send_jingle(self, ja: JingleAction, quiet: bool = False, timeout: float = 15.0) -> None:
        if self.client is None or self.client.transport is None:
            return
        iq = self.client.make_iq_set(ito=self.focus_occupant)
        iq.xml.append(to_et(jingle.jingle_element(ja)))
        try:
            await iq.send(timeout=timeout)
        except IqError as exc:
            if not quiet:
                raise ParticipantError(f"{ja.action} refused: {exc.condition} {exc.text or ''}".strip()) from None
        except IqTimeout:
            if not quiet:
                raise ParticipantError(f"no answer to {ja.action}") from None

    def _add_remote(self, nick: str, src: Source) -> bool:
        have = self.remote_sources.setdefault(nick, [])
        if any(s.ssrc == src.ssrc for s in have):
            return False
        have.append(src)
        self._removed.discard(nick)
        return True

    def _sources_added(self, ja: JingleAction) -> None:
        by_owner: dict[str, list[Source]] = {}
        for c in ja.contents:
            for s in c.sources:
                nick = nick_of(s.owner) if s.owner else ""
                if not nick or nick == self.nick:
                    continue
                s.kind = s.kind or c.kind
                if self._add_remote(nick, s):
                    by_owner.setdefault(nick, []).append(s)
        for nick, sources in by_owner.items():
            self._emit(Event("source-add", nick, sources=sources))

    def _sources_removed(self, ja: JingleAction) -> None:
        by_owner: dict[str, list[Source]] = {}
        for c in ja.contents:
            for s in c.sources:
                nick = nick_of(s.owner) if s.owner else next(
                    (n for n, ss in self.remote_sources.items() if any(x.ssrc == s.ssrc for x in ss)), "")
                if nick:
                    by_owner.setdefault(nick, []).append(s)
        for nick, sources in by_owner.items():
            gone = {s.ssrc for s in sources}
            left = [s for s in self.remote_sources.get(nick, []) if s.ssrc not in gone]
            if left:
                self.remote_sources[nick] = left
            else:
                self.remote_sources.pop(nick, None)
                self._removed.add(nick)
            self._emit(Event("source-remove", nick, sources=sources))

    def _terminated(self, ja: JingleAction) -> None:
        self.sid = None
        self.session = None
        if ja.reason in ("success", "gone"):
            self._ended = True
        self._emit(Event("session-terminate", self.nick, text=ja.reason + (f": {ja.reason_text}" if ja.reason_text
                                                                            else "")))
        # other reasons: the focus moves us to another bridge and sends a new session-initiate
        self._spawn(self._close_session())

    async def wait_source_add(self, owner: str, timeout: float = 15.0) -> list[Source]:
        """Returns `owner`'s sources once the focus has announced any (at once if it has)."""
        return await self._until(lambda: self.remote_sources.get(owner), timeout, f"source-add from {owner}")

    async def wait_source_remove(self, owner: str, timeout: float = 15.0) -> None:
        """Returns once the focus has removed all of `owner`'s announced sources."""
        await self._until(lambda: owner in self._removed and owner not in self.remote_sources, timeout,
                          f"source-remove from {owner}")
