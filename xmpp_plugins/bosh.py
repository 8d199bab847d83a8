"""XMPP over BOSH (XEP-0124 / XEP-0206) at /http-bind: the fallback where WebSockets fail.

A BOSH session is a C2SSession whose transport is a series of HTTP requests. The server holds
up to `hold` requests open (each at most `wait` seconds) and answers the oldest one as soon as
there is something to send. Requests are processed strictly in `rid` order; a retransmitted
rid gets the same answer again. A session with no request for `inactivity` seconds ends, just
as a TCP session ends when its socket closes. A client over its byte or stanza rate has its next
request that carries stanzas wait before it is processed; empty polls are never held back, so
what the server has for the client is not delayed.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict, deque
from typing import TYPE_CHECKING

from aiohttp import web
from lxml import etree

from jitsi_base import ns
from .c2s_session import C2SSession, Transport
from jitsi_base.errors import StreamError
from .limits import ConnectionRefused, ConnectionSlot
from .origin import ORIGIN_POLICY
from xmpp_wire.stanza import normalize
from .websocket import serialize_standalone
from xmpp_wire.xmlstream import parse_document, serialize

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)

BODY = ns.q(ns.BOSH, "body")
RESTART = ns.q(ns.XBOSH, "restart")
VERSION = ns.q(ns.XBOSH, "version")
RID_WINDOW = 5
# CORS for the pages the origin policy allows (xmpp_plugins/origin.py): their Origin is echoed,
# so a page from anywhere else cannot read our answers.
CORS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}


def body_bytes(attrs: dict[str, str], payload: list[bytes], extra_ns: bool = False) -> bytes:
    el = etree.Element(BODY, nsmap={None: ns.BOSH, "xmpp": ns.XBOSH, "stream": ns.STREAMS} if extra_ns
                       else {None: ns.BOSH})
    for key, value in attrs.items():
        el.set(key, value)
    head = serialize(el)
    if not payload:
        return head
    # the body's closing tag is replaced to splice already-serialised stanzas in without a re-parse
    assert head.endswith(b"/>")
    return head[:-2] + b">" + b"".join(payload) + b"</body>"


def http_error(status: int, condition: str, text: str = "") -> web.Response:
    data = body_bytes({"type": "terminate", "condition": condition}, [])
    return web.Response(status=status, body=data, content_type="text/xml", reason=text or None)


class BoshSession(Transport):
    kind = "bosh"

    def __init__(self, manager: "BoshManager", sid: str, peer_ip: str, secure: bool,
                 wait: float, hold: int, rid: int) -> None:
        self.manager = manager
        self.server = manager.server
        self.sid = sid
        self.peer_ip = peer_ip
        self.secure = secure
        self.wait = wait
        self.hold = hold
        self.next_rid = rid + 1
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.held: deque[asyncio.Future[None]] = deque()
        self.responses: OrderedDict[int, bytes] = OrderedDict()
        self.rid_ready = asyncio.Condition()
        self.terminated: StreamError | None | bool = False
        self.inactivity_timer: asyncio.TimerHandle | None = None
        self._resume_at = 0.0  # loop time before which no request with stanzas is processed
        self.slot: ConnectionSlot | None = None
        self.session = C2SSession(self.server, self)

    # Transport
    def open_stream(self, stream_id: str, from_: str) -> None:
        pass  # the session creation response carries the stream attributes

    def write(self, el: etree._Element) -> None:
        if self.terminated is not False:
            return
        data = serialize_standalone(el)
        self.pending.append(data)
        self.pending_bytes += len(data)
        self._release_one()

    def queued_bytes(self) -> int:
        return self.pending_bytes

    def pause_reading(self, seconds: float) -> None:
        if seconds > 0:
            self._resume_at = max(self._resume_at, asyncio.get_running_loop().time() + seconds)

    async def throttle(self, size: int, body: etree._Element) -> None:
        """Charge a request's bytes; one carrying stanzas waits out any rate debt first."""
        self.pause_reading(self.session.charge_bytes(size))
        if len(body) == 0 and body.get(RESTART) != "true":
            return
        delay = self._resume_at - asyncio.get_running_loop().time()
        if delay > 0 and self.terminated is False:
            await asyncio.sleep(delay)

    def close(self, error: StreamError | None = None) -> None:
        if self.terminated is not False:
            return
        self.terminated = error if error is not None else True
        if self.pending_bytes > self.server.cfg.limits.outgoing_queue:
            self.pending.clear()
            self.pending_bytes = 0
        while self.held:
            fut = self.held.popleft()
            if not fut.done():
                fut.set_result(None)
        if not self.held:
            self.manager.end(self)

    def _release_one(self) -> None:
        # answer the oldest held request on the next loop turn, so stanzas written together go together
        if self.held:
            fut = self.held[0]
            if not fut.done():
                asyncio.get_running_loop().call_soon(_set_done, fut)

    # requests
    def touch(self) -> None:
        if self.inactivity_timer is not None:
            self.inactivity_timer.cancel()
            self.inactivity_timer = None

    def idle(self) -> None:
        if not self.held and self.terminated is False:
            self.inactivity_timer = asyncio.get_running_loop().call_later(
                self.server.cfg.bosh.max_inactivity, self._inactive)

    def _inactive(self) -> None:
        self.inactivity_timer = None
        if not self.held:
            log.info("BOSH session %s timed out", self.sid)
            self.close(StreamError("connection-timeout"))
            self.manager.end(self)

    def terminate_body(self) -> bytes:
        attrs = {"type": "terminate"}
        payload = self.take_pending()
        if isinstance(self.terminated, StreamError):
            attrs["condition"] = "remote-stream-error"
            payload.append(serialize(self.terminated.to_element()))
            return body_bytes(attrs, payload, extra_ns=True)
        return body_bytes(attrs, payload)

    def take_pending(self) -> list[bytes]:
        out = self.pending
        self.pending = []
        self.pending_bytes = 0
        return out

    async def handle(self, rid: int, body: etree._Element) -> bytes:
        self.touch()
        try:
            if rid < self.next_rid:
                cached = self.responses.get(rid)
                if cached is None:
                    raise LookupError
                return cached
            if rid > self.next_rid + RID_WINDOW:
                raise LookupError
            async with self.rid_ready:
                try:
                    await asyncio.wait_for(self.rid_ready.wait_for(lambda: self.next_rid >= rid), self.wait)
                except asyncio.TimeoutError:
                    raise LookupError from None
                if rid < self.next_rid:  # a duplicate that raced us
                    cached = self.responses.get(rid)
                    if cached is None:
                        raise LookupError
                    return cached
                self.next_rid = rid + 1
                self._process(body)
                self.rid_ready.notify_all()
            data = await self._respond(body)
            self.responses[rid] = data
            while len(self.responses) > self.hold + 2:
                self.responses.popitem(last=False)
            return data
        finally:
            self.idle()

    def _process(self, body: etree._Element) -> None:
        try:
            if body.get(RESTART) == "true":
                self.session.on_open({"to": body.get("to") or self.session.host or "", "version": "1.0"})
            for child in list(body):
                body.remove(child)  # detached, it no longer inherits the body's namespace
                if isinstance(child.tag, str):
                    child.tail = None
                    self.session.on_element(normalize(child))
            if body.get("type") == "terminate":
                self.close(None)
        except StreamError as exc:
            self.close(exc)

    async def _respond(self, body: etree._Element) -> bytes:
        if self.terminated is not False:
            return self.terminate_body()
        if not self.pending:
            while len(self.held) >= self.hold:
                old = self.held.popleft()
                if not old.done():
                    old.set_result(None)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.held.append(fut)
            try:
                await asyncio.wait_for(asyncio.shield(fut), self.wait)
            except asyncio.TimeoutError:
                pass
            finally:
                try:
                    self.held.remove(fut)
                except ValueError:
                    pass
            if self.terminated is not False:
                data = self.terminate_body()
                self.manager.end(self)
                return data
        return body_bytes({}, self.take_pending())


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class BoshManager:
    def __init__(self, server: "Server") -> None:
        self.server = server
        self.sessions: dict[str, BoshSession] = {}

    def end(self, sess: BoshSession) -> None:
        if self.sessions.get(sess.sid) is sess:
            del self.sessions[sess.sid]
            sess.touch()
            if sess.slot is not None:
                sess.slot.release()
            self.server.untrack_connection(sess)
            sess.session.on_connection_lost()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        origins = request.app[ORIGIN_POLICY]
        if not origins.permits(request):
            return origins.refuse(request, "BOSH request")
        response = await self._handle(request)
        origin = request.headers.get("Origin")
        response.headers["Vary"] = "Origin"
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers.update(CORS)
        return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return web.Response()
        if request.method == "GET":
            return web.Response(text="This is an XMPP BOSH endpoint (XEP-0124/XEP-0206). POST to it.\n")
        limits = self.server.cfg.limits
        if (request.content_length or 0) > limits.stanza_size:
            return http_error(413, "policy-violation", "Request too large")
        chunks: list[bytes] = []
        size = 0
        try:
            while size <= limits.stanza_size:
                chunk = await request.content.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except Exception:
            return http_error(400, "bad-request", "Unreadable request")
        data = b"".join(chunks)
        if len(data) > limits.stanza_size:
            return http_error(413, "policy-violation", "Request too large")
        try:
            body = parse_document(data, limits.stanza_size, limits.max_depth)
        except StreamError as exc:
            return http_error(400, "bad-request", exc.condition)
        if body.tag != BODY:
            return http_error(400, "bad-request", "Expected a BOSH <body/>")
        try:
            rid = int(body.get("rid", ""))
            if rid < 0 or rid > 2**53:
                raise ValueError
        except ValueError:
            return http_error(400, "bad-request", "Missing or invalid rid")
        sid = body.get("sid")
        if not sid:
            return await self._create(request, body, rid)
        sess = self.sessions.get(sid)
        if sess is None:
            return http_error(404, "item-not-found", "Unknown session")
        if sess.session.auth is None and len(data) > limits.stanza_size_preauth:
            sess.close(StreamError("policy-violation", "XML stanza is too big"))
            return self._reply(sess.terminate_body())
        try:
            await sess.throttle(len(data), body)
            if sess.terminated is not False and self.sessions.get(sid) is not sess:
                return self._reply(sess.terminate_body())  # ended while the request waited
            out = await sess.handle(rid, body)
        except LookupError:
            sess.close(StreamError("policy-violation", "Bad rid"))
            self.end(sess)
            return http_error(404, "item-not-found", "Invalid rid")
        return self._reply(out)

    @staticmethod
    def _reply(data: bytes) -> web.Response:
        return web.Response(body=data, content_type="text/xml", charset="utf-8")

    async def _create(self, request: web.Request, body: etree._Element, rid: int) -> web.StreamResponse:
        server = self.server
        to = (body.get("to") or "").lower()
        if to not in server.hosts:
            return self._reply(body_bytes({"type": "terminate", "condition": "host-unknown"}, []))
        peer_ip = request.remote or ""
        cfg = server.cfg.bosh
        try:
            wait = max(1.0, min(float(body.get("wait", cfg.max_wait)), cfg.max_wait))
            hold = max(1, min(int(body.get("hold", "1")), cfg.max_requests - 1))
        except ValueError:
            return http_error(400, "bad-request", "Bad wait or hold")
        try:
            slot = server.connections.acquire(peer_ip)
        except ConnectionRefused as exc:
            log.warning("refusing BOSH session from %s: %s", peer_ip, exc)
            response = http_error(429 if exc.per_address else 503, "policy-violation", str(exc))
            response.headers["Retry-After"] = "10"
            return response
        sid = secrets.token_hex(16)
        sess = BoshSession(self, sid, peer_ip, request.secure, wait, hold, rid)
        sess.slot = slot
        sess.url_token = request.query.get("token") or None  # Jitsi's way: ?token= on the URL
        self.sessions[sid] = sess
        server.track_connection(sess)
        try:
            sess.session.on_open({"to": to, "version": body.get(VERSION, "1.0") or "1.0"})
        except StreamError as exc:
            sess.close(exc)
            self.end(sess)
            return self._reply(sess.terminate_body())
        attrs = {
            "sid": sid, "wait": str(int(wait)), "requests": str(cfg.max_requests), "hold": str(hold),
            "inactivity": str(int(cfg.max_inactivity)), "polling": "2", "ver": "1.11", "from": to,
            "authid": sess.session.stream_id, "maxpause": str(int(cfg.max_inactivity)),
            VERSION: "1.0", ns.q(ns.XBOSH, "restartlogic"): "true",
        }
        data = body_bytes(attrs, sess.take_pending(), extra_ns=True)
        sess.responses[rid] = data
        sess.idle()
        return self._reply(data)


def setup(app: web.Application, server: "Server") -> BoshManager:
    manager = BoshManager(server)
    app.router.add_route("*", "/http-bind", manager.handle)
    app.router.add_route("*", "/http-bind/", manager.handle)
    return manager
