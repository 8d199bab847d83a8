"""XEP-0114 external components: another process serves a whole domain through us.

This is how the focus, a bridge or our own MUC can run elsewhere. A component authenticates with
sha1(stream id + shared secret), then owns its domain: everything addressed there is written to
its stream, and it may send only from that domain (or a subdomain of it).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from typing import TYPE_CHECKING, Callable

from lxml import etree

from jitsi_base import ns
from jitsi_base.errors import StanzaError, StreamError
from xmpp_wire.stanza import STANZA_NAMES, Stanza, make_error
from .tcp_stream import StreamProtocol

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)


class ComponentSession:
    kind = "component"

    def __init__(self, server: "Server", transport: StreamProtocol) -> None:
        self.server = server
        self.transport = transport
        self.stream_id = secrets.token_hex(8)
        self.domain: str | None = None
        self.authenticated = False
        self.closed = False
        self._auth_timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            server.cfg.limits.auth_timeout, self._auth_timeout)

    # events from the transport
    def on_open(self, attrs: dict[str, str]) -> None:
        domain = (attrs.get("to") or "").lower()
        self.transport.open_stream(self.stream_id, domain or self.server.domain)
        if self.server.component_secret(domain) is None:
            raise StreamError("host-unknown", f"No component is configured for {domain!r}")
        self.domain = domain

    def on_element(self, el: etree._Element) -> None:
        if not self.authenticated:
            if el.tag != "handshake":
                raise StreamError("not-authorized", "Send the handshake first")
            self._handshake((el.text or "").strip().lower())
            return
        if el.tag not in STANZA_NAMES:
            raise StreamError("unsupported-stanza-type")
        assert self.domain is not None
        try:
            stanza = Stanza.parse(el)
        except StanzaError as exc:
            reply = make_error(el, exc)
            if reply is not None:
                self.transport.write(reply)
            return
        frm = stanza.from_
        if frm is None or not (frm.domain == self.domain or frm.domain.endswith("." + self.domain)):
            raise StreamError("invalid-from", f"Components may only send from {self.domain}")
        if stanza.to is None:
            reply = make_error(el, StanzaError("jid-malformed", "Stanzas from components need a 'to'"))
            if reply is not None:
                self.transport.write(reply)
            return
        self.server.router.route(stanza, None)

    def on_close(self) -> None:
        self.transport.close(None)

    def on_connection_lost(self) -> None:
        self.closed = True
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        if self.authenticated and self.domain:
            self.server.router.unregister_domain(self.domain, self)
            log.info("component %s disconnected", self.domain)

    def _handshake(self, digest: str) -> None:
        assert self.domain is not None
        secret = self.server.component_secret(self.domain) or ""
        expected = hashlib.sha1((self.stream_id + secret).encode()).hexdigest()
        if not hmac.compare_digest(expected.encode(), digest.encode()):
            raise StreamError("not-authorized", "Given token does not match calculated token")
        if self.domain in self.server.router.domains:
            raise StreamError("conflict", f"{self.domain} is already connected")
        self.authenticated = True
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        self.transport.authenticated()
        self.server.router.register_domain(self.domain, self)
        self.transport.write(etree.Element("handshake"))
        log.info("component %s connected from %s", self.domain, self.transport.peer_ip)

    def _auth_timeout(self) -> None:
        self._auth_timer = None
        if not self.authenticated and not self.closed:
            self.transport.close(StreamError("connection-timeout", "The handshake took too long"))

    # the router's side
    def receive(self, stanza: Stanza) -> None:
        if self.closed:
            raise StanzaError("service-unavailable")
        self.transport.write(stanza.el)
        if self.transport.queued_bytes() > self.server.cfg.limits.outgoing_queue * 4:
            self.transport.close(StreamError("policy-violation", "Too much data queued: you stopped reading"))


class ComponentProtocol(StreamProtocol):
    default_ns = ns.COMPONENT

    def _unlimited(self) -> bool:
        return True


def component_protocol_factory(server: "Server") -> Callable[[], StreamProtocol]:
    limits = server.cfg.limits

    def make() -> StreamProtocol:
        return ComponentProtocol(server, None, lambda t: ComponentSession(server, t),
                                 limits.stanza_size_preauth, limits.component_stanza_size)
    return make


__all__ = ["ComponentSession", "component_protocol_factory"]
