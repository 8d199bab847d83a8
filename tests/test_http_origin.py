"""Origin allow-list for XMPP over WebSocket and BOSH: a page from another site gets 403 and no
session; the server's own pages, configured origins and non-browser clients (no Origin) work."""
from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from http_xmpp_clients import BoshClient, WebSocketClient
from xmpp_plugins.http import BOSH_MANAGER
from xmpp_plugins.origin import REFUSED_TEXT, normalize
from xmpp_plugins.server import Server

EVIL = "https://evil.example"


@pytest.fixture
async def http_server(xmpp_server, http_front):
    """Factory: (server, base URL, app) of an XMPP server with BOSH and WebSocket on 127.0.0.1."""
    async def make(allowed_origins: list[str] | None = None):
        srv = await xmpp_server(http__allowed_origins=list(allowed_origins or []))
        base = await http_front(srv)
        return srv, base, http_front.apps[base]
    return make


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/xmpp-websocket"


def no_session(srv: Server, app: web.Application) -> bool:
    return srv.connections.total == 0 and not srv.router.sessions and not app[BOSH_MANAGER].sessions


async def ws_login(base: str, origin: str | None) -> str:
    client = WebSocketClient(ws_url(base), origin=origin)
    await client.connect()
    try:
        return await client.login_anonymous()
    finally:
        await client.close()


async def bosh_login(base: str, origin: str | None) -> tuple[str, dict[str, str]]:
    client = BoshClient(base + "/http-bind", origin=origin)
    try:
        jid = await client.login_anonymous()
        assert client.last_headers is not None
        return jid, dict(client.last_headers)
    finally:
        await client.close()


# ---- WebSocket --------------------------------------------------------------------------------

async def test_websocket_from_a_foreign_page_is_refused_with_403(http_server):
    srv, base, app = await http_server()
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await ws_login(base, EVIL)
    assert info.value.status == 403
    # the same handshake read as plain HTTP: a clear text body
    async with aiohttp.ClientSession() as http:
        async with http.get(ws_url(base).replace("ws://", "http://"),
                            headers={"Origin": EVIL, "Upgrade": "websocket", "Connection": "Upgrade",
                                     "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                     "Sec-WebSocket-Protocol": "xmpp"}) as r:
            assert r.status == 403
            assert await r.text() == REFUSED_TEXT
        # "null" (a sandboxed frame, a file:// page) is foreign too, as is the right host on another port
        for origin in ("null", "http://127.0.0.1:1", "http://localhost" + base[len("http://127.0.0.1"):]):
            async with http.get(ws_url(base).replace("ws://", "http://"), headers={"Origin": origin}) as r:
                assert r.status == 403, origin
    assert no_session(srv, app)


async def test_websocket_from_own_page_or_without_origin_works(http_server):
    srv, base, _ = await http_server()
    assert "@localhost/" in await ws_login(base, base)  # Origin http://127.0.0.1:<port> == Host
    assert "@localhost/" in await ws_login(base, None)  # a non-browser client
    assert "@localhost/" in await ws_login(base, base.upper().replace("HTTP://", "http://"))  # host case


async def test_websocket_behind_a_proxy_matches_the_forwarded_host(http_server):
    """A reverse proxy for https://meet.example.org forwards to us with X-Forwarded-Host: the page
    there (the same origin the web client's config.js names) may connect; another may not."""
    srv, base, _ = await http_server()
    url = ws_url(base)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url, protocols=("xmpp",), origin="https://meet.example.org",
                                   headers={"X-Forwarded-Host": "meet.example.org", "X-Forwarded-Proto": "https"})
        assert ws.protocol == "xmpp"
        await ws.close()
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(url, protocols=("xmpp",), origin=EVIL,
                                  headers={"X-Forwarded-Host": "meet.example.org"})
        assert info.value.status == 403


async def test_websocket_from_a_configured_origin_works(http_server):
    srv, base, app = await http_server(["https://meet.example.org", "http://intranet.example.org:8443"])
    assert "@localhost/" in await ws_login(base, "https://meet.example.org")
    assert "@localhost/" in await ws_login(base, "https://meet.example.org:443")  # default port written out
    assert "@localhost/" in await ws_login(base, "http://intranet.example.org:8443")
    for origin in ("http://meet.example.org", "http://intranet.example.org", EVIL):  # scheme and port count
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await ws_login(base, origin)
        assert info.value.status == 403, origin


async def test_star_allows_every_origin(http_server):
    srv, base, _ = await http_server(["*"])
    assert "@localhost/" in await ws_login(base, EVIL)
    jid, headers = await bosh_login(base, EVIL)
    assert headers["Access-Control-Allow-Origin"] == EVIL


# ---- BOSH -------------------------------------------------------------------------------------

async def test_bosh_from_a_foreign_page_is_refused_with_403(http_server):
    srv, base, app = await http_server()
    body = ("<body rid='1' to='localhost' wait='5' hold='1' ver='1.6' xmlns='http://jabber.org/protocol/httpbind' "
            "xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>")
    async with aiohttp.ClientSession() as http:
        for method in ("POST", "OPTIONS", "GET"):
            async with http.request(method, base + "/http-bind", data=body if method == "POST" else None,
                                    headers={"Origin": EVIL, "Content-Type": "text/xml",
                                             "Access-Control-Request-Method": "POST"}) as r:
                assert r.status == 403, method
                assert await r.text() == REFUSED_TEXT
                assert "Access-Control-Allow-Origin" not in r.headers  # the page cannot read anything
    assert no_session(srv, app)


async def test_bosh_answers_cors_only_to_allowed_origins(http_server):
    srv, base, _ = await http_server(["https://meet.example.org"])
    # own page and a configured origin: sessions work, CORS echoes the origin (never "*")
    for origin in (base, "https://meet.example.org"):
        jid, headers = await bosh_login(base, origin)
        assert "@localhost/" in jid
        assert headers["Access-Control-Allow-Origin"] == origin
        assert "Origin" in headers["Vary"]
    # a non-browser client: works, and needs no CORS
    jid, headers = await bosh_login(base, None)
    assert "@localhost/" in jid and "Access-Control-Allow-Origin" not in headers
    # a preflight from an allowed page gets what the browser needs
    async with aiohttp.ClientSession() as http:
        async with http.options(base + "/http-bind", headers={"Origin": "https://meet.example.org",
                                                              "Access-Control-Request-Method": "POST"}) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == "https://meet.example.org"
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
        # an error answer (unknown session) to an allowed page is readable by it too
        async with http.post(base + "/http-bind", data="<body rid='5' sid='nope' xmlns='http://jabber.org/protocol/httpbind'/>",
                             headers={"Origin": base}) as r:
            assert r.status == 404 and r.headers["Access-Control-Allow-Origin"] == base


def test_origin_normalization():
    assert normalize("https://Meet.Example.org:443") == "https://meet.example.org"
    assert normalize("http://meet.example.org:80") == "http://meet.example.org"
    assert normalize("http://[::1]:8080") == "http://[::1]:8080"
    for bad in ("null", "", "meet.example.org", "https://meet.example.org/room", "ftp://x", "https://u@x",
                "https://x?y", "http://[::1"):
        assert normalize(bad) is None, bad
