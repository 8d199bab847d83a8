"""Minimal XMPP clients over WebSocket (RFC 7395) and BOSH (XEP-0206), written for the tests.

slixmpp speaks neither, and the browser client is tested separately; these are independent,
deliberately plain implementations that follow the RFC framings byte for byte, so the tests see
exactly what a browser would send.
"""
from __future__ import annotations

import asyncio
import base64
from typing import Mapping, Optional

import aiohttp
from lxml import etree

from jitsi_base.ns import BIND, BOSH, FRAMING, SASL, STREAMS, XBOSH, q
from jitsi_base.ns import CLIENT as JC


class WebSocketClient:
    def __init__(self, url: str, domain: str = "localhost", origin: Optional[str] = None) -> None:
        self.url = url
        self.domain = domain
        self.origin = origin  # sent as a browser would (None: none, as a non-browser client)
        self.session: Optional[aiohttp.ClientSession] = None
        self.ws: Optional[aiohttp.ClientWebSocketResponse] = None
        self.jid: Optional[str] = None

    async def connect(self) -> None:
        self.session = aiohttp.ClientSession()
        try:
            self.ws = await self.session.ws_connect(self.url, protocols=("xmpp",), origin=self.origin)
        except BaseException:
            await self.session.close()
            raise
        assert self.ws.protocol == "xmpp", "server must echo the xmpp subprotocol"

    async def send_raw(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(text)

    async def recv(self, timeout: float = 5.0) -> etree._Element:
        assert self.ws is not None
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"WebSocket closed: {msg.type} {msg.data!r} {msg.extra!r}")
        return etree.fromstring(msg.data.encode())

    async def open(self) -> etree._Element:
        await self.send_raw(f'<open xmlns="{FRAMING}" to="{self.domain}" version="1.0"/>')
        opened = await self.recv()
        assert opened.tag == q(FRAMING, "open"), etree.tostring(opened)
        return await self.recv()  # stream features

    async def login_anonymous(self, resource: str = "") -> str:
        features = await self.open()
        mechs = [m.text for m in features.iter(q(SASL, "mechanism"))]
        assert "ANONYMOUS" in mechs, mechs
        await self.send_raw(f'<auth xmlns="{SASL}" mechanism="ANONYMOUS"/>')
        success = await self.recv()
        assert success.tag == q(SASL, "success"), etree.tostring(success)
        features = await self.open()
        assert features.find(q(BIND, "bind")) is not None
        res = f"<resource>{resource}</resource>" if resource else ""
        await self.send_raw(f'<iq xmlns="{JC}" type="set" id="bind1"><bind xmlns="{BIND}">{res}</bind></iq>')
        bound = await self.recv()
        self.jid = bound.findtext(f"{{{BIND}}}bind/{{{BIND}}}jid")
        assert self.jid, etree.tostring(bound)
        return self.jid

    async def recv_stanza(self, tag: str, timeout: float = 5.0) -> etree._Element:
        """The next stanza with this local name, skipping others."""
        while True:
            el = await self.recv(timeout)
            if el.tag == q(JC, tag):
                return el

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            try:
                await self.send_raw(f'<close xmlns="{FRAMING}"/>')
            except ConnectionError:
                pass
            await self.ws.close()
        if self.session is not None:
            await self.session.close()


class BoshClient:
    def __init__(self, url: str, domain: str = "localhost", wait: int = 5, origin: Optional[str] = None) -> None:
        self.url = url
        self.domain = domain
        self.wait = wait
        self.origin = origin
        self.last_headers: Optional[Mapping[str, str]] = None  # of the latest response
        self.rid = 1000
        self.sid: Optional[str] = None
        self.http: Optional[aiohttp.ClientSession] = None
        self.jid: Optional[str] = None
        self.inbox: asyncio.Queue[etree._Element] = asyncio.Queue()
        self._poller: Optional[asyncio.Task] = None
        self.terminated: Optional[etree._Element] = None

    async def post(self, inner: str = "", **attrs: str) -> etree._Element:
        assert self.http is not None
        self.rid += 1
        a = {"rid": str(self.rid), "xmlns": BOSH}
        if self.sid:
            a["sid"] = self.sid
        a.update(attrs)
        attr_text = " ".join(f'{k}="{v}"' for k, v in a.items())
        data = f"<body {attr_text} xmlns:xmpp='{XBOSH}'>{inner}</body>"
        headers = {"Content-Type": "text/xml"}
        if self.origin is not None:
            headers["Origin"] = self.origin
        async with self.http.post(self.url, data=data.encode(), headers=headers) as resp:
            self.last_headers = resp.headers
            raw = await resp.read()
            body = etree.fromstring(raw)
            body.set("_status", str(resp.status))
            return body

    async def connect(self) -> etree._Element:
        self.http = aiohttp.ClientSession()
        body = await self.post(to=self.domain, wait=str(self.wait), hold="1", ver="1.6",
                               **{"xmpp:version": "1.0", "xml:lang": "en"})
        self.sid = body.get("sid")
        assert self.sid, etree.tostring(body)
        return body

    async def login_anonymous(self) -> str:
        body = await self.connect()
        features = body.find(q(STREAMS, "features"))
        if features is None:  # features may come in the next response
            body = await self.post()
            features = body.find(q(STREAMS, "features"))
        mechs = [m.text for m in features.iter(q(SASL, "mechanism"))]
        assert "ANONYMOUS" in mechs, mechs
        body = await self.post(f'<auth xmlns="{SASL}" mechanism="ANONYMOUS"/>')
        if body.find(q(SASL, "success")) is None:
            body = await self.post()
        assert body.find(q(SASL, "success")) is not None, etree.tostring(body)
        body = await self.post(**{"xmpp:restart": "true", "to": self.domain})
        assert body.find(f".//{q(BIND, 'bind')}") is not None, etree.tostring(body)
        body = await self.post(f'<iq xmlns="{JC}" type="set" id="b1"><bind xmlns="{BIND}"/></iq>')
        self.jid = body.findtext(f".//{q(BIND, 'jid')}")
        assert self.jid, etree.tostring(body)
        self._poller = asyncio.ensure_future(self._poll())
        return self.jid

    async def _poll(self) -> None:
        while True:
            body = await self.post()
            for child in body:
                await self.inbox.put(child)
            if body.get("type") == "terminate":
                self.terminated = body
                return

    async def send(self, stanza: str) -> None:
        body = await self.post(stanza)
        for child in body:
            await self.inbox.put(child)

    async def recv_stanza(self, tag: str, timeout: float = 5.0) -> etree._Element:
        while True:
            el = await asyncio.wait_for(self.inbox.get(), timeout)
            if el.tag == q(JC, tag):
                return el

    async def close(self, terminate: bool = True) -> None:
        if self._poller is not None:
            self._poller.cancel()
        if terminate and self.sid and self.http is not None:
            try:
                await self.post(type="terminate")
            except Exception:
                pass
        if self.http is not None:
            await self.http.close()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
