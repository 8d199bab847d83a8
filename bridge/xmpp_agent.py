"""The bridge's XMPP side: an ordinary client in the brewery room, serving COLIBRI2 there.

Jitsi's layout: the bridge joins `jvbbrewery@internal.auth.<domain>` with its load in presence;
the focus finds it there and sends COLIBRI2 to its occupant JID, which the MUC relays. Nothing
else is shared between focus and bridge, so either can restart or run elsewhere.

Who may steer the bridge: COLIBRI2 is taken only from a focus account named in
`[bridge] focus_jids`, either straight from its full JID or through the brewery, where the
room shows every occupant's real JID (only `auth.<domain>` accounts get in). Anyone else gets
`forbidden` before the request is even parsed.
"""
from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath

from jitsi_protocols import colibri2
from jitsi_protocols.slix import configure_tls, reply_error, to_et, to_lxml
from jitsi_base import ns
from jitsi_base.errors import StanzaError

from .bridge import Bridge
from .conference import Conference
from .endpoint import Endpoint
from .relay import Relay

log = logging.getLogger(__name__)

PRESENCE_INTERVAL = 5.0


class BridgeAgent:
    def __init__(self, bridge: Bridge, jid: str, password: str, brewery: str,
                 host: str, port: int, cafile: str | None = None, starttls: bool = True,
                 focus_jids: list[str] | None = None) -> None:
        self.bridge = bridge
        self.brewery = brewery
        domain = slixmpp.JID(jid).domain  # auth.<domain>
        self.focus_jids = {j.lower() for j in (focus_jids or bridge.cfg.focus_jids or [f"focus@{domain}"])}
        self._brewery_real: dict[str, str] = {}  # occupant nick -> bare real JID, from presence
        self.host, self.port = host, port
        self.client = slixmpp.ClientXMPP(jid, password)
        c = self.client
        configure_tls(c, cafile, starttls)  # no TLS only on loopback: see the callers
        c.register_plugin("xep_0030")
        c.register_plugin("xep_0045")
        c.register_plugin("xep_0199")
        c.add_event_handler("session_start", self._on_session)
        c.add_event_handler("disconnected", self._on_disconnected)
        c.add_event_handler("groupchat_presence", self._on_brewery_presence)
        c.register_handler(CoroutineCallback(
            "colibri2", MatchXPath("%s/%s" % (ns.q(ns.CLIENT, "iq"), ns.q(colibri2.NS, "conference-modify"))), self._on_colibri))
        c.register_handler(CoroutineCallback(
            "healthcheck", MatchXPath("%s/%s" % (ns.q(ns.CLIENT, "iq"), ns.q(ns.JITSI_HEALTHCHECK, "healthcheck"))), self._on_health))
        bridge.on_endpoint_expired = self._endpoint_expired
        bridge.on_relay_failed = self._relay_failed
        self.joined = asyncio.get_event_loop().create_future()
        self._presence_task: asyncio.Task | None = None
        self._stopping = False

    async def start(self, timeout: float = 15.0) -> None:
        self.client.connect(self.host, self.port)
        await asyncio.wait_for(asyncio.shield(self.joined), timeout)

    async def stop(self) -> None:
        self._stopping = True
        if self._presence_task is not None:
            self._presence_task.cancel()
        if self.client.transport is not None:
            try:
                await asyncio.wait_for(self.client.disconnect(wait=0), 3)
            except Exception:
                self.client.abort()

    # ---- presence in the brewery ---------------------------------------------------------------
    def _stats_presence(self) -> slixmpp.Presence:
        pres = self.client.make_presence(pto=f"{self.brewery}/{self.bridge.id}")
        stats = ET.SubElement(pres.xml, ns.q(ns.COLIBRI, "stats"))
        for name, value in self.bridge.presence_stats().items():
            ET.SubElement(stats, ns.q(ns.COLIBRI, "stat"), name=name, value=value)
        return pres

    async def _on_session(self, _event: object) -> None:
        pres = self._stats_presence()
        ET.SubElement(pres.xml, ns.q(ns.MUC, "x"))
        room = slixmpp.JID(self.brewery)
        muc = self.client.plugin["xep_0045"]
        muc.rooms[None][room] = {}
        muc.our_nicks[None][room] = self.bridge.id
        done = asyncio.get_running_loop().create_future()

        def self_presence(p: slixmpp.Presence) -> None:
            if not done.done():
                done.set_result(p)
        handler = f"muc::{room}::self-presence"
        self.client.add_event_handler(handler, self_presence)
        pres.send()
        try:
            await asyncio.wait_for(done, 10)
        finally:
            self.client.del_event_handler(handler, self_presence)
        log.info("bridge %s joined %s", self.bridge.id, self.brewery)
        if not self.joined.done():
            self.joined.set_result(None)
        self._presence_task = asyncio.ensure_future(self._presence_loop())

    async def _presence_loop(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_INTERVAL)
            self._stats_presence().send()

    def _on_disconnected(self, _event: object) -> None:
        if self._presence_task is not None:
            self._presence_task.cancel()
        if not self._stopping:
            log.warning("bridge %s lost its XMPP connection; reconnecting", self.bridge.id)
            asyncio.get_event_loop().call_later(2.0, lambda: self.client.connect(self.host, self.port))

    def _on_brewery_presence(self, pres: slixmpp.Presence) -> None:
        if pres["from"].bare != self.brewery:
            return
        nick = pres["from"].resource
        if pres["type"] == "unavailable":
            self._brewery_real.pop(nick, None)
        else:
            real = pres["muc"]["jid"]
            self._brewery_real[nick] = real.bare.lower() if real else ""

    def trusted(self, sender: slixmpp.JID) -> bool:
        """A focus we were configured to obey, seen directly or as its brewery occupant."""
        if sender.bare.lower() in self.focus_jids:
            return True
        if sender.bare == self.brewery:
            return self._brewery_real.get(sender.resource, "") in self.focus_jids
        return False

    # ---- COLIBRI2 ----------------------------------------------------------------------------
    async def _on_colibri(self, iq: slixmpp.Iq) -> None:
        if iq["type"] in ("result", "error"):
            return
        if not self.trusted(iq["from"]):
            log.warning("COLIBRI2 from %s refused: not a configured focus", iq["from"])
            self._error(iq, StanzaError("forbidden", "Only the focus may change this bridge's conferences"))
            return
        if iq["type"] != "set":
            if iq["type"] == "get":
                self._error(iq, StanzaError("bad-request", "conference-modify is an IQ set"))
            return
        try:
            req = colibri2.parse_modify(to_lxml(iq.xml.find("{%s}conference-modify" % colibri2.NS)))
            res = await self.bridge.handle(req, requester=str(iq["from"]))
        except StanzaError as exc:
            self._error(iq, exc)
            return
        except Exception:
            log.exception("COLIBRI2 request failed")
            self._error(iq, StanzaError("internal-server-error"))
            return
        reply = iq.reply(clear=True)
        reply.xml.append(to_et(colibri2.modified_element(res)))
        reply.send()

    async def _on_health(self, iq: slixmpp.Iq) -> None:
        if iq["type"] != "get":
            return
        if not self.trusted(iq["from"]):
            self._error(iq, StanzaError("forbidden", "Health checks are for the focus"))
            return
        if self.bridge.healthy:
            iq.reply(clear=True).send()
        else:
            self._error(iq, StanzaError("internal-server-error", "The bridge is not healthy"))

    @staticmethod
    def _error(iq: slixmpp.Iq, exc: StanzaError) -> None:
        reply_error(iq, exc)

    def _relay_failed(self, conf: Conference, relay: Relay) -> None:
        """Tell the focus a relay to another bridge is down, so it links the two again."""
        self._notify(conf, colibri2.ConferenceModify(meeting_id=conf.meeting_id, relays=[
            colibri2.Relay(id=relay.id, expire=True)]))

    def _endpoint_expired(self, conf: Conference, ep: Endpoint) -> None:
        """Tell the focus an endpoint went silent."""
        self._notify(conf, colibri2.ConferenceModify(meeting_id=conf.meeting_id, name=conf.name,
                                                     endpoints=[colibri2.Endpoint(id=ep.id, expire=True)]))

    def _notify(self, conf: Conference, req: colibri2.ConferenceModify) -> None:
        """A conference-modify to the focus that created the conference (an IQ set it answers
        like any other)."""
        if not conf.focus:
            return
        iq = self.client.make_iq_set(ito=conf.focus)
        iq.xml.append(to_et(colibri2.modify_element(req)))
        iq.send(callback=lambda _r: None)
