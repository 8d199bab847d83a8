"""Defaults that hold under floods (issue 13, point 5), over real sockets.

A flooding client is slowed down or cut off while a bystander is served; half-open connections
from one address are capped and timed out without locking out the address's signed-in users;
the byte rate holds on WebSocket and BOSH as on TCP; and a busy chat stays well inside the
default rates.
"""
from __future__ import annotations

import asyncio

import aiohttp
import pytest
from slixmpp import JID

from conftest import RawClient, until
from http_xmpp_clients import BOSH, JC, BoshClient, WebSocketClient
from jitsi_py.config import Config, LimitsSection

HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
PING = "<iq type='get' id='f{}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"


def test_defaults_have_the_rates_on_and_a_short_auth_timeout():
    limits = Config().limits
    assert limits == LimitsSection()
    assert limits.c2s_rate == 10240 and limits.c2s_burst >= 20 * 1024  # a simulcast session-accept at once
    assert limits.c2s_stanza_rate > 0 and limits.c2s_stanza_burst >= 50  # a conference join at once
    assert limits.auth_timeout == 30.0
    assert 0 < limits.unauthenticated_per_ip < limits.connections_per_ip
    assert limits.connections_per_ip >= 1000  # hundreds of people behind one NAT


async def test_flooding_client_is_cut_off_while_a_bystander_is_served(xmpp_server, clients):
    srv = await xmpp_server()  # the defaults
    bystander = await clients.connect(srv, plugins=("xep_0199",))
    flooder = await RawClient.connect(srv.c2s_address)
    await flooder.login_anonymous()
    sent = 0

    async def flood() -> None:
        nonlocal sent
        batch = "".join(PING.format(i) for i in range(100)).encode()
        while not flooder.writer.is_closing():
            flooder.writer.write(batch)
            sent += 100
            await flooder.writer.drain()  # as fast as TCP takes it
    task = asyncio.ensure_future(flood())
    try:
        await flooder.read_until(b"<iq", timeout=5)  # the server is working through the flood
        # the bystander's ping is answered meanwhile
        assert await bystander.plugin["xep_0199"].ping("localhost", timeout=2) is not None
        await flooder.read_to_close(timeout=10)
    finally:
        task.cancel()
    assert flooder.stream_error() == "policy-violation"
    assert b"Too many stanzas" in flooder.received
    answered = flooder.received.count(b"type=\"result\"") + flooder.received.count(b"type='result'")
    assert answered < sent and answered <= 2 * srv.cfg.limits.c2s_stanza_burst + srv.cfg.limits.c2s_stanza_rate * 10
    assert srv.router.session(bystander.boundjid) is not None
    assert await bystander.plugin["xep_0199"].ping("localhost", timeout=2) is not None


async def test_a_client_over_its_rate_is_throttled_not_closed(xmpp_server):
    """Within the burst of debt, a client over the stanza rate is only slowed down."""
    srv = await xmpp_server(limits__c2s_stanza_rate=100, limits__c2s_stanza_burst=20)
    raw = await RawClient.connect(srv.c2s_address)
    jid = await raw.login_anonymous()
    session = srv.router.session(JID(jid))
    for i in range(60):  # 60 at 100/s with a burst of 20: paused, never 20 in debt
        raw.send(f"<message to='{jid}' id='m{i}'><body>{i}</body></message>")
        await raw.writer.drain()
        if i % 10 == 9:
            await raw.read_until(f"<body>{i}</body>".encode())  # paced like a chatty client
    await raw.read_until(b"<body>59</body>")
    assert raw.stream_error() is None
    assert session.throttled > 0


async def test_half_open_connections_are_capped_and_timed_out(xmpp_server, clients):
    srv = await xmpp_server(limits__auth_timeout=1.0)  # unauthenticated_per_ip: the default 20
    cap = srv.cfg.limits.unauthenticated_per_ip
    signed_in = [await clients.connect(srv, plugins=("xep_0199",)) for _ in range(3)]
    half_open: list[RawClient] = []
    refused: list[RawClient] = []
    for i in range(25):
        raw = await RawClient.connect(srv.c2s_address)
        raw.send(HEADER)
        if i < cap:
            await raw.read_until(b"</stream:features>")
            half_open.append(raw)
        else:
            await raw.read_to_close(timeout=5)
            refused.append(raw)
    for raw in refused:  # the 21st and later
        assert raw.stream_error() == "policy-violation"
        assert b"not signed in" in raw.received
    # signed-in users of the same address count only against connections_per_ip: still served
    for client in signed_in:
        assert await client.plugin["xep_0199"].ping("localhost", timeout=2) is not None
    # the half-open ones are closed once auth_timeout passes
    await asyncio.gather(*(raw.read_to_close(timeout=5) for raw in half_open))
    assert all(raw.stream_error() == "connection-timeout" for raw in half_open)
    await until(lambda: srv.connections.unauthenticated.get("127.0.0.1", 0) == 0, 5, "the slots to be freed")
    # and someone behind the same address signs in
    late = await clients.connect(srv, plugins=("xep_0199",))
    assert await late.plugin["xep_0199"].ping("localhost", timeout=2) is not None
    assert srv.connections.by_ip["127.0.0.1"] == len(signed_in) + 1


