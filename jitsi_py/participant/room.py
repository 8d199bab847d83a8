"""The participant as a MUC occupant: joining with its nick, presence, chat, being kicked.

Its own part because the room is where trust comes from: the room's presence of its `focus`
occupant carries that occupant's real JID (`_focus_real`), which the focus part checks before it
takes any Jingle; and the room's list of occupants is what a reconnect reconciles.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import xml.etree.ElementTree as ET

import slixmpp
from lxml import etree
from aiortc.mediastreams import MediaStreamTrack

from jitsi_base import ns

from .core import Event, ParticipantCore, ParticipantError, Refused

log = logging.getLogger(__name__)


class Room(ParticipantCore):
    """Owns `occupants` (others, not the focus), `chat`, whether we are in the room, the focus
    occupant's real JID, and the occupants not seen again yet after a reconnect."""

    client: slixmpp.ClientXMPP | None
    room_jid: str
    display_name: str
    audio: MediaStreamTrack | None
    video: MediaStreamTrack | None
    reconnect_timeout: float
    _nick_given: bool

    def _init_room(self) -> None:
        self.occupants: dict[str, str] = {}  # nick -> display name (others, not the focus)
        self.chat: list[tuple[str, str]] = []
        self._in_room = False
        self._focus_real = ""  # the real JID the room shows for its occupant `focus` ("" unknown)
        self._stale: set[str] = set()  # occupants from before a reconnect not seen again yet

    def _room_lost(self) -> None:
        """The connection dropped: we are out of the room, and whoever is still there (the focus
        too) shows itself again when we rejoin."""
        self._in_room = False
        self._focus_real = ""
        self._stale = set(self.occupants)

    def _presence(self, ptype: str | None = None) -> slixmpp.Presence:
        assert self.client is not None
        pres = self.client.make_presence(pto=self.occupant_jid, ptype=ptype)
        if ptype is None:
            ET.SubElement(pres.xml, "{%s}x" % ns.MUC)
            for tag, namespace, track in (("audiomuted", ns.JITSI_AUDIO_MUTED, self.audio),
                                          ("videomuted", ns.JITSI_VIDEO_MUTED, self.video)):
                ET.SubElement(pres.xml, "{%s}%s" % (namespace, tag)).text = "true" if track is None else "false"
            # the same state per source, where Jitsi clients read mute state and video type (our
            # sources are named as theirs: `<nick>-a0`, `<nick>-v0`)
            ET.SubElement(pres.xml, "{%s}SourceInfo" % ns.CLIENT).text = json.dumps({
                f"{self.nick}-a0": {"muted": self.audio is None},
                f"{self.nick}-v0": {"muted": self.video is None, "videoType": "camera"}})
            if self.display_name:
                ET.SubElement(pres.xml, "{%s}nick" % ns.NICK).text = self.display_name
        return pres

    async def _join_muc(self, any_nick: bool = False) -> None:
        """Join with our nick; if it is taken and was drawn at random (or, `any_nick`, when we
        come back after a lost connection and our old self may still be there), with another."""
        base = self.nick
        for _attempt in range(3):
            self._join_result: asyncio.Future = asyncio.get_running_loop().create_future()
            self._presence().send()
            try:
                await self._join_result
                self._in_room = True
                return
            except ParticipantError as exc:
                if "conflict" in str(exc) and not self._nick_given:
                    self.nick = secrets.token_hex(4)  # our random nick was taken: draw another
                    continue
                if "conflict" in str(exc) and any_nick:
                    self.nick = f"{base}-{secrets.token_hex(2)}"
                    continue
                raise Refused(str(exc)) from None
        raise ParticipantError(f"no free nick in {self.room_jid}")

    def _on_presence(self, pres: slixmpp.Presence) -> None:
        frm = pres["from"]
        if frm.bare != self.room_jid:
            return
        nick = frm.resource
        ptype = pres["type"]
        x = pres.xml.find("{%s}x" % ns.MUC_USER)
        codes = {s.get("code") for s in x.iterfind("{%s}status" % ns.MUC_USER)} if x is not None else set()
        is_self = nick == self.nick or "110" in codes
        result = getattr(self, "_join_result", None)
        if ptype == "error":
            if is_self or not self._in_room:
                err = pres.xml.find("{jabber:client}error")
                cond = next((etree.QName(c.tag).localname for c in err if c.tag.startswith("{%s}" % ns.STANZA_ERRORS)
                             and etree.QName(c.tag).localname != "text"), "error") if err is not None else "error"
                text = err.findtext("{%s}text" % ns.STANZA_ERRORS) if err is not None else None
                hint = {"registration-required": " (members-only room: the lobby is not supported here)",
                        "not-authorized": " (the room has a password)", "conflict": " (nick in use)",
                        "forbidden": " (banned)"}.get(cond, "")
                if result is not None and not result.done():
                    result.set_exception(ParticipantError(
                        f"{self.room_jid} refused {self.nick}: {cond}{hint}" + (f": {text}" if text else "")))
            return
        if is_self:
            if "210" in codes or "110" in codes:
                self.nick = nick or self.nick
            if ptype == "unavailable":
                if "332" in codes and self._established and self.reconnect_timeout > 0:
                    return  # the server is shutting down: its connection goes next, and we reconnect
                if self._in_room and not self._left:
                    self._in_room = False
                    why = "kicked" if "307" in codes else "banned" if "301" in codes else "removed from the room"
                    self._failure = ParticipantError(f"{self.nick} was {why}")
                    self._emit(Event("kicked", self.nick, text=why))
                    self._spawn(self._close_session())
            elif result is not None and not result.done():
                result.set_result(None)
            return
        if nick == "focus":
            item = x.find("{%s}item" % ns.MUC_USER) if x is not None else None
            self._focus_real = "" if ptype == "unavailable" or item is None else item.get("jid", "")
            return
        if not nick:
            return
        if ptype == "unavailable":
            self._stale.discard(nick)
            if self.occupants.pop(nick, None) is not None:
                self._emit(Event("occupant-left", nick))
        else:
            name = pres.xml.findtext("{%s}nick" % ns.NICK) or ""
            new = nick not in self.occupants
            self._stale.discard(nick)
            self.occupants[nick] = name
            if new:
                self._emit(Event("occupant-joined", nick, text=name))

    def _on_message(self, msg: slixmpp.Message) -> None:
        if msg["type"] != "groupchat" or msg["from"].bare != self.room_jid:
            return
        body = msg["body"]
        if not body:
            return
        nick = msg["from"].resource
        self.chat.append((nick, body))
        self._emit(Event("chat", nick, text=body))

    def send_chat(self, text: str) -> None:
        if self.client is None or not self._in_room:
            raise ParticipantError("not in the room")
        self.client.send_message(mto=slixmpp.JID(self.room_jid), mbody=text, mtype="groupchat")

    async def wait_chat(self, text: str, timeout: float = 10.0) -> tuple[str, str]:
        """The first room message (own ones included, as the room echoes them) containing `text`."""
        return await self._until(lambda: next(((n, t) for n, t in self.chat if text in t), None), timeout,
                                 f"chat message {text!r}")
