"""A MUC service: the domain (conference.<domain>) that holds rooms, who may create them, and
which nicks are reserved for its admins.

Conference rooms belong to the focus: by default only the service's admins (the focus) create
rooms, and only they may take a reserved nick ("focus"). Otherwise a guest who came first would
own the room and sit at `room/focus`, where clients expect the focus's Jingle offers.

It is a `DomainHandler`: it receives every stanza addressed to its domain and sends through a
`send` callable. Inside our server that is the router; as an external component it is the
component stream (see `component_client.py`). Errors are sent from here, not by the caller, so
both hosts behave the same.
"""
from __future__ import annotations

import logging
import unicodedata
from typing import TYPE_CHECKING, Callable, Iterable

from lxml import etree

from jitsi_base import ns
from jitsi_base.errors import StanzaError
from xmpp_wire.stanza import JID, Stanza, make_error, make_result
from .forms import RoomConfig
from .room import Room

if TYPE_CHECKING:
    from ..tokens import TokenClaims

log = logging.getLogger(__name__)

Send = Callable[[etree._Element], None]


def nick_key(nick: str) -> str:
    """A nick as compared with reserved nicks: the room already has it resourceprepped (NFKC,
    ignorables dropped); case and surrounding spaces must not make "Focus " a different nick."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", nick).casefold()).strip()


class MucService:
    def __init__(self, domain: str, send: Send, *, admins: list[str] | None = None,
                 create_rooms: str = "admins", history_size: int = 20, max_occupants: int = 0,
                 is_guest: Callable[[JID], bool] | None = None, lobby_domain: str | None = None,
                 name: str = "Conference rooms", only_domains: set[str] | None = None,
                 open_rooms: bool = False, reserved_nicks: Iterable[str] = (),
                 focus_service: str = "", guests_wait_for_host: bool = False,
                 token_of: "Callable[[JID], TokenClaims | None] | None" = None) -> None:
        self.domain = domain.lower()
        self._send = send
        self.admins = {a.lower() for a in (admins or [])}
        self.create_rooms = create_rooms
        self.history_size = history_size
        self.max_occupants = max_occupants
        self.is_guest = is_guest or (lambda jid: False)
        self.name = name
        # Set: only accounts of these domains may enter (the brewery room of focus and bridges).
        self.only_domains = only_domains
        self.open_rooms = open_rooms  # every room as if the focus made it: unlocked, real JIDs shown
        # Nicks only admins may take (compared by `nick_key`): the focus's, so that `room/focus`
        # is always the real focus.
        self.reserved_nicks = {nick_key(n) for n in reserved_nicks if nick_key(n)}
        # Where a guest asks for a room (the conference IQ), named in the error to a refused creation.
        self.focus_service = focus_service
        # `[auth] mode` "secure"/"token": guests enter only a room a host has been in
        self.guests_wait_for_host = guests_wait_for_host
        # mode "token" inside our server: the verified claims of a session (None: no token)
        self.token_of = token_of
        self.rooms: dict[str, Room] = {}
        # the one disco#info node the service answers besides none (lib-jitsi-meet asks the lobby
        # service for its features at node `lobbyrooms`, the type of the identity it found it by)
        self.disco_node = ""
        self.lobby: MucService | None = None
        if lobby_domain:
            self.lobby = MucService(lobby_domain, send, admins=admins, create_rooms="admins",
                                    history_size=0, is_guest=is_guest, name="Lobby rooms",
                                    reserved_nicks=reserved_nicks, guests_wait_for_host=guests_wait_for_host,
                                    token_of=token_of)
            self.lobby.disco_node = "lobbyrooms"

    # ---- plumbing ------------------------------------------------------------------------------
    def send(self, el: etree._Element) -> None:
        self._send(el)

    def is_admin(self, bare: str) -> bool:
        return bare in self.admins

    def check_nick(self, real: JID, nick: str) -> None:
        """Refuses a reserved nick to anyone but an admin, on joining and on a nick change."""
        if self.reserved_nicks and nick_key(nick) in self.reserved_nicks and not self.is_admin(real.bare):
            raise StanzaError("conflict", f"The nickname {nick!r} is reserved for the conference service")

    def check_entry(self, room: Room, real: JID) -> bool:
        """Who may enter (`[auth] mode`): raises StanzaError for a guest before the host came,
        a token for another room or none at all; makes a token's moderator an owner. True if
        the newcomer is a host (a registered user or token holder, not a guest or admin)."""
        if self.is_admin(real.bare):
            return False
        guest = self.is_guest(real)
        if guest:
            if self.guests_wait_for_host and not (room.parent or room).hosted:
                raise StanzaError("not-allowed", "This meeting has not been opened by its host yet; "
                                  "wait for the host")
            return False
        if self.token_of is not None:
            claims = self.token_of(real)
            if claims is None:
                raise StanzaError("forbidden", "Sign in with a token to enter this room")
            if not claims.allows_room(room.name):
                raise StanzaError("forbidden", f"Your token is for room {claims.room!r}, not {room.name!r}")
            if claims.moderator and room.parent is None:
                room.affiliations[real.bare] = "owner"
        return True

    def stamp_presence(self, real: JID, el: etree._Element) -> None:
        """A token holder's name (as the nick others see) and identity, as Jitsi's prosody
        modules show them (`<identity><user>...`): the token says who they are, not the client."""
        claims = self.token_of(real) if self.token_of is not None else None
        for old in el.findall("identity"):
            el.remove(old)  # only the server vouches for an identity
        if claims is None:
            return
        if claims.name:
            for old in el.findall(ns.q(ns.NICK, "nick")):
                el.remove(old)
            etree.SubElement(el, ns.q(ns.NICK, "nick"), nsmap={None: ns.NICK}).text = claims.name
        identity = etree.SubElement(el, "identity")
        user = etree.SubElement(identity, "user")
        for tag, value in (("id", claims.user_id), ("name", claims.name), ("avatar", claims.avatar),
                           ("email", claims.email)):
            if value:
                etree.SubElement(user, tag).text = value

    def domains(self) -> list[str]:
        return [self.domain] + ([self.lobby.domain] if self.lobby is not None else [])

    def handler_for(self, domain: str) -> "MucService | None":
        if domain == self.domain:
            return self
        if self.lobby is not None and domain == self.lobby.domain:
            return self.lobby
        return None

    def receive(self, stanza: Stanza) -> None:
        """Every stanza to our domain. Never raises: a bad stanza gets its error reply."""
        if stanza.from_ is None or stanza.to is None:
            return
        try:
            self._dispatch(stanza)
        except StanzaError as exc:
            self._error(stanza, exc)
        except Exception:
            log.exception("MUC failed on %r", stanza)
            self._error(stanza, StanzaError("internal-server-error"))

    def _error(self, stanza: Stanza, exc: StanzaError) -> None:
        if stanza.name == "presence" and stanza.type not in (None,):
            return
        if stanza.name == "iq" and stanza.type in ("result", "error"):
            return
        reply = make_error(stanza, exc)
        if reply is not None:
            self.send(reply)

    def _dispatch(self, stanza: Stanza) -> None:
        to = stanza.to
        assert to is not None
        if not to.user:
            if stanza.name == "iq":
                self._service_iq(stanza)
            elif stanza.name == "message" and stanza.type != "error":
                raise StanzaError("service-unavailable", "Messages go to rooms, not to the service")
            return
        if (self.only_domains is not None and stanza.from_ is not None
                and stanza.from_.domain not in self.only_domains and stanza.type not in ("error", "result")):
            raise StanzaError("forbidden", "This service is for the conference's own components")
        room = self.rooms.get(to.user)
        if room is None:
            if stanza.name == "presence" and stanza.type is None and to.resource:
                room = self._create(stanza)
                if room is None:
                    return
                return
            if stanza.name == "presence":
                if stanza.type is None:
                    raise StanzaError("jid-malformed", "Join with a nickname: room@service/nick")
                return
            raise StanzaError("item-not-found", "No such room")
        if stanza.name == "presence":
            room.on_presence(stanza)
        elif stanza.name == "message":
            room.on_message(stanza)
        else:
            self._room_iq(room, stanza)

    def _room_iq(self, room: Room, stanza: Stanza) -> None:
        if stanza.type in ("result", "error"):
            if stanza.to is not None and stanza.to.resource:
                room.on_iq(stanza)  # a reply to an IQ one occupant relayed to another
            return
        result = room.on_iq(stanza)
        if stanza.to is not None and not stanza.to.resource:
            self.send(make_result(stanza, result))

    # ---- rooms ---------------------------------------------------------------------------------
    def may_create(self, jid: JID) -> bool:
        if self.is_admin(jid.bare) or self.create_rooms == "anyone":
            return True
        if self.create_rooms == "authenticated":
            return not self.is_guest(jid)
        return False

    def _create(self, stanza: Stanza) -> Room | None:
        assert stanza.to is not None and stanza.from_ is not None
        if not self.may_create(stanza.from_):
            if self.create_rooms == "authenticated":
                raise StanzaError("not-allowed", "Guests cannot create rooms; sign in, or join a room that exists")
            # XEP-0045 says item-not-found for a room that does not exist; the text says what to do
            hint = (f"; ask {self.focus_service} for this room first (the conference IQ)"
                    if self.focus_service else "")
            raise StanzaError("item-not-found", f"No such room{hint}")
        cfg = RoomConfig(max_occupants=self.max_occupants)
        by_admin = self.is_admin(stanza.from_.bare) or self.open_rooms
        if by_admin:
            cfg.whois = "anyone"  # conferences: the focus and clients need real JIDs
        room = Room(self, stanza.to.user, cfg)
        if not by_admin:
            room.affiliations[stanza.from_.bare] = "owner"
            room.locked = True  # XEP-0045 10.1: until the owner accepts or configures it
        self.rooms[room.name] = room
        try:
            room.join(stanza, stanza.to.resource, created=True)
        except StanzaError:
            self.rooms.pop(room.name, None)
            raise
        log.info("room %s created by %s", room.jid, stanza.from_)
        return room

    def create_lobby(self, main: Room) -> Room:
        cfg = RoomConfig(whois="anyone", public=False, name=f"Lobby of {main.config.name or main.name}")
        room = self.rooms.get(main.name)
        if room is None:
            room = Room(self, main.name, cfg, parent=main)
            self.rooms[room.name] = room
        return room

    def room_empty(self, room: Room) -> None:
        if room.config.persistent or room.parent is not None:
            return  # a lobby lives as long as its main room
        if room.lobby_room is not None and room.lobby_room.occupants:
            return
        self.remove_room(room)

    def remove_room(self, room: Room) -> None:
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]
            log.info("room %s removed", room.jid)
        if room.parent is not None and room.parent.lobby_room is room:
            room.parent.lobby_room = None

    # ---- the service's own IQs -----------------------------------------------------------------
    def _service_iq(self, stanza: Stanza) -> None:
        if stanza.type not in ("get", "set"):
            return
        payload = stanza.payload()
        tag = payload.tag if payload is not None else None
        if tag == ns.q(ns.DISCO_INFO, "query") and stanza.type == "get":
            node = payload.get("node")
            if node and node != self.disco_node:
                raise StanzaError("item-not-found")
            out = etree.Element(ns.q(ns.DISCO_INFO, "query"), nsmap={None: ns.DISCO_INFO})
            if node:
                out.set("node", node)
            etree.SubElement(out, ns.q(ns.DISCO_INFO, "identity"), category="conference", type="text", name=self.name)
            for var in (ns.MUC, ns.DISCO_INFO, ns.DISCO_ITEMS, ns.PING, ns.STANZA_ID):
                etree.SubElement(out, ns.q(ns.DISCO_INFO, "feature"), var=var)
            self.send(make_result(stanza, out))
        elif tag == ns.q(ns.DISCO_ITEMS, "query") and stanza.type == "get":
            out = etree.Element(ns.q(ns.DISCO_ITEMS, "query"), nsmap={None: ns.DISCO_ITEMS})
            for room in sorted(self.rooms.values(), key=lambda r: r.name):
                if room.config.public and not room.locked:
                    etree.SubElement(out, ns.q(ns.DISCO_ITEMS, "item"), jid=room.jid,
                                     name=f"{room.config.name or room.name} ({len(room.occupants)})")
            self.send(make_result(stanza, out))
        elif tag == ns.q(ns.PING, "ping") and stanza.type == "get":
            self.send(make_result(stanza))
        else:
            raise StanzaError("service-unavailable")
