"""Every kind of bad input gets its stream error and a closed connection, and nobody else notices.

Each test keeps a well-behaved slixmpp client connected beside the offender and checks at the end
that it still gets answers: one user's garbage must never cost another user their session.
"""
from __future__ import annotations

import asyncio

import pytest

from conftest import RawClient

HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")


async def still_served(srv, bystander) -> None:
    assert srv.router.session(bystander.boundjid) is not None
    assert await bystander.plugin["xep_0199"].ping("localhost", timeout=5) is not None


async def offend(srv, payload: str | bytes, *, after_login: bool = False) -> RawClient:
    raw = await RawClient.connect(srv.c2s_address)
    if after_login:
        await raw.login_anonymous()
    else:
        raw.send(HEADER)
        await raw.read_until(b"</stream:features>")
    raw.send(payload)
    await raw.read_to_close()
    return raw


@pytest.mark.parametrize("payload, condition", [
    ("<!DOCTYPE foo [<!ENTITY x 'y'>]><message/>", "restricted-xml"),
    ("<message><body>&xxe;</body></message>", "not-well-formed"),  # undeclared entity
    ("<message><body>&amp;&lt;fine&gt;</body></message><message><body></message>", "not-well-formed"),
    ("<message><!-- a comment --></message>", "restricted-xml"),
    ("<message><?pi data?></message>", "restricted-xml"),
    ("<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>", "not-authorized"),  # before auth
    ("<foo xmlns='urn:example'/>", "unsupported-stanza-type"),
])
async def test_bad_xml_before_auth(xmpp_server, clients, payload, condition):
    srv = await xmpp_server()
    bystander = await clients.connect(srv, plugins=("xep_0199",))
    raw = await offend(srv, payload)
    assert raw.stream_error() == condition, raw.received[-400:]
    await still_served(srv, bystander)


async def test_doctype_in_the_stream_header(xmpp_server):
    srv = await xmpp_server()
    raw = await RawClient.connect(srv.c2s_address)
    raw.send("<?xml version='1.0'?><!DOCTYPE stream:stream SYSTEM 'file:///etc/passwd'>" + HEADER[21:])
    out = await raw.read_to_close()
    assert raw.stream_error() == "restricted-xml"
    assert "root:" not in out


async def test_external_entity_after_auth_reads_nothing(xmpp_server, clients):
    srv = await xmpp_server()
    bystander = await clients.connect(srv, plugins=("xep_0199",))
    raw = await offend(srv, "<!DOCTYPE m [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><message to='localhost'>&e;</message>",
                       after_login=True)
    assert raw.stream_error() == "restricted-xml"
    assert "root:" not in raw.received.decode()
    await still_served(srv, bystander)


async def test_wrong_host_and_version(xmpp_server):
    srv = await xmpp_server()
    raw = await RawClient.connect(srv.c2s_address)
    raw.send(HEADER.replace("to='localhost'", "to='example.org'"))
    await raw.read_to_close()
    assert raw.stream_error() == "host-unknown"
    raw = await RawClient.connect(srv.c2s_address)
    raw.send(HEADER.replace("to='localhost' version='1.0'", "to='localhost' version='0.9'"))
    await raw.read_to_close()
    assert raw.stream_error() == "unsupported-version"
    raw = await RawClient.connect(srv.c2s_address)
    raw.send("<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong' to='localhost' version='1.0'>")
    await raw.read_to_close()
    assert raw.stream_error() in ("invalid-namespace", "not-well-formed")


async def test_stanza_size_limits(xmpp_server, clients):
    srv = await xmpp_server(limits__stanza_size_preauth=2000, limits__stanza_size=5000)
    bystander = await clients.connect(srv, plugins=("xep_0199",))
    # before authentication: 2,000 bytes, sent in small pieces so no single read shows it
    raw = await RawClient.connect(srv.c2s_address)
    raw.send(HEADER)
    await raw.read_until(b"</stream:features>")
    raw.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>")
    for _ in range(30):
        raw.send("A" * 100)
        await raw.writer.drain()
    await raw.read_to_close()
    assert raw.stream_error() == "policy-violation"
    assert "stanza-too-big" in raw.received.decode()
    # after authentication: a 4 KB message is fine, a 6 KB one is not
    raw = await RawClient.connect(srv.c2s_address)
    jid = await raw.login_anonymous()
    raw.send(f"<message to='{jid}'><body>{'x' * 4000}</body></message>")
    await raw.read_until(b"</message>")
    raw.send(f"<message to='{jid}'><body>{'x' * 6000}</body></message>")
    await raw.read_to_close()
    assert raw.stream_error() == "policy-violation"
    await still_served(srv, bystander)


