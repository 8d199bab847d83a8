"""One XEP-0045 room: its occupants, affiliations, settings, history, and every rule about them.

A room never touches sockets: it gets parsed stanzas from its service and hands finished
elements to `service.send`, so the same room runs inside our server or as an external component.
Every request is checked completely before anything changes, so a refused request leaves the
room exactly as it was.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable

from lxml import etree

from jitsi_base import ns
from jitsi_base.errors import StanzaError
from xmpp_wire.stanza import JID, Stanza
from .forms import RoomConfig, apply_submission, config_form, info_form

if TYPE_CHECKING:
    from .service import MucService

log = logging.getLogger(__name__)

AFFILIATIONS = ("owner", "admin", "member", "none", "outcast")
ROLES = ("moderator", "participant", "visitor", "none")
RANK = {"owner": 4, "admin": 3, "member": 2, "none": 1, "outcast": 0}

X_MUC = ns.q(ns.MUC, "x")
X_USER = ns.q(ns.MUC_USER, "x")
ITEM = ns.q(ns.MUC_USER, "item")
STATUS = ns.q(ns.MUC_USER, "status")


@dataclass(eq=False)
class Occupant:
    nick: str
    jid: JID  # the real, full JID
    role: str
    presence: etree._Element  # the client's last available presence, without MUC elements


def _strip_muc(el: etree._Element) -> etree._Element:
    """The client's presence as others should see it: its extensions verbatim, our x ours."""
    out = etree.Element("presence")
    for key in ("id", "xml:lang"):
        if el.get(key) is not None:
            out.set(key, el.get(key))
    for child in el:
        if child.tag in (X_MUC, X_USER) or not isinstance(child.tag, str):
            continue
        out.append(deepcopy(child))
    return out