async def test_websocket_and_bosh_count_towards_the_unauthenticated_cap(xmpp_server, http_front):
    srv = await xmpp_server(limits__unauthenticated_per_ip=3)
    base = await http_front(srv)
    ws_url = base.replace("http", "ws") + "/xmpp-websocket"
    opened: list[WebSocketClient] = []
    for _ in range(2):
        ws = WebSocketClient(ws_url)
        await ws.connect()
        await ws.open()
        opened.append(ws)
    bosh = BoshClient(base + "/http-bind")
    await bosh.connect()  # a BOSH session, not signed in yet: the third
    extra = WebSocketClient(ws_url)
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await extra.connect()
    assert exc.value.status == 429
    await extra.close()
    async with aiohttp.ClientSession() as http:
        body = f"<body rid='7' xmlns='{BOSH}' to='localhost' wait='5' hold='1' ver='1.6'/>"
        async with http.post(base + "/http-bind", data=body.encode()) as r:
            assert r.status == 429
            assert b"policy-violation" in await r.read()
    # one signs in: its slot moves to the signed-in count and a newcomer gets in
    await opened[0].close()
    await until(lambda: srv.connections.unauthenticated.get("127.0.0.1", 0) == 2, 5, "the slot to be freed")
    signer = WebSocketClient(ws_url)
    await signer.connect()
    jid = await signer.login_anonymous()
    assert srv.connections.unauthenticated["127.0.0.1"] == 2
    newcomer = WebSocketClient(ws_url)
    await newcomer.connect()
    await newcomer.open()
    await signer.send_raw(f"<message xmlns='{JC}' to='{jid}'><body>still here</body></message>")
    assert (await signer.recv_stanza("message")).findtext(f"{{{JC}}}body") == "still here"
    for client in (*opened[1:], signer, newcomer):
        await client.close()
    await bosh.close(terminate=False)


async def test_byte_rate_holds_on_websocket_and_bosh(xmpp_server, http_front):
    """Each transport reads a throttled client's next frame or request only when it is due;
    everything still arrives, and the client is not closed."""
    srv = await xmpp_server(limits__c2s_rate=4000, limits__c2s_burst=4000)
    base = await http_front(srv)
    filler = "z" * 1500
    ws = WebSocketClient(base.replace("http", "ws") + "/xmpp-websocket")
    await ws.connect()
    ws_jid = await ws.login_anonymous()
    for i in range(6):  # 9 kB against a 4 kB burst at 4 kB/s
        await ws.send_raw(f"<message xmlns='{JC}' to='{ws_jid}'><body>{i}{filler}</body></message>")
    for i in range(6):
        got = await ws.recv_stanza("message", timeout=5)
        assert got.findtext(f"{{{JC}}}body") == f"{i}{filler}"
    assert srv.router.session(JID(ws_jid)).throttled > 0

    bosh = BoshClient(base + "/http-bind")
    bosh_jid = await bosh.login_anonymous()
    for i in range(6):
        await bosh.send(f"<message xmlns='{JC}' to='{bosh_jid}'><body>{i}{filler}</body></message>")
    for i in range(6):
        got = await bosh.recv_stanza("message", timeout=5)
        assert got.findtext(f"{{{JC}}}body") == f"{i}{filler}"
    assert srv.router.session(JID(bosh_jid)).throttled > 0
    assert bosh.terminated is None
    await ws.close()
    await bosh.close()


async def test_busy_chat_stays_inside_the_default_rates(xmpp_server, clients):
    from test_muc import MUC_PLUGINS, Waiter
    srv = await xmpp_server()  # the defaults
    srv.users.add("focus", "auth.localhost", "focuspw")
    room = JID("busy@conference.localhost")
    focus = await clients.connect(srv, "focus@auth.localhost/focus", "focuspw", plugins=MUC_PLUGINS)
    await focus.plugin["xep_0045"].join_muc_wait(room, "focus", timeout=5)  # an open conference room
    people = [await clients.connect(srv, plugins=MUC_PLUGINS) for _ in range(10)]
    for i, p in enumerate(people):
        await p.plugin["xep_0045"].join_muc_wait(room, f"p{i}", timeout=5)
    problems: list[str] = []
    for p in people:
        p.add_event_handler("message_error", lambda m: problems.append(f"bounced: {m}"))
        p.add_event_handler("stream_error", lambda e: problems.append(f"stream error: {e}"))
        p.add_event_handler("disconnected", lambda _: problems.append("disconnected"))
    rounds = 30  # a message every 100 ms for 3 s, from each of the 10
    last = Waiter(people[0], "groupchat_message", str(room))

    async def chat(i: int, p) -> None:
        for n in range(rounds):
            p.send_message(mto=room, mbody=f"{i}:{n}", mtype="groupchat")
            await asyncio.sleep(0.1)  # the pace of the chat, not a wait for an event
    await asyncio.gather(*(chat(i, p) for i, p in enumerate(people)))
    for i in range(len(people)):
        await last.next(lambda m, i=i: m["body"] == f"{i}:{rounds - 1}", timeout=10)
    assert problems == []
    assert all(srv.router.session(p.boundjid) is not None for p in people)
