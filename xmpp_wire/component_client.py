"""The other end of XEP-0114: our services attached to someone else's XMPP server.

An operator who already runs Prosody or an ejabberd cluster lets it carry the client connections
and runs our MUC (and later focus and bridges) as external components. Each component domain is
one connection (the protocol authenticates one domain per stream); stanzas arrive parsed and
normalized exactly as inside our own server, so a `DomainHandler` cannot tell the difference.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Callable

from lxml import etree

from jitsi_base import ns
from jitsi_base.errors import StanzaError, StreamError
from .stanza import DomainHandler, Stanza
from .xmlstream import StreamParser, serialize

log = logging.getLogger(__name__)


class ComponentConnection(asyncio.Protocol):
    def __init__(self, domain: str, secret: str, handler: DomainHandler,
                 max_stanza: int = 512 * 1024, max_depth: int = 64) -> None:
        self.domain = domain
        self.secret = secret
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self._parser = StreamParser(max_stanza, max_depth)
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.authenticated = False

    # ---- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._write(("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
                     f"xmlns:stream='{ns.STREAMS}' to='{self.domain}'>").encode())

    def data_received(self, data: bytes) -> None:
        try:
            for kind, el in self._parser.feed(data):
                if kind == "open":
                    assert el is not None
                    digest = hashlib.sha1((el.get("id", "") + self.secret).encode()).hexdigest()
                    self._write(f"<handshake>{digest}</handshake>".encode())
                elif kind == "close":
                    self._fail(ConnectionError("the server closed the stream"))
                else:
                    assert el is not None
                    self._element(el)
        except StreamError as exc:
            log.warning("component %s: bad data from the server: %s", self.domain, exc)
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(ConnectionError(f"connection lost: {exc}" if exc else "connection closed"))
        if not self.closed.done():
            self.closed.set_result(None)

    # ---- stanzas -------------------------------------------------------------------------------
    def _element(self, el: etree._Element) -> None:
        if el.tag == ns.q(ns.STREAMS, "error"):
            cond = next((etree.QName(c).localname for c in el if etree.QName(c).localname != "text"), "undefined")
            self._fail(ConnectionError(f"stream error from the server: {cond}"))
            return
        if not self.authenticated:
            if el.tag == "handshake":
                self.authenticated = True
                if not self.ready.done():
                    self.ready.set_result(None)
                log.info("component %s attached", self.domain)
            return
        try:
            stanza = Stanza.parse(el)
        except StanzaError as exc:
            log.info("component %s: dropping a stanza with a bad address: %s", self.domain, exc)
            return
        self.handler.receive(stanza)

    def send(self, el: etree._Element) -> None:
        self._write(serialize(el))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _fail(self, exc: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self._write(b"</stream:stream>")
            self.transport.close()


async def attach(host: str, port: int, domain: str, secret: str, handler: DomainHandler,
                 timeout: float = 10.0) -> ComponentConnection:
    """Connect and authenticate one component domain; raises ConnectionError if refused."""
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(
        loop.create_connection(lambda: ComponentConnection(domain, secret, handler), host, port), timeout)
    try:
        await asyncio.wait_for(asyncio.shield(conn.ready), timeout)
    except BaseException:
        conn.close()
        raise
    return conn


class ComponentGroup:
    """Several component domains of one service, with sends routed by their `from` domain."""

    def __init__(self) -> None:
        self.connections: dict[str, ComponentConnection] = {}

    def send(self, el: etree._Element) -> None:
        frm = el.get("from", "")
        domain = frm.split("/", 1)[0].rpartition("@")[2].lower()
        conn = self.connections.get(domain)
        if conn is None:
            log.warning("no component connection for %s; dropping a %s", domain, el.tag)
            return
        conn.send(el)

    async def attach(self, host: str, port: int, domain: str, secret: str, handler: DomainHandler) -> None:
        self.connections[domain] = await attach(host, port, domain, secret, handler)

    async def wait_closed(self) -> None:
        """Returns when any connection is lost (the caller decides whether to reconnect)."""
        await asyncio.wait([c.closed for c in self.connections.values()], return_when=asyncio.FIRST_COMPLETED)

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()


Send = Callable[[etree._Element], None]
