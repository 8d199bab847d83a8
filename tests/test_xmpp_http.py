"""XMPP over WebSocket and BOSH: the same sessions and routing as TCP, seen from HTTP clients."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest
import slixmpp
from lxml import etree

from http_xmpp_clients import BOSH, JC, STREAMS, BoshClient, WebSocketClient, q
from xmpp_plugins.server import Server

STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"


@pytest.fixture
async def http_server(xmpp_server, http_front):
    """Factory: (server, base URL) of a server with BOSH and WebSocket; overrides as section__key."""
    async def make(**overrides):
        srv = await xmpp_server(**overrides)
        return srv, await http_front(srv)
    return make


async def slix_client(srv: Server) -> slixmpp.ClientXMPP:
    c = slixmpp.ClientXMPP("localhost", "")
    c.enable_plaintext = True
    c.enable_starttls = False
    c.enable_direct_tls = False
    started = asyncio.get_running_loop().create_future()
    c.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    c.connect(*srv.c2s_address)
    await asyncio.wait_for(started, 5)
    return c


async def test_two_websocket_clients_chat(http_server):
    srv, base = await http_server()
    a, b = WebSocketClient(base.replace("http", "ws") + "/xmpp-websocket"), WebSocketClient(base.replace("http", "ws") + "/xmpp-websocket")
    await a.connect()
    await b.connect()
    ja = await a.login_anonymous()
    jb = await b.login_anonymous("phone")
    assert jb.endswith("/phone")
    await a.send_raw(f'<message xmlns="{JC}" to="{jb}" type="chat" id="m1"><body>hello over ws</body></message>')
    msg = await b.recv_stanza("message")
    assert msg.findtext(q(JC, "body")) == "hello over ws"
    assert msg.get("from") == ja  # stamped by the server, not trusted from the client
    # ping the server over WebSocket
    await b.send_raw(f'<iq xmlns="{JC}" type="get" id="p1" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>')
    pong = await b.recv_stanza("iq")
    assert pong.get("type") == "result" and pong.get("id") == "p1"
    await a.close()
    await b.close()


async def test_websocket_client_talks_to_tcp_client(http_server):
    srv, base = await http_server()
    ws = WebSocketClient(base.replace("http", "ws") + "/xmpp-websocket")
    await ws.connect()
    ws_jid = await ws.login_anonymous()
    tcp = await slix_client(srv)
    got = asyncio.get_running_loop().create_future()
    tcp.add_event_handler("message", lambda m: got.done() or got.set_result(m))
    await ws.send_raw(f'<message xmlns="{JC}" to="{tcp.boundjid.full}" type="chat"><body>from the browser side</body></message>')
    msg = await asyncio.wait_for(got, 5)
    assert msg["body"] == "from the browser side"
    assert msg["from"].full == ws_jid
    tcp.send_message(mto=ws_jid, mbody="from tcp", mtype="chat")
    reply = await ws.recv_stanza("message")
    assert reply.findtext(q(JC, "body")) == "from tcp"
    tcp.disconnect()
    await ws.close()


async def test_websocket_requires_xmpp_subprotocol(http_server):
    srv, base = await http_server()
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(base.replace("http", "ws") + "/xmpp-websocket") as ws:
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert msg.data == 1002


@pytest.mark.parametrize("frame,condition", [
    ("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'", "not-well-formed"),
    ("<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>", "restricted-xml"),
    ("<message><body>&undeclared;</body></message>", "not-well-formed"),
    ("<!-- hi --><open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>", "restricted-xml"),
])
async def test_websocket_bad_frames_get_stream_errors(http_server, frame, condition):
    srv, base = await http_server()
    other = WebSocketClient(base.replace("http", "ws") + "/xmpp-websocket")
    await other.connect()
    await other.login_anonymous()
    bad = WebSocketClient(base.replace("http", "ws") + "/xmpp-websocket")
    await bad.connect()
    await bad.send_raw(frame)
    err = await bad.recv()
    assert err.tag == q(STREAMS, "error")
    assert err.find(q(STREAM_ERRORS, condition)) is not None, etree.tostring(err)
    closing = await bad.recv()
    assert closing.tag == "{urn:ietf:params:xml:ns:xmpp-framing}close"
    # the other session is untouched
    await other.send_raw(f'<iq xmlns="{JC}" type="get" id="p2" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>')
    assert (await other.recv_stanza("iq")).get("type") == "result"
    await bad.close()
    await other.close()


async def test_bosh_session_chats_with_websocket(http_server):
    srv, base = await http_server()
    bosh = BoshClient(base + "/http-bind")
    bosh_jid = await bosh.login_anonymous()
    ws = WebSocketClient(base.replace("http", "ws") + "/xmpp-websocket")
    await ws.connect()
    ws_jid = await ws.login_anonymous()
    await ws.send_raw(f'<message xmlns="{JC}" to="{bosh_jid}" type="chat"><body>to bosh</body></message>')
    msg = await bosh.recv_stanza("message")
    assert msg.findtext(q(JC, "body")) == "to bosh"
    await bosh.send(f'<message xmlns="{JC}" to="{ws_jid}" type="chat"><body>from bosh</body></message>')
    reply = await ws.recv_stanza("message")
    assert reply.findtext(q(JC, "body")) == "from bosh"
    assert reply.get("from") == bosh_jid
    # terminate: afterwards the JID is gone and messages to it bounce
    await bosh.close(terminate=True)
    await ws.send_raw(f'<message xmlns="{JC}" to="{bosh_jid}" type="chat" id="late"><body>anyone?</body></message>')
    bounce = await ws.recv_stanza("message")
    assert bounce.get("type") == "error" and bounce.get("id") == "late"
    await ws.close()


async def test_bosh_session_times_out_when_idle(http_server):
    srv, base = await http_server(bosh__max_inactivity=0.5)
    ws = WebSocketClient(base.replace("http", "ws") + "/xmpp-websocket")
    await ws.connect()
    ws_jid = await ws.login_anonymous()
    bosh = BoshClient(base + "/http-bind", wait=1)
    bosh_jid = await bosh.login_anonymous()
    await bosh.send(f'<presence xmlns="{JC}" to="{ws_jid}"/>')
    assert (await ws.recv_stanza("presence")).get("from") == bosh_jid
    bosh._poller.cancel()  # the client vanishes: no more requests
    gone = await ws.recv_stanza("presence", timeout=10)
    assert gone.get("type") == "unavailable" and gone.get("from") == bosh_jid
    assert bosh_jid.split("/")[0] not in srv.router.sessions
    await bosh.close(terminate=False)
    await ws.close()


async def test_bosh_bad_requests(http_server):
    srv, base = await http_server()
    async with aiohttp.ClientSession() as http:
        async with http.post(base + "/http-bind", data=b"<body rid='1' sid='nope' xmlns='%s'/>" % BOSH.encode()) as r:
            assert r.status == 404
            assert etree.fromstring(await r.read()).get("condition") == "item-not-found"
        async with http.post(base + "/http-bind", data=b"<body rid='1' xmlns='%s'><unclosed></body>" % BOSH.encode()) as r:
            assert r.status == 400
        async with http.post(base + "/http-bind", data=b"<body xmlns='%s' to='localhost'/>" % BOSH.encode()) as r:
            assert r.status == 400  # no rid
        async with http.post(base + "/http-bind", data=b"<body rid='5' xmlns='%s' to='elsewhere.example' ver='1.6'/>" % BOSH.encode()) as r:
            body = etree.fromstring(await r.read())
            assert body.get("type") == "terminate" and body.get("condition") == "host-unknown"
        async with http.post(base + "/http-bind", data=b"x" * (srv.cfg.limits.stanza_size + 10)) as r:
            assert r.status == 413