async def test_nesting_too_deep(xmpp_server, clients):
    srv = await xmpp_server(limits__max_depth=20)
    bystander = await clients.connect(srv, plugins=("xep_0199",))
    raw = await offend(srv, "<message>" + "<a>" * 40, after_login=True)
    assert raw.stream_error() == "policy-violation"
    assert "nesting" in raw.received.decode()
    await still_served(srv, bystander)


async def test_stanza_flood(xmpp_server, clients):
    # burst of 50, then 5/s; 50 more than that, sent without waiting, close the stream
    srv = await xmpp_server(limits__c2s_stanza_rate=5, limits__c2s_stanza_burst=50)
    bystander = await clients.connect(srv, plugins=("xep_0199",))
    raw = await RawClient.connect(srv.c2s_address)
    jid = await raw.login_anonymous()
    raw.send(f"<message to='{jid}'><body>x</body></message>" * 200)
    await raw.read_to_close()
    assert raw.stream_error() == "policy-violation"
    assert raw.received.count(b"<message") < 200
    await still_served(srv, bystander)


async def test_auth_timeout(xmpp_server, clients):
    srv = await xmpp_server(limits__auth_timeout=0.5)
    raw = await RawClient.connect(srv.c2s_address)
    raw.send(HEADER)
    await raw.read_to_close(timeout=5)
    assert raw.stream_error() == "connection-timeout"
    # an authenticated session outlives the timeout: the raw login below completes first
    raw2 = await RawClient.connect(srv.c2s_address)
    jid = await raw2.login_anonymous()
    probe = asyncio.ensure_future(raw2.read_to_close(timeout=1.0))
    with pytest.raises(asyncio.TimeoutError):
        await probe
    raw2.send(f"<message to='{jid}'><body>still here</body></message>")
    assert "still here" in await raw2.read_until(b"still here</body>")


async def test_connections_per_address_capped(xmpp_server, clients):
    srv = await xmpp_server(limits__connections_per_ip=3)
    held = [await RawClient.connect(srv.c2s_address) for _ in range(3)]
    for r in held:
        await r.open_stream()
    extra = await RawClient.connect(srv.c2s_address)
    await extra.read_to_close()
    assert extra.stream_error() == "policy-violation"
    held[0].close()
    await held[0].writer.wait_closed()
    # once one leaves, a new one gets in (the server learns of the close asynchronously)
    for _ in range(50):
        again = await RawClient.connect(srv.c2s_address)
        again.send(HEADER)
        try:
            await again.read_until(b"</stream:features>", timeout=2)
            break
        except ConnectionError:
            continue
    else:
        pytest.fail("the freed connection slot was never reused")


async def test_reader_that_stops_reading_is_disconnected(xmpp_server, clients):
    # the sender's rates are off: it must outrun a reader, which the default rates would prevent
    srv = await xmpp_server(limits__outgoing_queue=64 * 1024, limits__c2s_rate=0, limits__c2s_stanza_rate=0)
    sender = await clients.connect(srv, plugins=("xep_0199",))
    raw = await RawClient.connect(srv.c2s_address)
    jid = await raw.login_anonymous()
    session = srv.router.session(__import__("slixmpp").JID(jid))
    assert session is not None
    raw.writer.transport.pause_reading()  # stop reading: the kernel buffers fill, then ours
    closed = asyncio.get_running_loop().create_future()
    orig = session.on_connection_lost

    def lost() -> None:
        orig()
        closed.done() or closed.set_result(True)
    session.on_connection_lost = lost
    body = "y" * 3000

    async def flood() -> None:
        while not closed.done():
            for _ in range(50):
                sender.send_message(mto=jid, mbody=body)
            await asyncio.sleep(0)  # let the server run; not waiting for time to pass
    task = asyncio.ensure_future(flood())
    try:
        await asyncio.wait_for(closed, 30)
    finally:
        task.cancel()
    assert srv.router.session(session.jid) is None
    await still_served(srv, sender)


async def test_wrong_passwords_rate_limited(xmpp_server, clients):
    import base64
    srv = await xmpp_server(limits__auth_failures_per_minute=3)
    srv.users.add("erin", "localhost", "secret")

    def plain(password: str) -> str:
        token = base64.b64encode(f"\0erin\0{password}".encode()).decode()
        return f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
    raw = await RawClient.connect(srv.c2s_address)
    await raw.open_stream()
    results = []
    for _ in range(4):
        raw.received = b""
        raw.send(plain("wrong"))
        results.append(await raw.read_until(b"</failure>"))
    assert all("not-authorized" in r for r in results[:3])
    assert "temporary-auth-failure" in results[3]
    # even the right password waits now, from this address
    raw.received = b""
    raw.send(plain("secret"))
    assert "temporary-auth-failure" in await raw.read_until(b"</failure>")
