"""XEP-0215 external service discovery: the STUN/TURN server and credentials for it.

A participant whose network drops UDP (or blocks the bridge's ports) reaches the bridge only
through a TURN relay, and a TURN server open to anyone is an open relay for anyone's traffic.
coturn's REST-API scheme lets us hand out credentials without sharing a user list with coturn:
the username is `expiry:user` and the password base64(HMAC-SHA1(shared secret, username)), so
coturn checks them with nothing but the secret and the clock, and a leaked credential dies at
its expiry. Only signed-in clients (guests included: they are the people in the meetings) get
them: the request must come from a bound c2s session, never from a component or another server.

`<services/>` (optionally `type='turn'` etc.) lists every service with credentials;
`<credentials><service type= host= [port=]/></credentials>` refreshes those of one service.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass

from lxml import etree

from jitsi_base import ns
from jitsi_base.errors import StanzaError
from xmpp_wire.stanza import Stanza

from ..config import TurnSection
from ..plugin import Plugin

log = logging.getLogger(__name__)

# the longest user part we put in a TURN username; STUN usernames must stay under 513 bytes
_MAX_USER = 200


def turn_credentials(secret: str, user: str, lifetime: int, now: float | None = None) -> tuple[str, str, int]:
    """(username, password, expiry as Unix time) in coturn's REST-API (use-auth-secret) scheme."""
    expiry = int(now if now is not None else time.time()) + int(lifetime)
    if len(user.encode()) > _MAX_USER or ":" in user:
        user = hashlib.sha256(user.encode()).hexdigest()[:32]
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii"), expiry


@dataclass(frozen=True)
class Service:
    type: str  # stun, turn, turns
    transport: str  # udp, tcp
    host: str
    port: int

    @property
    def restricted(self) -> bool:
        return self.type != "stun"


def services(turn: TurnSection) -> list[Service]:
    """What `turn` offers, in the order clients should try them: UDP is cheapest, TLS passes most."""
    if not turn.host:
        return []
    out = [Service("stun", "udp", turn.host, turn.port),
           Service("turn", "udp", turn.host, turn.port),
           Service("turn", "tcp", turn.host, turn.port)]
    if turn.turns:
        out.append(Service("turns", "tcp", turn.host, turn.tls_port))
    return out


class ExtDiscoPlugin(Plugin):
    name = "extdisco"

    async def start(self) -> None:
        self.turn: TurnSection = self.server.cfg.turn
        self.server.register_iq(ns.q(ns.EXTDISCO, "services"), self.on_services, scopes=("host",))
        self.server.register_iq(ns.q(ns.EXTDISCO, "credentials"), self.on_credentials, scopes=("host",))
        self.server.disco_features.add(ns.EXTDISCO)

    def _client(self, stanza: Stanza) -> str:
        """The requesting account's bare JID, if it is a signed-in client; else forbidden."""
        if stanza.type != "get":
            raise StanzaError("bad-request", "External services are read with an IQ get")
        sender = stanza.from_
        if sender is None or not sender.resource or self.server.router.session(sender) is None:
            raise StanzaError("forbidden", "Only signed-in clients get TURN credentials")
        return sender.bare

    def _element(self, tag: str, offered: list[Service], user: str) -> etree._Element:
        out = etree.Element(ns.q(ns.EXTDISCO, tag), nsmap={None: ns.EXTDISCO})
        creds = None
        for svc in offered:
            el = etree.SubElement(out, ns.q(ns.EXTDISCO, "service"), type=svc.type, transport=svc.transport,
                                  host=svc.host, port=str(svc.port))
            if svc.restricted:
                if creds is None:  # one credential for every TURN entry: same server, same secret
                    creds = turn_credentials(self.turn.secret, user, self.turn.credential_lifetime)
                username, password, expiry = creds
                el.set("username", username)
                el.set("password", password)
                el.set("expires", datetime.datetime.fromtimestamp(expiry, datetime.timezone.utc)
                       .strftime("%Y-%m-%dT%H:%M:%SZ"))
                el.set("restricted", "1")
        return out

    def on_services(self, stanza: Stanza) -> etree._Element:
        user = self._client(stanza)
        query = stanza.payload()
        assert query is not None
        wanted = query.get("type")
        offered = [s for s in services(self.turn) if wanted is None or s.type == wanted]
        log.debug("external services for %s: %d", user, len(offered))
        return self._element("services", offered, user)

    def on_credentials(self, stanza: Stanza) -> etree._Element:
        user = self._client(stanza)
        query = stanza.payload()
        assert query is not None
        asked = query.find(ns.q(ns.EXTDISCO, "service"))
        if asked is None or not asked.get("host") or not asked.get("type"):
            raise StanzaError("bad-request", "Name the service: <service type='turn' host='...'/>")
        port = asked.get("port")
        offered = [s for s in services(self.turn) if s.restricted and s.type == asked.get("type")
                   and s.host.lower() == asked.get("host", "").lower() and (port is None or str(s.port) == port)]
        if not offered:
            raise StanzaError("item-not-found", "This server offers no such service")
        return self._element("credentials", offered, user)