class Room:
    def __init__(self, service: "MucService", name: str, config: RoomConfig,
                 parent: "Room | None" = None) -> None:
        self.service = service
        self.name = name
        self.jid = f"{name}@{service.domain}"
        self.config = config
        self.parent = parent  # a lobby room's main room
        self.lobby_room: Room | None = None
        self.affiliations: dict[str, str] = {}
        self.occupants: dict[str, Occupant] = {}
        self.by_jid: dict[str, Occupant] = {}
        self.history: deque[tuple[float, etree._Element]] = deque(maxlen=max(service.history_size, 1))
        self.subject: etree._Element | None = None
        self.locked = False
        self.hosted = False  # a registered user (or token holder) has been in it
        self.meeting_id = str(uuid.uuid4())
        self.created = time.time()
        self._next_sid = 0

    # ---- who is who --------------------------------------------------------------------------
    def affiliation(self, bare: str) -> str:
        if self.service.is_admin(bare):
            return "owner"
        aff = self.affiliations.get(bare, "none")
        if self.parent is not None and aff == "none":
            main = self.parent.affiliation(bare)
            if main in ("owner", "admin"):
                return "owner"  # the main room's moderators run its lobby
            if main == "outcast":
                return "outcast"
        return aff

    def default_role(self, affiliation: str) -> str:
        if affiliation in ("owner", "admin"):
            return "moderator"
        if affiliation == "member" or not self.config.moderated:
            return "participant"
        return "visitor"

    def sees_real_jids(self, occupant: Occupant) -> bool:
        return self.config.whois == "anyone" or occupant.role == "moderator"

    def occupant_jid(self, nick: str) -> str:
        return f"{self.jid}/{nick}"

    # ---- output helpers ------------------------------------------------------------------------
    def _x(self, el: etree._Element, occupant: Occupant, with_jid: bool, role: str | None = None,
           affiliation: str | None = None, codes: Iterable[int] = (), nick: str | None = None,
           reason: str | None = None, actor: str | None = None) -> etree._Element:
        x = etree.SubElement(el, X_USER, nsmap={None: ns.MUC_USER})
        item = etree.SubElement(x, ITEM, affiliation=affiliation or self.affiliation(occupant.jid.bare),
                                role=role or occupant.role)
        if with_jid:
            item.set("jid", occupant.jid.full)
        if nick is not None:
            item.set("nick", nick)
        if actor is not None:
            etree.SubElement(item, ns.q(ns.MUC_USER, "actor"), nick=actor)
        if reason:
            etree.SubElement(item, ns.q(ns.MUC_USER, "reason")).text = reason
        for code in codes:
            etree.SubElement(x, STATUS, code=str(code))
        return x

    def _send_presence(self, occupant: Occupant, receivers: Iterable[Occupant], *, unavailable: bool = False,
                       codes: Iterable[int] = (), self_codes: Iterable[int] = (), **item: str | None) -> None:
        """One occupant's presence to each receiver; two variants (with and without the real
        JID) are built once and copied, since a join in a 200-person room sends 200 of them."""
        if unavailable:
            base = etree.Element("presence", type="unavailable")
            status = occupant.presence.find("status") if occupant.presence is not None else None
            if item.pop("status", None) is not None and status is not None:
                base.append(deepcopy(status))
        else:
            base = deepcopy(occupant.presence)
        base.set("from", self.occupant_jid(occupant.nick))
        variants: dict[tuple[bool, bool], etree._Element] = {}
        for receiver in receivers:
            is_self = receiver is occupant
            key = (self.sees_real_jids(receiver) or is_self, is_self)
            el = variants.get(key)
            if el is None:
                el = deepcopy(base)
                all_codes = list(codes) + (list(self_codes) if is_self else [])
                self._x(el, occupant, key[0], codes=all_codes, **item)  # type: ignore[arg-type]
                variants[key] = el
            out = deepcopy(el)
            out.set("to", receiver.jid.full)
            self.service.send(out)

    def _message_to_all(self, el: etree._Element) -> None:
        for occ in list(self.occupants.values()):
            out = deepcopy(el)
            out.set("to", occ.jid.full)
            self.service.send(out)

    def _status_message(self, codes: Iterable[int]) -> None:
        msg = etree.Element("message", type="groupchat")
        msg.set("from", self.jid)
        x = etree.SubElement(msg, X_USER, nsmap={None: ns.MUC_USER})
        for code in codes:
            etree.SubElement(x, STATUS, code=str(code))
        self._message_to_all(msg)

    # ---- presence ----------------------------------------------------------------------------
    def on_presence(self, stanza: Stanza) -> None:
        assert stanza.from_ is not None and stanza.to is not None
        occupant = self.by_jid.get(stanza.from_.full)
        ptype = stanza.type
        if ptype == "error":
            if occupant is not None:  # its client bounced our traffic: it is gone
                self._remove(occupant, codes=(333,))
            return
        if ptype not in (None, "unavailable"):
            return  # probes and subscriptions mean nothing to a room
        nick = stanza.to.resource
        if ptype == "unavailable":
            if occupant is not None:
                occupant.presence = _strip_muc(stanza.el) if len(stanza.el) else occupant.presence
                self._remove(occupant, status=True)
            return
        if occupant is None:
            if not nick:
                raise StanzaError("jid-malformed", "Join with a nickname: room@service/nick")
            self.join(stanza, nick)
        elif nick and nick != occupant.nick:
            self._change_nick(occupant, nick, stanza)
        else:
            occupant.presence = self._own_presence(occupant.jid, stanza)
            self._send_presence(occupant, self.occupants.values(), self_codes=(110,))

    def _own_presence(self, real: JID, stanza: Stanza) -> etree._Element:
        """What the room keeps and shows of an occupant's presence: theirs without the MUC
        payload, with what the service vouches for (a token's name and identity) on top."""
        el = _strip_muc(stanza.el)
        self.service.stamp_presence(real, el)
        return el

    def join(self, stanza: Stanza, nick: str, created: bool = False) -> None:
        real = stanza.from_
        assert real is not None
        host = self.service.check_entry(self, real)
        aff = self.affiliation(real.bare)
        if aff == "outcast":
            raise StanzaError("forbidden", "You are banned from this room")
        existing = self.occupants.get(nick)
        if existing is not None:
            raise StanzaError("conflict", "That nickname is already in use")
        self.service.check_nick(real, nick)
        if self.locked and aff != "owner":
            raise StanzaError("item-not-found", "The room is locked until its owner configures it")
        privileged = aff in ("owner", "admin")
        if self.config.members_only and aff not in ("owner", "admin", "member"):
            lobby = self.lobby_room
            if lobby is not None:
                app = etree.Element(ns.q(ns.JITMEET, "lobbyroom"), nsmap={None: ns.JITMEET})
                app.text = lobby.jid
                raise StanzaError("registration-required", "Wait in the lobby until a moderator admits you",
                                  app_condition=app)
            raise StanzaError("registration-required", "This room is for members only")
        x = stanza.el.find(X_MUC)
        if self.config.password and not privileged:
            given = x.findtext(ns.q(ns.MUC, "password")) if x is not None else None
            if given != self.config.password:
                raise StanzaError("not-authorized", "A password is required to enter this room")
        if self.config.max_occupants and len(self.occupants) >= self.config.max_occupants and not privileged:
            raise StanzaError("service-unavailable", "The room is full")
        occupant = Occupant(nick, real, self.default_role(aff), self._own_presence(real, stanza))
        # existing occupants to the newcomer, then the newcomer to everyone (XEP-0045 7.2.3)
        for other in self.occupants.values():
            self._send_presence(other, (occupant,))
        self.occupants[nick] = occupant
        self.by_jid[real.full] = occupant
        if host:
            self.hosted = True  # guests may come in from now on (`MucService.check_entry`)
        self_codes = [110]
        if self.config.whois == "anyone":
            self_codes.append(100)
        if created:
            self_codes.append(201)
        self._send_presence(occupant, self.occupants.values(), self_codes=self_codes)
        self._send_history(occupant, x)
        self._send_subject(occupant)
        log.debug("%s joined %s as %s (%s/%s)", real, self.jid, nick, aff, occupant.role)

    def _change_nick(self, occupant: Occupant, nick: str, stanza: Stanza) -> None:
        if nick in self.occupants:
            raise StanzaError("conflict", "That nickname is already in use")
        self.service.check_nick(occupant.jid, nick)
        self._send_presence(occupant, self.occupants.values(), unavailable=True, codes=(303,),
                            self_codes=(110,), nick=nick)
        del self.occupants[occupant.nick]
        occupant.nick = nick
        occupant.presence = self._own_presence(occupant.jid, stanza)
        self.occupants[nick] = occupant
        self._send_presence(occupant, self.occupants.values(), self_codes=(110,))

    def _remove(self, occupant: Occupant, codes: Iterable[int] = (), status: bool = False,
                reason: str | None = None, actor: str | None = None, affiliation: str | None = None) -> None:
        if self.occupants.get(occupant.nick) is not occupant:
            return
        self._send_presence(occupant, list(self.occupants.values()), unavailable=True, codes=codes,
                            self_codes=(110,), role="none", reason=reason, actor=actor,
                            affiliation=affiliation, status="1" if status else None)
        del self.occupants[occupant.nick]
        self.by_jid.pop(occupant.jid.full, None)
        if not self.occupants:
            self.service.room_empty(self)

    def _send_history(self, occupant: Occupant, x: etree._Element | None) -> None:
        items = list(self.history)
        h = x.find(ns.q(ns.MUC, "history")) if x is not None else None
        if h is not None:
            try:
                if h.get("maxstanzas") is not None:
                    n = max(0, int(h.get("maxstanzas")))
                    items = items[len(items) - n:] if n else []
                if h.get("seconds") is not None:
                    cutoff = time.time() - max(0, int(h.get("seconds")))
                    items = [i for i in items if i[0] >= cutoff]
                if h.get("maxchars") is not None and int(h.get("maxchars")) == 0:
                    items = []
            except ValueError:
                pass  # a malformed history request gets the default history
        for stamp, el in items:
            out = deepcopy(el)
            out.set("to", occupant.jid.full)
            delay = etree.SubElement(out, ns.q(ns.DELAY, "delay"), nsmap={None: ns.DELAY})
            delay.set("from", self.jid)
            delay.set("stamp", datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
            self.service.send(out)

    def _send_subject(self, occupant: Occupant) -> None:
        if self.subject is not None:
            out = deepcopy(self.subject)
        else:
            out = etree.Element("message", type="groupchat")
            out.set("from", self.jid)
            etree.SubElement(out, "subject")
        out.set("to", occupant.jid.full)
        self.service.send(out)

    # ---- messages ----------------------------------------------------------------------------
    def on_message(self, stanza: Stanza) -> None:
        assert stanza.from_ is not None and stanza.to is not None
        if stanza.type == "error":
            return
        sender = self.by_jid.get(stanza.from_.full)
        if stanza.to.resource:
            self._private_message(stanza, sender)
            return
        if stanza.type == "groupchat":
            self._groupchat(stanza, sender)
            return
        x = stanza.el.find(X_USER)
        if x is not None and x.find(ns.q(ns.MUC_USER, "invite")) is not None:
            self._invite(stanza, sender, x)
            return
        raise StanzaError("bad-request", "Send groupchat messages to the room, private ones to room/nick")

    def _groupchat(self, stanza: Stanza, sender: Occupant | None) -> None:
        if sender is None:
            raise StanzaError("not-acceptable", "Join the room before sending to it")
        if sender.role == "visitor":
            raise StanzaError("forbidden", "You have no voice in this moderated room")
        el = stanza.el
        subject = el.find("subject")
        if subject is not None and el.find("body") is None:
            if sender.role != "moderator" and not self.config.change_subject:
                raise StanzaError("forbidden", "Only moderators may change the subject")
        out = etree.Element("message", type="groupchat")
        for key in ("id", "xml:lang"):
            if el.get(key) is not None:
                out.set(key, el.get(key))
        for child in el:
            if isinstance(child.tag, str) and child.tag != ns.q(ns.STANZA_ID, "stanza-id"):
                out.append(deepcopy(child))
        out.set("from", self.occupant_jid(sender.nick))
        self._next_sid += 1
        etree.SubElement(out, ns.q(ns.STANZA_ID, "stanza-id"), nsmap={None: ns.STANZA_ID},
                         id=f"{self.meeting_id[:8]}-{self._next_sid}", by=self.jid)
        if subject is not None and el.find("body") is None:
            self.subject = out
        elif el.find("body") is not None and self.service.history_size:
            self.history.append((time.time(), out))
        self._message_to_all(out)

    def _private_message(self, stanza: Stanza, sender: Occupant | None) -> None:
        assert stanza.to is not None
        if sender is None:
            raise StanzaError("not-acceptable", "Join the room before messaging its occupants")
        target = self.occupants.get(stanza.to.resource)
        if target is None:
            raise StanzaError("item-not-found", "No such occupant")
        if stanza.type == "groupchat":
            raise StanzaError("bad-request", "Private messages are of type chat")
        allow = self.config.allow_pm
        if (allow == "none" or (allow == "moderators" and sender.role != "moderator")
                or (allow == "participants" and sender.role == "visitor")):
            raise StanzaError("forbidden", "Private messages are not allowed in this room")
        out = deepcopy(stanza.el)
        out.set("from", self.occupant_jid(sender.nick))
        out.set("to", target.jid.full)
        if out.find(X_USER) is None:
            etree.SubElement(out, X_USER, nsmap={None: ns.MUC_USER})
        self.service.send(out)

    def _invite(self, stanza: Stanza, sender: Occupant | None, x: etree._Element) -> None:
        assert stanza.from_ is not None
        if sender is None:
            raise StanzaError("not-acceptable", "Join the room before inviting others")
        if self.config.members_only and self.affiliation(stanza.from_.bare) not in ("owner", "admin"):
            raise StanzaError("forbidden", "Only admins may invite to a members-only room")
        for invite in x.iterfind(ns.q(ns.MUC_USER, "invite")):
            try:
                to = JID(invite.get("to", ""))
            except Exception:
                raise StanzaError("jid-malformed", "Bad invitee address") from None
            msg = etree.Element("message")
            msg.set("from", self.jid)
            msg.set("to", to.full)
            ox = etree.SubElement(msg, X_USER, nsmap={None: ns.MUC_USER})
            inv = etree.SubElement(ox, ns.q(ns.MUC_USER, "invite"))
            inv.set("from", stanza.from_.full)
            reason = invite.findtext(ns.q(ns.MUC_USER, "reason"))
            if reason:
                etree.SubElement(inv, ns.q(ns.MUC_USER, "reason")).text = reason
            if self.config.password:
                etree.SubElement(ox, ns.q(ns.MUC_USER, "password")).text = self.config.password
            self.service.send(msg)

    # ---- IQs ---------------------------------------------------------------------------------
    def on_iq(self, stanza: Stanza) -> etree._Element | None:
        """Answers IQs to the room itself; returns the result payload. Occupant IQs are relayed."""
        assert stanza.from_ is not None and stanza.to is not None
        if stanza.to.resource:
            self._relay_iq(stanza)
            return None
        payload = stanza.payload()
        tag = payload.tag if payload is not None else None
        if tag == ns.q(ns.DISCO_INFO, "query") and stanza.type == "get":
            return self.disco_info(payload, stanza.from_)
        if tag == ns.q(ns.DISCO_ITEMS, "query") and stanza.type == "get":
            return self.disco_items(stanza.from_)
        if tag == ns.q(ns.MUC_ADMIN, "query"):
            return self._admin(stanza, payload)
        if tag == ns.q(ns.MUC_OWNER, "query"):
            return self._owner(stanza, payload)
        if tag == ns.q(ns.PING, "ping") and stanza.type == "get":
            return None
        raise StanzaError("service-unavailable")

    def _relay_iq(self, stanza: Stanza) -> None:
        """Jingle between the focus and each participant travels this way, in both directions."""
        assert stanza.from_ is not None and stanza.to is not None
        sender = self.by_jid.get(stanza.from_.full)
        if sender is None:
            raise StanzaError("not-acceptable", "Join the room before sending to its occupants")
        target = self.occupants.get(stanza.to.resource)
        if target is None:
            raise StanzaError("item-not-found", "No such occupant")
        if target is sender and stanza.type == "get" and stanza.el.find(ns.q(ns.PING, "ping")) is not None:
            reply = etree.Element("iq", type="result")
            reply.set("id", stanza.id or "")
            reply.set("from", self.occupant_jid(sender.nick))
            reply.set("to", sender.jid.full)
            self.service.send(reply)  # XEP-0410 self-ping: yes, you are still joined
            return
        out = deepcopy(stanza.el)
        out.set("from", self.occupant_jid(sender.nick))
        out.set("to", target.jid.full)
        self.service.send(out)

    def disco_info(self, query: etree._Element | None = None, asker: JID | None = None) -> etree._Element:
        """Room info for anyone; the meeting id only for occupants and the service's admins (the
        Jitsi client reads it once it has joined; outsiders have no use for it)."""
        if query is not None and query.get("node"):
            raise StanzaError("item-not-found")
        cfg = self.config
        out = etree.Element(ns.q(ns.DISCO_INFO, "query"), nsmap={None: ns.DISCO_INFO})
        etree.SubElement(out, ns.q(ns.DISCO_INFO, "identity"), category="conference", type="text",
                         name=cfg.name or self.name)
        features = [ns.MUC, ns.DISCO_INFO, ns.DISCO_ITEMS, ns.STANZA_ID, "http://jabber.org/protocol/muc#stable_id",
                    "muc_public" if cfg.public else "muc_hidden",
                    "muc_persistent" if cfg.persistent else "muc_temporary",
                    "muc_passwordprotected" if cfg.password else "muc_unsecured",
                    "muc_membersonly" if cfg.members_only else "muc_open",
                    "muc_moderated" if cfg.moderated else "muc_unmoderated",
                    "muc_nonanonymous" if cfg.whois == "anyone" else "muc_semianonymous"]
        for var in features:
            etree.SubElement(out, ns.q(ns.DISCO_INFO, "feature"), var=var)
        extra: dict[str, str] = {}
        if asker is not None and (asker.full in self.by_jid or self.service.is_admin(asker.bare)):
            extra["muc#roominfo_meetingId"] = self.meeting_id
        if self.lobby_room is not None:
            extra["muc#roominfo_lobbyroom"] = self.lobby_room.jid
        subject = self.subject.findtext("subject") if self.subject is not None else ""
        out.append(info_form(cfg, len(self.occupants), subject or "", extra))
        return out

    def disco_items(self, asker: JID) -> etree._Element:
        out = etree.Element(ns.q(ns.DISCO_ITEMS, "query"), nsmap={None: ns.DISCO_ITEMS})
        if self.config.public or asker.full in self.by_jid:
            for nick in self.occupants:
                etree.SubElement(out, ns.q(ns.DISCO_ITEMS, "item"), jid=self.occupant_jid(nick), name=nick)
        return out

    # ---- muc#owner -----------------------------------------------------------------------------
    def _owner(self, stanza: Stanza, query: etree._Element) -> etree._Element | None:
        assert stanza.from_ is not None
        if self.affiliation(stanza.from_.bare) != "owner":
            raise StanzaError("forbidden", "Only owners may configure the room")
        if stanza.type == "get":
            out = etree.Element(ns.q(ns.MUC_OWNER, "query"), nsmap={None: ns.MUC_OWNER})
            out.append(config_form(self.config))
            return out
        destroy = query.find(ns.q(ns.MUC_OWNER, "destroy"))
        if destroy is not None:
            self.destroy(destroy.findtext(ns.q(ns.MUC_OWNER, "reason")), destroy.get("jid"))
            return None
        x = query.find(ns.q(ns.DATA_FORMS, "x"))
        if x is None:
            raise StanzaError("bad-request", "Expected a data form or <destroy/>")
        if x.get("type") == "cancel":
            if self.locked:
                self.destroy("The owner cancelled the room's creation")
            return None
        new = apply_submission(self.config, x)
        old = self.config
        self.config = new
        self.locked = False
        self.history = deque(self.history, maxlen=max(self.service.history_size, 1))
        codes = [104]
        if old.whois != new.whois:
            codes.append(172 if new.whois == "anyone" else 173)
        self._status_message(codes)
        self._config_changed(old, new)
        return None

    def _config_changed(self, old: RoomConfig, new: RoomConfig) -> None:
        if new.members_only and not old.members_only:
            # everyone already inside stays: they become members (Jitsi's lobby does the same)
            for occ in list(self.occupants.values()):
                if self.affiliation(occ.jid.bare) == "none":
                    self.affiliations[occ.jid.bare] = "member"
        wants_lobby = new.members_only and new.lobby and self.service.lobby is not None
        if wants_lobby and self.lobby_room is None:
            self.lobby_room = self.service.lobby.create_lobby(self)  # type: ignore[union-attr]
        elif not wants_lobby and self.lobby_room is not None:
            lobby, self.lobby_room = self.lobby_room, None
            lobby.destroy("The lobby was closed", self.jid)
        if new.whois != old.whois or new.moderated != old.moderated:
            for occ in list(self.occupants.values()):
                aff = self.affiliation(occ.jid.bare)
                if not (occ.role == "moderator" and aff not in ("owner", "admin")):  # keep granted moderators
                    occ.role = self.default_role(aff)
                self._send_presence(occ, self.occupants.values(), self_codes=(110,))

    def destroy(self, reason: str | None = None, alternate: str | None = None) -> None:
        for occ in list(self.occupants.values()):
            el = etree.Element("presence", type="unavailable")
            el.set("from", self.occupant_jid(occ.nick))
            el.set("to", occ.jid.full)
            x = etree.SubElement(el, X_USER, nsmap={None: ns.MUC_USER})
            etree.SubElement(x, ITEM, affiliation="none", role="none")
            d = etree.SubElement(x, ns.q(ns.MUC_USER, "destroy"))
            if alternate:
                d.set("jid", alternate)
            if reason:
                etree.SubElement(d, ns.q(ns.MUC_USER, "reason")).text = reason
            etree.SubElement(x, STATUS, code="110")
            self.service.send(el)
        self.occupants.clear()
        self.by_jid.clear()
        if self.lobby_room is not None:
            lobby, self.lobby_room = self.lobby_room, None
            lobby.destroy("The conference has ended", None)
        self.service.remove_room(self)

    # ---- muc#admin -----------------------------------------------------------------------------
    def _admin(self, stanza: Stanza, query: etree._Element) -> etree._Element | None:
        assert stanza.from_ is not None
        actor_aff = self.affiliation(stanza.from_.bare)
        actor = self.by_jid.get(stanza.from_.full)
        actor_role = actor.role if actor is not None else ("moderator" if actor_aff in ("owner", "admin") else "none")
        items = list(query.iterfind(ns.q(ns.MUC_ADMIN, "item")))
        if not items:
            raise StanzaError("bad-request", "Expected at least one <item/>")
        if stanza.type == "get":
            return self._admin_list(items[0], actor_aff, actor_role)
        changes = [self._check_change(item, stanza.from_, actor_aff, actor_role) for item in items]
        for change in changes:  # all were valid: now apply them
            change()
        return None

    def _admin_list(self, item: etree._Element, actor_aff: str, actor_role: str) -> etree._Element:
        out = etree.Element(ns.q(ns.MUC_ADMIN, "query"), nsmap={None: ns.MUC_ADMIN})
        aff, role = item.get("affiliation"), item.get("role")
        if aff is not None:
            if aff not in AFFILIATIONS or aff == "none":
                raise StanzaError("bad-request", f"Cannot list affiliation {aff!r}")
            if actor_aff not in ("owner", "admin"):
                raise StanzaError("forbidden", "Only admins and owners may see affiliation lists")
            for jid, a in sorted(self.affiliations.items()):
                if a == aff:
                    etree.SubElement(out, ns.q(ns.MUC_ADMIN, "item"), affiliation=a, jid=jid)
            if aff == "owner":
                for jid in sorted(self.service.admins):
                    if jid not in self.affiliations:
                        etree.SubElement(out, ns.q(ns.MUC_ADMIN, "item"), affiliation="owner", jid=jid)
            return out
        if role is not None:
            if role not in ("moderator", "participant", "visitor"):
                raise StanzaError("bad-request", f"Cannot list role {role!r}")
            if actor_role != "moderator":
                raise StanzaError("forbidden", "Only moderators may see role lists")
            for occ in self.occupants.values():
                if occ.role == role:
                    etree.SubElement(out, ns.q(ns.MUC_ADMIN, "item"), role=role, nick=occ.nick,
                                     jid=occ.jid.full, affiliation=self.affiliation(occ.jid.bare))
            return out
        raise StanzaError("bad-request", "Ask for an affiliation or a role")

    def _check_change(self, item: etree._Element, actor_jid: JID, actor_aff: str, actor_role: str):
        reason = item.findtext(ns.q(ns.MUC_ADMIN, "reason"))
        actor_nick = self.by_jid[actor_jid.full].nick if actor_jid.full in self.by_jid else None
        role, aff = item.get("role"), item.get("affiliation")
        if role is not None:
            if role not in ROLES:
                raise StanzaError("bad-request", f"Unknown role {role!r}")
            target = self.occupants.get(item.get("nick", ""))
            if target is None:
                raise StanzaError("item-not-found", "No occupant with that nickname")
            target_aff = self.affiliation(target.jid.bare)
            if actor_role != "moderator":
                raise StanzaError("forbidden", "Only moderators may change roles")
            if target_aff in ("owner", "admin") and role != "moderator":
                raise StanzaError("not-allowed", "Owners and admins cannot be kicked or silenced")
            if role == "moderator" or target.role == "moderator":
                if actor_aff not in ("owner", "admin"):
                    raise StanzaError("forbidden", "Only admins and owners may grant or revoke moderator")
            if RANK[target_aff] > RANK[actor_aff] and target is not self.by_jid.get(actor_jid.full):
                raise StanzaError("not-allowed", "That occupant outranks you")

            def apply_role() -> None:
                if self.occupants.get(target.nick) is not target:
                    return
                if role == "none":
                    self._remove(target, codes=(307,), reason=reason, actor=actor_nick)
                else:
                    target.role = role
                    self._send_presence(target, self.occupants.values(), self_codes=(110,), reason=reason)
            return apply_role
        if aff is not None:
            if aff not in AFFILIATIONS:
                raise StanzaError("bad-request", f"Unknown affiliation {aff!r}")
            jid_text = item.get("jid")
            if jid_text:
                try:
                    bare = JID(jid_text).bare
                except Exception:
                    raise StanzaError("jid-malformed", "Bad JID in item") from None
            else:
                occ = self.occupants.get(item.get("nick", ""))
                if occ is None:
                    raise StanzaError("item-not-found", "No occupant with that nickname")
                bare = occ.jid.bare
            if not bare:
                raise StanzaError("jid-malformed", "Bad JID in item")
            current = self.affiliation(bare)
            if actor_aff not in ("owner", "admin"):
                raise StanzaError("forbidden", "Only admins and owners may change affiliations")
            if actor_aff == "admin" and (aff in ("owner", "admin") or current in ("owner", "admin")):
                raise StanzaError("not-allowed", "Only owners may change owners and admins")
            if self.service.is_admin(bare):
                raise StanzaError("not-allowed", "The service's administrators always own the room")
            if current == "owner" and aff != "owner":
                owners = [j for j, a in self.affiliations.items() if a == "owner"]
                if owners == [bare] and not self.service.admins:
                    raise StanzaError("conflict", "A room needs at least one owner")

            def apply_aff() -> None:
                if aff == "none":
                    self.affiliations.pop(bare, None)
                else:
                    self.affiliations[bare] = aff
                for occ in [o for o in self.occupants.values() if o.jid.bare == bare]:
                    if aff == "outcast":
                        self._remove(occ, codes=(301,), reason=reason, actor=actor_nick, affiliation="outcast")
                    elif aff == "none" and self.config.members_only:
                        self._remove(occ, codes=(321,), reason=reason, actor=actor_nick, affiliation="none")
                    else:
                        occ.role = self.default_role(aff) if occ.role != "visitor" or aff != "none" else occ.role
                        self._send_presence(occ, self.occupants.values(), self_codes=(110,), reason=reason)
                if aff in ("member", "admin", "owner") and self.lobby_room is not None:
                    self.lobby_room.admitted(bare, self.jid)
            return apply_aff
        raise StanzaError("bad-request", "An item needs a role or an affiliation")

    # ---- lobby ---------------------------------------------------------------------------------
    def admitted(self, bare: str, main_room: str) -> None:
        """In a lobby room: someone waiting here was made a member of the main room."""
        for occ in [o for o in self.occupants.values() if o.jid.bare == bare]:
            self._send_presence(occ, [occ], unavailable=True, self_codes=(110,), role="none")
            notice = etree.Element("message")
            notice.set("from", self.jid)
            notice.set("to", occ.jid.full)
            # plain clients see the body; ours reads the element and joins the main room
            etree.SubElement(notice, "body").text = f"A moderator let you in: join {main_room}"
            etree.SubElement(notice, ns.q(ns.JITMEET, "lobby-access"), nsmap={None: ns.JITMEET},
                             granted="true", room=main_room)
            self.service.send(notice)
            others = [o for o in self.occupants.values() if o is not occ]
            self._send_presence(occ, others, unavailable=True, role="none")
            del self.occupants[occ.nick]
            self.by_jid.pop(occ.jid.full, None)
