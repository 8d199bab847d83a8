"""The bridge: conferences, the COLIBRI2 requests that shape them, and the periodic work.

Signalling (XMPP, `xmpp_agent.py`) and HTTP (`http_api.py`, `channel.py`) are thin edges around
this class; it works on parsed COLIBRI2 objects only.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Callable

from .config import BridgeSection
from jitsi_protocols import colibri2
from jitsi_protocols.model import Source
from jitsi_base import ns
from jitsi_base.errors import StanzaError

from . import rtp
from .conference import Conference
from .endpoint import Endpoint
from .relay import Relay

log = logging.getLogger(__name__)

VERSION = "0.1.0"
REMB_BPS = 2_500_000  # what we let each sender ramp up to (senders without transport-cc; harmless for others)
TCC_FEEDBACK_INTERVAL = 0.1  # s between transport-cc feedback packets to each sender
PACKET_RATE_CAPACITY = 130_000.0  # forwarded packets/s one core sustains (bench/bridge_forward.py, N=20)


class Bridge:
    def __init__(self, cfg: BridgeSection, websocket_base: str = "", stun: str = "") -> None:
        """`stun`: the STUN server asked for the public address when [bridge] public_address
        and stun are empty (the all-in-one stack passes its [turn] host)."""
        self.cfg = cfg
        self.stun_server = cfg.stun or stun
        # what participants are told besides media_address: the configured one or STUN's answer
        self.public_address = cfg.public_address
        self.id = cfg.id
        self.websocket_base = websocket_base.rstrip("/")
        self.conferences: dict[str, Conference] = {}
        self.feedback_ssrc = random.getrandbits(31) | 1
        self.feedback_ssrc_video = random.getrandbits(31) | 2
        self._taken_ssrcs: set[int] = {self.feedback_ssrc, self.feedback_ssrc_video}
        self._certificate: Any = None
        self._tasks: list[asyncio.Task] = []
        self.on_endpoint_expired: Callable[[Conference, Endpoint], None] | None = None
        self.on_relay_failed: Callable[[Conference, Relay], None] | None = None
        self.started = time.time()
        self.draining = False
        self.healthy = True
        self._rate_window: tuple[float, int] = (time.monotonic(), 0)
        self.packet_rate = 0.0
        self._ports: Any = None  # transport.PortRange, made on first use

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if not self.cfg.public_address and self.stun_server:
            await self.learn_public_address()
        self._tasks = [asyncio.ensure_future(self._ticker()), asyncio.ensure_future(self._rtcp_loop()),
                       asyncio.ensure_future(self._expiry_loop()), asyncio.ensure_future(self._tcc_loop())]

    async def learn_public_address(self) -> None:
        """Ask the STUN server where our media address is seen from (behind NAT, that is the
        address participants must send to); nothing changes when it does not answer."""
        from .config import parse_server
        from .stun import mapped_address
        server = parse_server(self.stun_server)
        mapped = await mapped_address(server, self.cfg.media_address)
        if mapped is None:
            log.warning("bridge %s: no public address from STUN %s; participants get only %s",
                        self.id, self.stun_server, self.cfg.media_address)
        elif mapped == self.cfg.media_address:
            log.info("bridge %s: STUN %s sees %s as it is (no NAT)", self.id, self.stun_server, mapped)
        else:
            self.public_address = mapped
            log.info("bridge %s: public address %s (by STUN from %s), advertised besides %s",
                     self.id, mapped, self.stun_server, self.cfg.media_address)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for conf in list(self.conferences.values()):
            await self.expire_conference(conf)

    def certificate(self) -> Any:
        if self._certificate is None:
            from .transport import shared_certificate
            self._certificate = shared_certificate()
        return self._certificate

    # ---- COLIBRI2 ----------------------------------------------------------------------------
    async def handle(self, req: colibri2.ConferenceModify, requester: str = "") -> colibri2.ConferenceModified:
        conf = self.conferences.get(req.meeting_id)
        if conf is None:
            if not req.create:
                raise StanzaError("item-not-found", f"No conference {req.meeting_id!r} on this bridge")
            if self.draining:
                raise StanzaError("service-unavailable", "This bridge is draining")
            if len(self.conferences) >= self.cfg.max_conferences:
                raise StanzaError("resource-constraint", f"This bridge holds {self.cfg.max_conferences} "
                                  "conferences already (bridge.max_conferences)")
            conf = Conference(self, req.meeting_id, req.name, requester)
            self.conferences[req.meeting_id] = conf
            log.info("conference %s (%s) created for %s", req.meeting_id, req.name, requester)
        res = colibri2.ConferenceModified(meeting_id=conf.meeting_id, name=conf.name)
        # validate every endpoint before changing anything
        new = sum(1 for e in req.endpoints if e.create)
        if new and len(conf.endpoints) + new > self.cfg.max_endpoints_per_conference:
            raise StanzaError("resource-constraint", f"A conference holds at most "
                              f"{self.cfg.max_endpoints_per_conference} endpoints on this bridge "
                              "(bridge.max_endpoints_per_conference)")
        for ep_req in req.endpoints:
            if not ep_req.create and ep_req.id not in conf.endpoints:
                raise StanzaError("item-not-found", f"No endpoint {ep_req.id!r} in this conference")
            if ep_req.create and ep_req.id in conf.endpoints:
                raise StanzaError("conflict", f"Endpoint {ep_req.id!r} exists already")
            self._check_sources(conf, ep_req)
        for r_req in req.relays:
            self._check_relay(conf, r_req)
        changed = False
        for ep_req in req.endpoints:
            if ep_req.expire:
                ep = conf.endpoints.get(ep_req.id)
                if ep is not None:
                    await self._expire_endpoint(conf, ep)
                res.endpoints.append(colibri2.Endpoint(id=ep_req.id, expire=True))
                changed = True
                continue
            if ep_req.create:
                ep = await self._create_endpoint(conf, ep_req)
                res.endpoints.append(self._describe(conf, ep))
                res.feedback_sources = [Source(self.feedback_ssrc, "audio", "jvb", "jvb-a0"),
                                        Source(self.feedback_ssrc_video, "video", "jvb", "jvb-v0")]
            else:
                ep = conf.endpoints[ep_req.id]
                res.endpoints.append(colibri2.Endpoint(id=ep.id))
            if ep_req.media:
                ep.set_media(ep_req.media)
            if ep_req.sources_given:
                ep.set_sources(ep_req.sources, ep_req.groups)
                changed = True
            if ep_req.transport is not None and ep.transport is not None:
                self._connect(conf, ep, ep_req.transport)
        for r_req in req.relays:
            res.relays.append(await self._relay(conf, r_req))
            changed = True
        if changed:
            conf.reassign()
        if req.expire:
            await self.expire_conference(conf)
        return res

    def _check_sources(self, conf: Conference, ep_req: colibri2.Endpoint) -> None:
        if not ep_req.sources_given:
            return
        mine = {s.ssrc for s in ep_req.sources}
        if len(mine) != len(ep_req.sources):
            raise StanzaError("bad-request", "The same SSRC is listed twice")
        if mine & self._taken_ssrcs:
            raise StanzaError("conflict", "SSRC already used by this bridge")
        for other in conf.endpoints.values():
            if other.id != ep_req.id and mine & set(other.sources):
                raise StanzaError("conflict", f"SSRC already used by endpoint {other.id}")
        for g in ep_req.groups:
            if not set(g.ssrcs) <= mine:
                raise StanzaError("bad-request", f"ssrc-group {g.semantics} names SSRCs that are not sources")

    # ---- relays (cascading, relay.py) -----------------------------------------------------------
    def _check_relay(self, conf: Conference, r_req: colibri2.Relay) -> None:
        relay = conf.relays.get(r_req.id)
        if r_req.create and relay is not None:
            raise StanzaError("conflict", f"Relay {r_req.id!r} exists already")
        if not r_req.create and relay is None:
            raise StanzaError("item-not-found", f"No relay {r_req.id!r} in this conference")
        for ep_req in r_req.endpoints:
            ep = conf.endpoints.get(ep_req.id)
            if ep is not None and (ep.relay is None or ep.relay.id != r_req.id):
                raise StanzaError("conflict", f"Endpoint {ep_req.id!r} is not behind relay {r_req.id!r}")
            self._check_sources(conf, ep_req)

    async def _relay(self, conf: Conference, r_req: colibri2.Relay) -> colibri2.Relay:
        """Create, update or expire one relay and the endpoints behind it."""
        relay = conf.relays.get(r_req.id)
        if r_req.expire:
            if relay is not None:
                await self._expire_relay(conf, relay)
            return colibri2.Relay(id=r_req.id, expire=True)
        if relay is None:
            relay = await self._create_relay(conf, r_req)
            answer = colibri2.Relay(id=relay.id, transport=relay.transport.local_description())
        else:
            answer = colibri2.Relay(id=relay.id)
        for ep_req in r_req.endpoints:
            ep = conf.endpoints.get(ep_req.id)
            if ep_req.expire:
                if ep is not None:
                    relay.endpoints.discard(ep.id)
                    conf.remove(ep)
                continue
            if ep is None:  # endpoints behind a relay are created by their first mention
                ep = Endpoint(conf, ep_req.id, ep_req.stats_id)
                ep.relay = relay
                relay.endpoints.add(ep.id)
                conf.add(ep)
            if ep_req.media:
                ep.set_media(ep_req.media)
            if ep_req.sources_given:
                ep.set_sources(ep_req.sources, ep_req.groups)
        if r_req.transport is not None:
            self._connect_relay(conf, relay, r_req.transport)
        return answer

    async def _create_relay(self, conf: Conference, r_req: colibri2.Relay) -> Relay:
        from .transport import EndpointTransport
        relay = Relay(conf, r_req.id, None)
        # the controlling side is the DTLS client, so the two never both wait as servers
        relay.transport = EndpointTransport(
            self.cfg.media_address, on_rtp=lambda data: conf.on_relay_rtp(relay, data),
            on_rtcp=lambda data: conf.on_relay_rtcp(relay, data), certificate=self.certificate(),
            ice_controlling=r_req.ice_controlling, setup="active" if r_req.ice_controlling else "passive",
            **self._transport_options())
        from .channel import relay_channel  # channel.py imports this module
        from .transport import SCTP_PORT
        relay.transport.enable_sctp(lambda channel: relay_channel(relay, channel), SCTP_PORT)
        await relay.transport.gather()
        conf.add_relay(relay)
        log.info("relay %s of %s created (%s)", relay.id, conf.meeting_id,
                 "controlling" if r_req.ice_controlling else "controlled")
        return relay

    def _connect_relay(self, conf: Conference, relay: Relay, remote: Any) -> None:
        if relay.transport.state != "new":
            return

        async def run() -> None:
            try:
                await relay.transport.start(remote)
            except Exception as exc:
                log.warning("relay %s of %s failed to connect: %s", relay.id, conf.meeting_id, exc)
                return
            if not relay.expired:
                log.info("relay %s of %s connected", relay.id, conf.meeting_id)
                conf.relay_connected(relay)
                if relay.transport.setup == "active" and relay.transport.sctp is not None:
                    from aiortc.rtcdatachannel import RTCDataChannel, RTCDataChannelParameters

                    from .channel import relay_channel
                    relay_channel(relay, RTCDataChannel(relay.transport.sctp, RTCDataChannelParameters(
                        label="relay", protocol=ns.COLIBRI_CHANNEL)))
        asyncio.ensure_future(run())

    async def _expire_relay(self, conf: Conference, relay: Relay) -> None:
        conf.remove_relay(relay)
        if relay.transport is not None:
            await relay.transport.stop()
        log.info("relay %s of %s expired", relay.id, conf.meeting_id)

    def _transport_options(self) -> dict[str, Any]:
        """Media ports from [bridge] port_min..port_max (shared by all our transports), and the
        public address to advertise behind NAT."""
        if self._ports is None and self.cfg.port_min:
            from .transport import PortRange
            self._ports = PortRange(self.cfg.port_min, self.cfg.port_max)
        return {"ports": self._ports, "public_address": self.public_address}

    async def _create_endpoint(self, conf: Conference, ep_req: colibri2.Endpoint) -> Endpoint:
        ep = Endpoint(conf, ep_req.id, ep_req.stats_id)
        ep.ssrc_rewriting = colibri2.SSRC_REWRITING in ep_req.capabilities
        ep.make_slots(self.cfg.audio_slots, self.cfg.last_n, self._taken_ssrcs)
        from .transport import EndpointTransport
        ep.transport = EndpointTransport(self.cfg.media_address,
                                         on_rtp=lambda data, ep=ep: conf.on_rtp(ep, data),
                                         on_rtcp=lambda data, ep=ep: conf.on_rtcp(ep, data),
                                         certificate=self.certificate(), **self._transport_options())
        if ep_req.sctp:
            from .channel import data_channel  # channel.py imports this module
            from .transport import SCTP_PORT
            ep.sctp_port = SCTP_PORT
            ep.transport.enable_sctp(lambda channel, ep=ep: data_channel(ep, channel), SCTP_PORT)
        await ep.transport.gather()
        conf.add(ep)
        return ep

    def _describe(self, conf: Conference, ep: Endpoint) -> colibri2.Endpoint:
        assert ep.transport is not None
        t = ep.transport.local_description()
        if self.websocket_base:
            t.websocket_url = (f"{self.websocket_base}/colibri-ws/{self.id}/{conf.meeting_id}/{ep.id}"
                               f"?pwd={ep.ws_password}")
        if ep.sctp_port is not None:
            t.sctp_port = ep.sctp_port
        return colibri2.Endpoint(id=ep.id, transport=t, sources=ep.slot_sources(), sctp=ep.sctp_port is not None)

    def _connect(self, conf: Conference, ep: Endpoint, remote: Any) -> None:
        assert ep.transport is not None
        if ep.transport.state != "new":
            # a later update (trickled candidates, transport-info): only new candidates count
            async def trickle() -> None:
                for c in remote.candidates:
                    try:
                        await ep.transport.add_remote_candidate(c)  # type: ignore[union-attr]
                    except Exception as exc:
                        log.info("endpoint %s: candidate refused: %s", ep.id, exc)
            asyncio.ensure_future(trickle())
            return

        async def run() -> None:
            try:
                assert ep.transport is not None
                await ep.transport.start(remote)
                log.info("endpoint %s of %s connected", ep.id, conf.meeting_id)
                conf.connected(ep)
            except Exception as exc:
                log.warning("endpoint %s of %s failed to connect: %s", ep.id, conf.meeting_id, exc)
                if ep.expired or conf.endpoints.get(ep.id) is not ep:
                    return
                # tell the focus, which gives the participant a fresh session
                await self._expire_endpoint(conf, ep)
                if self.on_endpoint_expired is not None:
                    self.on_endpoint_expired(conf, ep)
        asyncio.ensure_future(run())

    async def _expire_endpoint(self, conf: Conference, ep: Endpoint) -> None:
        conf.remove(ep)
        ep.close_channel()
        if ep.transport is not None:
            await ep.transport.stop()
        log.info("endpoint %s of %s expired", ep.id, conf.meeting_id)

    async def expire_conference(self, conf: Conference) -> None:
        for relay in list(conf.relays.values()):
            await self._expire_relay(conf, relay)
        for ep in list(conf.endpoints.values()):
            await self._expire_endpoint(conf, ep)
        self.conferences.pop(conf.meeting_id, None)
        log.info("conference %s expired", conf.meeting_id)

    def endpoint(self, meeting_id: str, endpoint_id: str) -> Endpoint | None:
        conf = self.conferences.get(meeting_id)
        return conf.endpoints.get(endpoint_id) if conf is not None else None

    # ---- periodic work -----------------------------------------------------------------------
    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(0.3)
            for conf in list(self.conferences.values()):
                try:
                    conf.tick()
                except Exception:
                    log.exception("conference %s tick failed", conf.meeting_id)

    async def _rtcp_loop(self) -> None:
        """Receiver reports and REMB to every sender once a second, so senders ramp up."""
        while True:
            await asyncio.sleep(1.0)
            total = 0
            for conf in list(self.conferences.values()):
                total += conf.packets_forwarded
                for ep in list(conf.endpoints.values()):
                    t = ep.transport
                    if t is None or t.state != "connected":
                        continue
                    t.refresh_pair()
                    if not ep.stream_stats:
                        continue
                    try:
                        blocks = [st.report(ssrc) for ssrc, st in ep.stream_stats.items() if st.started]
                        if blocks:
                            t.send_rtcp(rtp.build_receiver_report(self.feedback_ssrc, blocks[:31]))
                        video = [ssrc for ssrc, s in ep.forwarded.items() if s.kind == "video"]
                        if video:
                            t.send_rtcp(rtp.build_remb(self.feedback_ssrc_video, REMB_BPS, video))
                    except Exception:
                        log.exception("RTCP to %s failed", ep.id)
                for relay in list(conf.relays.values()):
                    if relay.connected:
                        relay.transport.refresh_pair()
                        relay.send_wanted(conf.wanted_from(relay), force=True)  # in case one was lost
                    elif relay.transport.state in ("failed", "closed") and not relay.failure_reported:
                        # never connected, or lost (consent expired, DTLS closed): the focus
                        # replaces it
                        relay.failure_reported = True
                        log.warning("relay %s of %s is %s", relay.id, conf.meeting_id, relay.transport.state)
                        if self.on_relay_failed is not None:
                            self.on_relay_failed(conf, relay)
            now = time.monotonic()
            then, before = self._rate_window
            self.packet_rate = max(0.0, (total - before) / max(now - then, 1e-3))
            self._rate_window = (now, total)

    async def _tcc_loop(self) -> None:
        """Transport-cc feedback to every sender that numbers its packets: a browser whose offer
        has transport-cc sets its sending rate from this feedback (not from our REMB)."""
        while True:
            await asyncio.sleep(TCC_FEEDBACK_INTERVAL)
            for conf in list(self.conferences.values()):
                for ep in list(conf.endpoints.values()):
                    self.send_tcc_feedback(ep)

    def send_tcc_feedback(self, ep: Endpoint) -> int:
        """Report the packets `ep` sent us since the last report; the number of RTCP packets sent."""
        t = ep.transport
        if ep.arrivals is None or t is None or t.state != "connected":
            return 0
        media = next(iter(ep.forwarded), 0)  # the feedback is transport-wide; any SSRC of its
        try:
            packets = ep.arrivals.feedback(self.feedback_ssrc_video, media)
            for p in packets:
                t.send_rtcp(p)
        except Exception:
            log.exception("transport-cc feedback to %s failed", ep.id)
            return 0
        return len(packets)

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.cfg.endpoint_timeout / 3))
            self.expire_silent()

    def expire_silent(self, now: float | None = None) -> list[Endpoint]:
        now = time.monotonic() if now is None else now
        gone: list[Endpoint] = []
        for conf in list(self.conferences.values()):
            for ep in list(conf.endpoints.values()):
                if ep.relay is not None:
                    continue  # lives on another bridge, which expires it
                last = getattr(ep.transport, "last_received", 0.0) or ep.created
                if now - max(last, ep.created) > self.cfg.endpoint_timeout:
                    gone.append(ep)
                    asyncio.ensure_future(self._expire_endpoint(conf, ep))
                    if self.on_endpoint_expired is not None:
                        self.on_endpoint_expired(conf, ep)
            # a conference none of whose own participants is left (its focus is gone, or moved
            # on to a new meeting after a restart) goes too, with its relays
            if conf.local_endpoints() - sum(1 for ep in gone if ep.conference is conf) > 0:
                conf.empty_since = None
            elif conf.empty_since is None:
                conf.empty_since = now
            elif now - conf.empty_since > self.cfg.endpoint_timeout:
                log.info("conference %s has had no participant for %.0f s", conf.meeting_id, now - conf.empty_since)
                self.conferences.pop(conf.meeting_id, None)
                asyncio.ensure_future(self.expire_conference(conf))
        return gone

    # ---- load ----------------------------------------------------------------------------------
    def stress(self) -> float:
        return min(1.0, self.packet_rate / PACKET_RATE_CAPACITY)

    def stats(self) -> dict[str, Any]:
        endpoints = sum(c.local_endpoints() for c in self.conferences.values())
        relays = [r for c in self.conferences.values() for r in c.relays.values()]
        return {
            "id": self.id, "version": VERSION, "uptime": round(time.time() - self.started, 1),
            "conferences": len(self.conferences), "endpoints": endpoints,
            "packet_rate": round(self.packet_rate, 1), "stress_level": round(self.stress(), 4),
            "healthy": self.healthy, "drain": self.draining,
            "packets_forwarded": sum(c.packets_forwarded for c in self.conferences.values()),
            "silence_dropped": sum(c.silence_dropped for c in self.conferences.values()),
            "unknown_dropped": sum(c.unknown_dropped for c in self.conferences.values()),
            "padding_dropped": sum(c.padding_dropped for c in self.conferences.values()),
            "undecryptable": sum(ep.transport.stats["undecryptable"] for c in self.conferences.values()
                                 for ep in c.endpoints.values() if ep.transport is not None),
            "relays": len(relays), "relayed_endpoints": sum(len(r.endpoints) for r in relays),
            "relay_packets_in": sum(r.transport.stats["packets_in"] for r in relays if r.transport is not None),
            "relay_packets_out": sum(r.transport.stats["packets_out"] for r in relays if r.transport is not None),
        }

    def presence_stats(self) -> dict[str, str]:
        s = self.stats()
        return {"stress_level": str(s["stress_level"]), "healthy": "true" if self.healthy else "false",
                "drain": "true" if self.draining else "false", "conferences": str(s["conferences"]),
                "participants": str(s["endpoints"]), "version": VERSION, "packet_rate": str(s["packet_rate"])}
