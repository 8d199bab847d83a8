"""The conference focus: two XMPP connections, one job.

- As the client `focus@auth.<domain>/focus` it joins every conference room (as owner: the MUC
  lists it among its admins), watches occupants, talks Jingle with each participant through the
  room, sits in the brewery to see bridges, and sends them COLIBRI2.
- As the XEP-0114 component `focus.<domain>` it answers the `conference` IQ participants send
  before joining a room; that is what Jitsi clients address, and a component works the same on
  our server, Prosody or ejabberd.

Whom it believes (docs/security.md): conference requests from anyone signed in, at most
`conference_requests_per_minute` each and `max_waiting_rooms` rooms nobody has joined yet;
Jingle and mute requests only from occupants of the room concerned (the MUC relays them, so
the nick is proven); bridge notices (an endpoint or relay gone) only from a bridge in the
brewery that hosts that conference.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import xml.etree.ElementTree as ET
from typing import Any, Coroutine

import slixmpp
from lxml import etree
from slixmpp import JID
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from xmpp_wire.component_client import ComponentConnection, attach
from jitsi_protocols import colibri2, focus_iq, jingle
from jitsi_protocols.slix import configure_tls, reply_error, to_et, to_lxml
from jitsi_base import ns
from jitsi_base.errors import StanzaError
from jitsi_base.rate import TokenBucket
from xmpp_wire.stanza import Stanza, make_error, make_result

from .bridge_selector import BridgeSelector
from .conference import UNSUPPORTED_CLIENT, Conference, supports_neither_contract

log = logging.getLogger(__name__)

# a participant's answer to our disco#info: how long we wait (its invitation waits too) and how
# many features we read of it
FEATURES_TIMEOUT = 5.0
MAX_FEATURES = 200


def features_of(query: Any) -> frozenset[str]:
    """The features a disco#info answer lists (an lxml or ElementTree `<query/>`, or None), read
    at most MAX_FEATURES of them and none longer than 256 characters: a client decides how much
    it sends, we decide how much we read."""
    if query is None:
        return frozenset()
    features = itertools.islice(query.iterfind(ns.q(ns.DISCO_INFO, "feature")), MAX_FEATURES)
    return frozenset(var for f in features if (var := f.get("var")) and len(var) <= 256)
MUTE_NS = {"audio": ns.JITSI_AUDIO_MUTED, "video": ns.JITSI_VIDEO_MUTED}


class Focus:
    def __init__(self, domain: str, password: str, xmpp: tuple[str, int], component: tuple[str, int],
                 component_secret: str, *, cafile: str | None = None, starttls: bool = True,
                 muc_domain: str | None = None, min_participants: int = 2, colibri_timeout: float = 10.0,
                 start_muted: tuple[int, int] = (0, 0), max_bridge_participants: int = 0,
                 max_bridge_stress: float = 0.8, conference_requests_per_minute: int = 30,
                 empty_room_timeout: float = 30.0, max_waiting_rooms: int = 200,
                 guest_domain: str = "", authentication: bool = False, auto_owner: bool = True) -> None:
        self.domain = domain
        self.jid = f"focus@auth.{domain}"
        self.service = f"focus.{domain}"
        self.muc_domain = muc_domain or f"conference.{domain}"
        self.brewery = f"jvbbrewery@internal.auth.{domain}"
        self.xmpp_address = xmpp
        self.component_address = component
        self.component_secret = component_secret
        self.min_participants = min_participants
        self.colibri_timeout = colibri_timeout
        self.start_muted = start_muted
        # when a conference's bridges are all this full, it cascades to one more (conference.py)
        self.max_bridge_participants = max_bridge_participants
        self.max_bridge_stress = max_bridge_stress
        self.conference_requests_per_minute = conference_requests_per_minute
        self.empty_room_timeout = empty_room_timeout
        self.max_waiting_rooms = max_waiting_rooms
        self._request_buckets: dict[str, TokenBucket] = {}  # requester's bare JID -> its allowance
        # `[auth] mode` "secure"/"token": clients of this domain are guests, who may not open a
        # meeting; they get `not-authorized` (Jicofo's answer, which Jitsi clients take as
        # "wait for the host") until a host is in the room. "": everyone may open one.
        self.guest_domain = guest_domain.lower()
        self.authentication = authentication  # told to clients as the property `authentication`
        self.auto_owner = auto_owner  # Jicofo's auto-owner; off when tokens say who moderates
        self._hosted: set[str] = set()  # rooms a host (not a guest) has joined
        # ask bridges for an SCTP data channel per endpoint (the participant's bridge channel;
        # the bridge's colibri-ws stays offered too)
        self.sctp = True
        self.selector = BridgeSelector()
        self.selector.on_removed.append(self._bridge_removed)
        self.conferences: dict[str, Conference] = {}
        self._tasks: set[asyncio.Task] = set()
        self.component: ComponentConnection | None = None
        # IQs focus.<domain> itself sent (id -> (who was asked, its answer)); see _ask_as_service
        self._service_iqs: dict[str, tuple[str, asyncio.Future]] = {}
        c = self.client = slixmpp.ClientXMPP(f"{self.jid}/focus", password)
        configure_tls(c, cafile, starttls)  # no TLS only on loopback: see the callers
        for plugin in ("xep_0030", "xep_0045", "xep_0199"):
            c.register_plugin(plugin)
        c.add_event_handler("session_start", self._on_session)
        c.add_event_handler("groupchat_presence", self._on_room_presence)
        c.register_handler(Callback("jingle", MatchXPath("%s/%s" % (ns.q(ns.CLIENT, "iq"), ns.q(jingle.NS, "jingle"))), self._on_jingle))
        for kind in ("audio", "video"):
            c.register_handler(Callback(f"mute-{kind}", MatchXPath("%s/%s" % (ns.q(ns.CLIENT, "iq"), ns.q(MUTE_NS[kind], "mute"))),
                                        lambda iq, kind=kind: self._on_mute(iq, kind)))
        c.register_handler(Callback("colibri2-from-bridge",
                                    MatchXPath("%s/%s" % (ns.q(ns.CLIENT, "iq"), ns.q(colibri2.NS, "conference-modify"))),
                                    self._on_bridge_notice))
        self._online = asyncio.get_event_loop().create_future()

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self, timeout: float = 20.0) -> None:
        self.client.connect(*self.xmpp_address)
        await asyncio.wait_for(asyncio.shield(self._online), timeout)
        self.component = await attach(self.component_address[0], self.component_address[1], self.service,
                                      self.component_secret, self)
        self.spawn(self._housekeeping())
        log.info("focus online as %s and %s", self.jid, self.service)

    async def stop(self) -> None:
        for conf in self.conferences.values():
            conf.close()
        for t in list(self._tasks):
            t.cancel()
        if self.component is not None:
            self.component.close()
        if self.client.transport is not None:
            try:
                await asyncio.wait_for(self.client.disconnect(wait=0), 3)
            except Exception:
                self.client.abort()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("focus task failed", exc_info=t.exception())
        task.add_done_callback(done)
        return task

    async def _on_session(self, _event: Any) -> None:
        await self.client.plugin["xep_0045"].join_muc_wait(JID(self.brewery), "focus", timeout=10,
                                                           maxstanzas=0)
        if not self._online.done():
            self._online.set_result(None)
        # after a reconnect: rejoin the rooms we were running; after a restart we remember
        # none, so the MUC's room list tells us where people are waiting for a focus
        for conf in list(self.conferences.values()):
            conf.in_room = self.spawn(self._join_room(conf))
        self.spawn(self._rejoin_active_rooms())

    async def _rejoin_active_rooms(self) -> None:
        try:
            items = await self.client.plugin["xep_0030"].get_items(jid=self.muc_domain, timeout=10)
        except (IqError, IqTimeout) as exc:
            log.info("cannot list the rooms of %s: %s", self.muc_domain, exc)
            return
        for jid, _node, _name in items["disco_items"]["items"]:
            room = str(JID(jid).bare)
            if room in self.conferences:
                continue
            conf = Conference(self, room)
            self.conferences[room] = conf
            conf.in_room = asyncio.ensure_future(self._join_room(conf))
            try:
                await asyncio.shield(conf.in_room)
                log.info("focus rejoined %s", room)
                self._leave_later(conf)
            except StanzaError as exc:
                log.info("could not rejoin %s: %s", room, exc)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(10)
            self.selector.expire_silent()
            idle = [who for who, b in self._request_buckets.items() if b.take(0) and b.tokens >= b.burst]
            for who in idle:  # full again: the same as a new one
                del self._request_buckets[who]

    # ---- the focus service (component side) ----------------------------------------------------
    def receive(self, stanza: Stanza) -> None:
        """Stanzas to focus.<domain>: the conference IQ, disco, ping."""
        if stanza.name == "iq" and stanza.type in ("result", "error"):
            self._service_answer(stanza)
            return
        if stanza.name != "iq" or stanza.type not in ("get", "set"):
            return
        payload = stanza.payload()
        tag = payload.tag if payload is not None else None
        if tag == "{%s}conference" % focus_iq.NS and stanza.type == "set":
            who = stanza.from_.bare if stanza.from_ is not None else ""
            bucket = self._request_buckets.get(who)
            if bucket is None:
                rate = self.conference_requests_per_minute
                bucket = self._request_buckets[who] = TokenBucket(rate / 60.0, min(rate, 10))
            if not bucket.take():
                log.info("conference requests from %s refused: over %d a minute", who,
                         self.conference_requests_per_minute)
                self._reply(make_error(stanza, StanzaError(
                    "resource-constraint", "Too many conference requests; wait a moment and try again",
                    type_="wait")))
                return
            self.spawn(self._conference_iq(stanza, payload))
        elif tag == ns.q(ns.DISCO_INFO, "query"):
            q = etree.Element(ns.q(ns.DISCO_INFO, "query"), nsmap={None: ns.DISCO_INFO})
            etree.SubElement(q, ns.q(ns.DISCO_INFO, "identity"), category="component",
                             type="focus", name="jitsi-py focus")
            for var in (focus_iq.NS, ns.PING, ns.DISCO_INFO):
                etree.SubElement(q, ns.q(ns.DISCO_INFO, "feature"), var=var)
            self._reply(make_result(stanza, q))
        elif tag == ns.q(ns.PING, "ping"):
            self._reply(make_result(stanza))
        else:
            self._reply(make_error(stanza, StanzaError("service-unavailable")))

    def _reply(self, el: etree._Element | None) -> None:
        if el is not None and self.component is not None:
            self.component.send(el)

    def _is_guest(self, jid: JID | str | None) -> bool:
        return bool(self.guest_domain) and jid is not None and JID(str(jid)).domain == self.guest_domain

    async def _conference_iq(self, stanza: Stanza, payload: etree._Element) -> None:
        try:
            req = focus_iq.parse_request(payload, self.muc_domain)
            await self._refuse_unsupported_client(stanza.from_, req)
            conf = self.conferences.get(req.room)
            if self._is_guest(stanza.from_) and (conf is None or req.room not in self._hosted):
                # Jicofo's answer to a guest for a room nobody may open: lib-jitsi-meet shows
                # "waiting for the host" and asks again; nothing is created for the guest
                raise StanzaError("not-authorized", focus_iq.WAITING_FOR_HOST, type_="auth")
            if conf is None:
                waiting = sum(1 for c in self.conferences.values() if not c.participants)
                if waiting >= self.max_waiting_rooms:
                    raise StanzaError("resource-constraint", "Too many rooms are waiting for their first "
                                      "participant; try again in a moment", type_="wait")
                conf = Conference(self, req.room)
                self.conferences[req.room] = conf
                conf.in_room = asyncio.ensure_future(self._join_room(conf))
                conf.in_room.add_done_callback(
                    lambda f, conf=conf: f.cancelled() or f.exception() or self._leave_later(conf))
            elif conf.in_room is None or (conf.in_room.done() and conf.room not in self._joined_rooms()):
                conf.in_room = asyncio.ensure_future(self._join_room(conf))
            # answer "ready" only once the focus is really in the room (not while its join is in
            # flight): a guest who got there first would create the room locked
            await asyncio.shield(conf.in_room)
        except StanzaError as exc:
            self._reply(make_error(stanza, exc))
            return
        except Exception:
            log.exception("conference IQ failed")
            self._reply(make_error(stanza, StanzaError("internal-server-error")))
            return
        self._reply(make_result(stanza, focus_iq.response_element(
            req.room, self.jid, properties={"authentication": "true" if self.authentication else "false"})))

    async def _refuse_unsupported_client(self, who: object | None, req: focus_iq.ConferenceRequest) -> None:
        """lib-jitsi-meet (its request carries `visitors-version`) is asked for its features
        before it joins: without SSRC rewriting it would only see black tiles, so it gets
        Jicofo's reservation error, which it reports as CONFERENCE_FAILED with our text. Our
        own clients send no such property and are never asked (they answer no disco)."""
        if who is None or "visitors-version" not in req.properties:
            return
        features = await self._service_features(str(who))
        if supports_neither_contract(features):
            log.info("conference request from %s refused: its client has no SSRC rewriting", who)
            raise StanzaError("service-unavailable", UNSUPPORTED_CLIENT, app_condition=etree.Element(
                "{%s}reservation-error" % focus_iq.NS, {"error-code": "400"}, nsmap={None: focus_iq.NS}))

    async def _service_features(self, who: str) -> frozenset[str]:
        """A client's disco#info, asked by focus.<domain>: a client's answer to the focus's own
        account would not get through (internal accounts take no stanzas from clients)."""
        iq = etree.Element("iq", type="get", id=secrets.token_hex(8), to=who, nsmap=None)
        iq.set("from", self.service)
        etree.SubElement(iq, ns.q(ns.DISCO_INFO, "query"), nsmap={None: ns.DISCO_INFO})
        answer: asyncio.Future = asyncio.get_running_loop().create_future()
        self._service_iqs[iq.get("id")] = (who, answer)
        try:
            self._reply(iq)
            result = await asyncio.wait_for(answer, FEATURES_TIMEOUT)
        except asyncio.TimeoutError:
            log.info("%s did not tell its features", who)
            return frozenset()
        finally:
            self._service_iqs.pop(iq.get("id"), None)
        return features_of(result.find(ns.q(ns.DISCO_INFO, "query")) if result.get("type") == "result" else None)

    def _service_answer(self, stanza: Stanza) -> None:
        """An answer to one of _service_features' questions, believed only from the one asked."""
        asked = self._service_iqs.get(stanza.id or "")
        if asked is None or stanza.from_ is None or stanza.from_.full != asked[0] or asked[1].done():
            return
        asked[1].set_result(stanza.el)

    def _joined_rooms(self) -> set[str]:
        return {str(r) for r in self.client.plugin["xep_0045"].get_joined_rooms()}

    async def _join_room(self, conf: Conference) -> None:
        try:
            await self.client.plugin["xep_0045"].join_muc_wait(JID(conf.room), "focus", timeout=10, maxstanzas=0)
        except Exception as exc:
            self.conferences.pop(conf.room, None)
            raise StanzaError("service-unavailable", f"The focus could not join {conf.room}: {exc}") from None
        log.info("focus joined %s", conf.room)

    # ---- rooms and bridges (client side) -------------------------------------------------------
    def _on_room_presence(self, pres: slixmpp.Presence) -> None:
        room = pres["from"].bare
        nick = pres["from"].resource
        if room == self.brewery:
            self._brewery_presence(pres, nick)
            return
        conf = self.conferences.get(room)
        if conf is None or nick == "focus" or not nick:
            return
        if pres["type"] == "unavailable":
            was_moderator = conf.roles.get(nick) == "moderator"
            conf.left(nick)
            if not conf.participants:
                self.spawn(self._maybe_end(conf))
            elif self.auto_owner and was_moderator and "moderator" not in conf.roles.values():
                # the meeting must not lose its last moderator (the lobby and its knockers would
                # wait forever): the one who has been there longest takes over
                heir = min(conf.participants.values(), key=lambda p: p.index)
                log.info("%s: %s left as the last moderator; %s takes over", room, nick, heir.nick)
                self.spawn(self._grant_owner(conf, str(JID(heir.real_jid).bare)))
        elif pres["type"] in ("available", "", None) or pres["type"] in pres.showtypes:
            real = pres["muc"]["jid"]
            stats_id = pres.xml.findtext(ns.q(ns.CLIENT, "stats-id")) or ""
            caps = pres.xml.find("{%s}c" % ns.CAPS)
            caps_node = f"{caps.get('node', '')}#{caps.get('ver', '')}" if caps is not None else ""
            new = nick not in conf.participants
            conf.joined(nick, str(real), stats_id, caps_node=caps_node[:512])
            conf.roles[nick] = pres["muc"]["role"] or "participant"
            if new and str(real) and not self._is_guest(str(real)):
                self._hosted.add(room)
            if (new and self.auto_owner
                    and not any(r == "moderator" for n, r in conf.roles.items() if n != nick)):
                self.spawn(self._grant_owner(conf, str(JID(str(real)).bare)))

    def _leave_later(self, conf: Conference) -> None:
        """A room we were asked for: leave it again if nobody comes (a request costs us a room)."""
        async def run() -> None:
            await asyncio.sleep(self.empty_room_timeout)
            await self._maybe_end(conf)
        self.spawn(run())

    async def _maybe_end(self, conf: Conference) -> None:
        """The last participant left: leave the room so it can go away."""
        await asyncio.sleep(0)
        if conf.participants or self.conferences.get(conf.room) is not conf:
            return
        self.conferences.pop(conf.room, None)
        self._hosted.discard(conf.room)
        self.client.plugin["xep_0045"].leave_muc(JID(conf.room), "focus")
        log.info("%s: conference over", conf.room)

    def _brewery_presence(self, pres: slixmpp.Presence, nick: str) -> None:
        if nick == "focus":
            return
        jid = str(pres["from"])
        if pres["type"] == "unavailable":
            self.selector.remove(jid, "left the brewery")
            return
        stats = pres.xml.find(ns.q(ns.COLIBRI, "stats"))
        values = {s.get("name", ""): s.get("value", "") for s in stats} if stats is not None else {}
        self.selector.update(jid, values)

    def _bridge_removed(self, bridge: Any) -> None:
        for conf in list(self.conferences.values()):
            if bridge.jid in conf.bridges:
                log.warning("%s: bridge %s is gone; moving its participants", conf.room, bridge.jid)
                self.spawn(conf.bridge_gone(bridge.jid))

    async def colibri(self, bridge_jid: str, req: colibri2.ConferenceModify) -> colibri2.ConferenceModified:
        iq = self.client.make_iq_set(ito=bridge_jid)
        iq.xml.append(to_et(colibri2.modify_element(req)))
        try:
            res = await iq.send(timeout=self.colibri_timeout)
        except IqTimeout:
            raise asyncio.TimeoutError() from None
        except IqError as exc:
            raise StanzaError(exc.condition or "undefined-condition", exc.text or None) from None
        el = res.xml.find("{%s}conference-modified" % colibri2.NS)
        if el is None:
            return colibri2.ConferenceModified(meeting_id=req.meeting_id)
        return colibri2.parse_modified(to_lxml(el))

    def _on_bridge_notice(self, iq: slixmpp.Iq) -> None:
        """A bridge tells us it expired a silent endpoint, or that a relay is down. Believed only
        from a bridge in the brewery (its occupant JID: only internal accounts get in there)
        that hosts the conference named; anyone else could cut participants off with it."""
        if iq["type"] != "set":
            return
        sender = str(iq["from"])
        try:
            req = colibri2.parse_modify(to_lxml(iq.xml.find("{%s}conference-modify" % colibri2.NS)))
        except StanzaError as exc:
            reply_error(iq, exc)
            return
        conf = next((c for c in self.conferences.values() if c.meeting_id == req.meeting_id), None)
        if conf is None or sender not in conf.bridges or sender not in self.selector.bridges:
            log.warning("bridge notice from %s refused: not a bridge of that conference", sender)
            reply_error(iq, StanzaError("forbidden", "Only a bridge of this conference may report on it"))
            return
        iq.reply(clear=True).send()
        for ep in req.endpoints:
            if ep.expire:
                conf.endpoint_expired(ep.id, sender)
        for relay in req.relays:  # the bridge's resource is its id (see bridge/__main__.py)
            if relay.expire:
                conf.relay_failed(iq["from"].resource, relay.id)

    async def _grant_owner(self, conf: Conference, bare: str) -> None:
        """Jicofo's auto-owner: the first participant runs the meeting (mute, lobby, password)."""
        try:
            await self.client.plugin["xep_0045"].set_affiliation(JID(conf.room), "owner", jid=JID(bare))
        except (IqError, IqTimeout) as exc:
            log.info("%s: could not make %s owner: %s", conf.room, bare, exc)

    def _on_mute(self, iq: slixmpp.Iq, kind: str) -> None:
        """A moderator asks to mute someone (Jitsi's mute IQ to room/focus): we pass it on."""
        if iq["type"] != "set":
            return
        room, nick = iq["from"].bare, iq["from"].resource
        conf = self.conferences.get(room)
        el = iq.xml.find("{%s}mute" % MUTE_NS[kind])
        target_jid = el.get("jid", "") if el is not None else ""
        try:
            if conf is None or nick not in conf.participants:
                raise StanzaError("not-acceptable", "Join the conference first")
            if conf.roles.get(nick) != "moderator":
                raise StanzaError("forbidden", "Only moderators may mute others")
            target = JID(target_jid).resource if target_jid else ""
            if JID(target_jid).bare != room or target not in conf.participants:
                raise StanzaError("item-not-found", "No such participant")
            if (el.text or "").strip() != "true":
                raise StanzaError("not-allowed", "Only the participant may unmute themselves")
        except (StanzaError, Exception) as exc:
            reply_error(iq, exc if isinstance(exc, StanzaError) else StanzaError("bad-request", "Bad mute request"))
            return
        iq.reply(clear=True).send()
        order = self.client.make_iq_set(ito=f"{room}/{target}")
        m = ET.SubElement(order.xml, "{%s}mute" % MUTE_NS[kind], actor=nick)
        m.text = "true"
        self.spawn(self._send_quietly(order))

    @staticmethod
    async def _send_quietly(iq: slixmpp.Iq) -> None:
        try:
            await iq.send(timeout=10)
        except (IqError, IqTimeout):
            pass

    async def client_features(self, occupant: str, node: str) -> frozenset[str]:
        """What a participant's client supports, asked of it through the room (disco#info with
        the node its caps name); nothing if it does not answer in time or answers an error. A
        guest decides its own answer: it only chooses the contract it is spoken to in."""
        iq = self.client.make_iq_get(ito=occupant)
        query = ET.SubElement(iq.xml, "{%s}query" % ns.DISCO_INFO)
        if node and node != "#":
            query.set("node", node)
        try:
            result = await iq.send(timeout=FEATURES_TIMEOUT)
        except (IqError, IqTimeout):
            log.info("%s did not tell its features", occupant)
            return frozenset()
        return features_of(result.xml.find(ns.q(ns.DISCO_INFO, "query")))

    # ---- Jingle --------------------------------------------------------------------------------
    async def send_jingle(self, to: str, ja: jingle.JingleAction, quiet: bool = False) -> None:
        iq = self.client.make_iq_set(ito=to)
        iq.xml.append(to_et(jingle.jingle_element(ja)))
        try:
            await iq.send(timeout=15)
        except IqError as exc:
            if not quiet:
                raise StanzaError(exc.condition or "undefined-condition", exc.text or None) from None
        except IqTimeout:
            if not quiet:
                raise StanzaError("remote-server-timeout", f"{to} did not answer {ja.action}") from None

    def _on_jingle(self, iq: slixmpp.Iq) -> None:
        if iq["type"] != "set":
            return
        room, nick = iq["from"].bare, iq["from"].resource
        conf = self.conferences.get(room)
        try:
            ja = jingle.parse_jingle(to_lxml(iq.xml.find("{%s}jingle" % jingle.NS)))
            if conf is None:
                raise jingle.unknown_session()
            conf.check_jingle(nick, ja)
        except StanzaError as exc:
            reply_error(iq, exc)
            return
        iq.reply(clear=True).send()
        self.spawn(conf.on_jingle(nick, ja))
