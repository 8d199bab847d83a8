"""XMPP over WebSocket (RFC 7395) at /xmpp-websocket, the browser client's first choice.

Each text frame is one complete document (`<open/>`, `<close/>` or one stanza), parsed under the
same restrictions as a TCP stream. The session logic is the same `C2SSession` as on TCP; only
the framing differs.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web
from lxml import etree

from jitsi_base import ns
from .c2s_session import C2SSession, Transport
from jitsi_base.errors import StreamError
from .limits import ConnectionRefused
from xmpp_wire.stanza import normalize
from xmpp_wire.xmlstream import parse_document, serialize

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)

OPEN = ns.q(ns.FRAMING, "open")
CLOSE = ns.q(ns.FRAMING, "close")
_CLIENT_XMLNS = b' xmlns="%s"' % ns.CLIENT.encode()


def serialize_standalone(el: etree._Element) -> bytes:
    """A stanza that carries its own `jabber:client` namespace, for framings without a stream root."""
    data = serialize(el)
    tag = el.tag
    if isinstance(tag, str) and tag[0] != "{":
        n = len(tag) + 1
        return data[:n] + _CLIENT_XMLNS + data[n:]
    return data


class WebSocketTransport(Transport):
    kind = "websocket"

    def __init__(self, server: "Server", ws: web.WebSocketResponse, peer_ip: str, secure: bool,
                 raw: asyncio.BaseTransport | None = None) -> None:
        self.server = server
        self.ws = ws
        self._raw = raw
        self.peer_ip = peer_ip
        self.secure = secure
        self._queue: deque[str] = deque()
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._resume_at = 0.0  # loop time before which the next frame is not read (rate limits)
        self._closed = asyncio.Event()
        self.session = C2SSession(server, self)

    # Transport
    def open_stream(self, stream_id: str, from_: str) -> None:
        el = etree.Element(OPEN, nsmap={None: ns.FRAMING}, id=stream_id, version="1.0")
        el.set("from", from_)
        el.set(ns.q(ns.XML, "lang"), "en")
        self._enqueue(serialize(el))

    def write(self, el: etree._Element) -> None:
        self._enqueue(serialize_standalone(el))

    def _enqueue(self, data: bytes) -> None:
        if self._closing:
            return
        text = data.decode()
        self._queue.append(text)
        self._queued += len(text)
        self._wakeup.set()

    def queued_bytes(self) -> int:
        return self._queued

    def pause_reading(self, seconds: float) -> None:
        if seconds > 0:
            self._resume_at = max(self._resume_at, asyncio.get_running_loop().time() + seconds)

    async def throttle(self) -> None:
        """Wait out a rate limit before the next frame is read (or until the stream closes).

        Frames already in aiohttp's buffer stay there; once it is full, TCP itself pushes back
        on the client."""
        delay = self._resume_at - asyncio.get_running_loop().time()
        if delay > 0 and not self._closing:
            try:
                await asyncio.wait_for(self._closed.wait(), delay)
            except asyncio.TimeoutError:
                pass

    def close(self, error: StreamError | None = None) -> None:
        if self._closing:
            return
        self._closed.set()
        if self._queued > self.server.cfg.limits.outgoing_queue:
            # a peer that stopped reading never drains what is queued: drop it now
            self._queue.clear()
            self._queued = 0
            self._closing = True
            if self._raw is not None:
                self._raw.abort()
            self._wakeup.set()
            return
        if error is not None:
            self._enqueue(serialize(error.to_element()))
        self._enqueue(serialize(etree.Element(CLOSE, nsmap={None: ns.FRAMING})))
        self._closing = True
        self._wakeup.set()

    # the connection's two loops
    async def writer(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                if self._queued > self.server.cfg.limits.outgoing_queue and not self._closing:
                    log.warning("closing WebSocket of %s: it stopped reading", self.session.jid)
                    self._queue.clear()
                    self._queued = 0
                    await self.ws.close(code=1008, message=b"too much data queued")
                    return
                text = self._queue.popleft()
                self._queued -= len(text)
                await self.ws.send_str(text)
            if self._closing:
                await self.ws.close()
                return

    def on_frame(self, data: bytes) -> None:
        self.pause_reading(self.session.charge_bytes(len(data)))
        limits = self.server.cfg.limits
        limit = limits.stanza_size if self.session.auth else limits.stanza_size_preauth
        root = parse_document(data, limit, limits.max_depth)
        if root.tag == OPEN:
            self.session.on_open(dict(root.attrib))
        elif root.tag == CLOSE:
            self.close(None)
        else:
            self.session.on_element(normalize(root))


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    from .http import XMPP_SERVER
    from .origin import ORIGIN_POLICY
    server = request.app[XMPP_SERVER]
    origins = request.app[ORIGIN_POLICY]
    if not origins.permits(request):
        return origins.refuse(request, "XMPP WebSocket")
    ws = web.WebSocketResponse(protocols=("xmpp",), max_msg_size=server.cfg.limits.stanza_size,
                               heartbeat=55.0)
    if not ws.can_prepare(request).ok:
        if request.method in ("GET", "HEAD") and "Upgrade" not in request.headers:
            # lib-jitsi-meet's keep-alive: a plain fetch of its WebSocket URL, which must succeed
            return web.Response(status=200, text="This is an XMPP WebSocket endpoint (RFC 7395)\n")
        return web.Response(status=400, text="This is an XMPP WebSocket endpoint (RFC 7395)\n")
    peer_ip = request.remote or ""
    try:
        slot = server.connections.acquire(peer_ip)
    except ConnectionRefused as exc:
        log.warning("refusing WebSocket from %s: %s", peer_ip, exc)
        return web.Response(status=429 if exc.per_address else 503, text=f"{exc}\n",
                            headers={"Retry-After": "10"})
    await ws.prepare(request)
    if ws.ws_protocol != "xmpp":
        slot.release()
        await ws.close(code=1002, message=b"the xmpp subprotocol is required")
        return ws
    transport = WebSocketTransport(server, ws, peer_ip, request.secure, request.transport)
    transport.url_token = request.query.get("token") or None  # Jitsi's way: ?token= on the URL
    transport.slot = slot
    server.track_connection(transport)
    writer = asyncio.ensure_future(transport.writer())
    try:
        async for msg in ws:
            if transport._closing:
                break
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                if msg.type == WSMsgType.ERROR:
                    transport.close(StreamError("policy-violation", "WebSocket error"))
                break
            data = msg.data.encode() if isinstance(msg.data, str) else msg.data
            try:
                transport.on_frame(data)
            except StreamError as exc:
                transport.close(exc)
            except Exception:
                log.exception("internal error on WebSocket from %s", peer_ip)
                transport.close(StreamError("internal-server-error"))
            await transport.throttle()
    finally:
        transport._closing = True
        transport._wakeup.set()
        try:
            await asyncio.wait_for(writer, 2)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError):
            writer.cancel()
        if not ws.closed:
            await ws.close()
        slot.release()
        server.untrack_connection(transport)
        transport.session.on_connection_lost()
    return ws
