"""Streams over TCP: the shared asyncio protocol behind c2s (5222) and components (5347).

One protocol object per connection feeds the restricted parser and hands events to a session.
Limits that belong to the connection (connections per address, the outgoing buffer) are
enforced here, before anything reaches a session; the session decides how long reading pauses
for its byte and stanza rates (`charge_bytes`, `pause_reading`).
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Callable

from lxml import etree

from jitsi_base import ns
from .c2s_session import C2SSession, Transport
from jitsi_base.errors import StreamError
from .limits import ConnectionRefused
from xmpp_wire.xmlstream import STREAM_CLOSE, StreamParser, serialize, stream_header

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)


class StreamProtocol(asyncio.Protocol, Transport):
    """A generic XML stream connection; `session_factory` decides what speaks on it."""

    kind = "tcp"
    default_ns = ns.CLIENT

    def __init__(self, server: "Server", ssl_context: ssl.SSLContext | None,
                 session_factory: Callable[["StreamProtocol"], object],
                 preauth_limit: int, postauth_limit: int) -> None:
        self.server = server
        self.ssl_context = ssl_context
        self._factory = session_factory
        self._preauth_limit = preauth_limit
        self._postauth_limit = postauth_limit
        self._t: asyncio.Transport | None = None
        self.peer_ip = ""
        self.secure = False
        self.session = None
        self._parser: StreamParser | None = None
        self._header_sent = False
        self._closing = False
        self._paused = False
        self._resume_handle: asyncio.TimerHandle | None = None
        # Writes within one loop iteration go out as one send(): a MUC broadcast writes a
        # stanza to hundreds of streams, and a syscall per stanza was a third of its CPU.
        self._out: list[bytes] = []
        self._out_size = 0
        self._flush_handle: asyncio.Handle | None = None
        self._upgrading = False
        self._early: list[bytes] = []

    # ---- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._t = transport  # type: ignore[assignment]  (uvloop's transports are not asyncio.Transport subclasses)
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0] if peer else ""
        self.secure = transport.get_extra_info("sslcontext") is not None
        try:
            self.slot = self.server.connections.acquire(self.peer_ip)
        except ConnectionRefused as exc:
            log.warning("refusing connection from %s: %s", self.peer_ip, exc)
            self.close(StreamError("policy-violation", str(exc)))
            return
        self.server.track_connection(self)
        self._parser = StreamParser(self._preauth_limit, self.server.cfg.limits.max_depth)
        self.session = self._factory(self)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        if self._parser is None:
            if self._upgrading and sum(map(len, self._early)) < self._preauth_limit:
                # TLS 1.3 clients send their stream header right after their Finished, which can
                # reach us before start_tls() has returned: keep it for the new parser
                self._early.append(data)
            return
        if not self._unlimited():
            self.pause_reading(self.session.charge_bytes(len(data)))  # type: ignore[union-attr]
        try:
            for kind, el in self._parser.feed(data):
                if kind == "stanza":
                    self.session.on_element(el)  # type: ignore[union-attr]
                elif kind == "open":
                    self.session.on_open(dict(el.attrib))  # type: ignore[union-attr]
                else:
                    self.session.on_close()  # type: ignore[union-attr]
                if self._closing or self._parser is None:
                    break
        except StreamError as exc:
            log.info("stream error for %s: %s", self.peer_ip, exc)
            self.close(exc)
        except Exception:
            log.exception("internal error on stream from %s", self.peer_ip)
            self.close(StreamError("internal-server-error"))

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        if self.slot is not None and not self.slot.released:
            self.slot.release()
            self.server.untrack_connection(self)
        if self.session is not None:
            self.session.on_connection_lost()  # type: ignore[union-attr]

    # ---- Transport for sessions --------------------------------------------------------------
    def open_stream(self, stream_id: str, from_: str) -> None:
        self._header_sent = True
        self._write(stream_header(self.default_ns, stream_id, from_))

    def write(self, el: etree._Element) -> None:
        self._write(serialize(el))

    def _write(self, data: bytes) -> None:
        if self._t is None or self._t.is_closing():
            return
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size >= 65536:
            self._flush()  # big bursts go out at once; the kernel's buffer is the queue that counts
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        if self._t is not None and not self._t.is_closing():
            self._t.write(data)

    def restart(self) -> None:
        self._parser = StreamParser(self._postauth_limit, self.server.cfg.limits.max_depth)

    def authenticated(self) -> None:
        """Components keep their stream after the handshake; only the size limit grows."""
        if self._parser is not None:
            self._parser.max_stanza = self._postauth_limit
        if self.slot is not None:
            self.slot.authenticate()

    def can_starttls(self) -> bool:
        return self.ssl_context is not None and not self.secure

    def starttls(self) -> None:
        assert self._t is not None and self.ssl_context is not None
        self._flush()  # <proceed/> must leave in clear text before the handshake starts
        self._t.pause_reading()
        self._parser = None  # nothing more is XML until the handshake is done
        self._upgrading = True
        self.server.track_task(asyncio.ensure_future(self._upgrade()))

    async def _upgrade(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._t is not None
        try:
            new = await loop.start_tls(self._t, self, self.ssl_context, server_side=True,  # type: ignore[arg-type]
                                       ssl_handshake_timeout=30)
        except Exception as exc:
            log.info("TLS handshake with %s failed: %s", self.peer_ip, exc)
            if self._t is not None:
                self._t.abort()
            return
        if new is None:
            return
        self._t = new  # type: ignore[assignment]
        self.secure = True
        self._parser = StreamParser(self._preauth_limit, self.server.cfg.limits.max_depth)
        self._upgrading = False
        early, self._early = self._early, []
        for chunk in early:
            self.data_received(chunk)

    def queued_bytes(self) -> int:
        return self._t.get_write_buffer_size() if self._t is not None else 0

    def close(self, error: StreamError | None = None) -> None:
        if self._closing or self._t is None:
            return
        self._closing = True
        if error is not None:
            if not self._header_sent:
                self.open_stream("error", self.server.domain)
            self._write(serialize(error.to_element()))
        self._write(STREAM_CLOSE)
        if error is not None and error.condition == "policy-violation" and self.queued_bytes() > self.server.cfg.limits.outgoing_queue:
            self._out.clear()
            self._t.abort()  # a peer that stopped reading would never drain the buffer
        else:
            self._flush()
            self._t.close()

    # ---- throttling --------------------------------------------------------------------------
    def _unlimited(self) -> bool:
        """Components are configured by the operator; c2s sessions judge exemptions themselves."""
        return False

    def pause_reading(self, seconds: float) -> None:
        """Stop reading for `seconds`; a longer pause asked for while paused extends it (the
        stanzas of one read each add to the debt)."""
        if self._t is None or self._closing or seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        if self._resume_handle is not None:
            if until <= self._resume_handle.when():
                return
            self._resume_handle.cancel()
        if not self._paused:
            self._paused = True
            self._t.pause_reading()
        self._resume_handle = loop.call_at(until, self._resume)

    def _resume(self) -> None:
        self._resume_handle = None
        self._paused = False
        if self._t is not None and not self._closing:
            self._t.resume_reading()


def c2s_protocol_factory(server: "Server", ssl_context: ssl.SSLContext | None) -> Callable[[], StreamProtocol]:
    limits = server.cfg.limits

    def make() -> StreamProtocol:
        return StreamProtocol(server, ssl_context, lambda t: C2SSession(server, t),
                              limits.stanza_size_preauth, limits.stanza_size)
    return make
