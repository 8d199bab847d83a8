"""TCP c2s with real slixmpp clients: STARTTLS, every SASL mechanism, routing, core plugins."""
from __future__ import annotations

import asyncio

import pytest
from slixmpp.exceptions import IqError

from conftest import RawClient


async def test_starttls_plain_scram_and_anonymous(xmpp_server, clients):
    srv = await xmpp_server()
    srv.users.add("alice", "localhost", "wonderland")
    for mech in ("PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"):
        c = await clients.connect(srv, "alice@localhost/" + mech, "wonderland", mech=mech)
        assert c.boundjid.bare == "alice@localhost"
        assert c.boundjid.resource == mech
        session = srv.router.session(c.boundjid)
        assert session is not None and session.transport.secure, f"{mech} session is not on TLS"
    guest = await clients.connect(srv)
    assert guest.boundjid.domain == "localhost" and guest.boundjid.user
    assert guest.boundjid.bare != "alice@localhost"


async def test_wrong_password_is_refused(xmpp_server, clients):
    srv = await xmpp_server()
    srv.users.add("bob", "localhost", "right")
    with pytest.raises(ConnectionError):
        await clients.connect(srv, "bob@localhost", "wrong", mech="SCRAM-SHA-256")
    with pytest.raises(ConnectionError):
        await clients.connect(srv, "nobody@localhost", "x", mech="PLAIN")


async def test_anonymous_can_be_switched_off(xmpp_server):
    srv = await xmpp_server(auth__anonymous=False)
    raw = await RawClient.connect(srv.c2s_address)
    features = await raw.open_stream()
    assert "ANONYMOUS" not in features
    raw.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>")
    out = await raw.read_until(b"</failure>")
    assert "invalid-mechanism" in out
    raw.close()


async def test_guest_domain(xmpp_server, clients):
    srv = await xmpp_server(auth__guest_domain="guest.localhost")
    c = await clients.connect(srv, "guest.localhost", verify=False)
    assert c.boundjid.domain == "guest.localhost"


async def test_messages_and_iqs_between_clients(xmpp_server, clients):
    srv = await xmpp_server()
    a = await clients.connect(srv)
    b = await clients.connect(srv)
    got = asyncio.get_running_loop().create_future()
    b.add_event_handler("message", lambda m: got.done() or got.set_result(m))
    a.send_message(mto=b.boundjid.full, mbody="hello over tcp", mtype="chat")
    msg = await asyncio.wait_for(got, 5)
    assert msg["body"] == "hello over tcp"
    assert msg["from"] == a.boundjid  # stamped by the server
    # an IQ from a to b, answered by b's ping plugin
    b.register_plugin("xep_0199")
    a.register_plugin("xep_0199")
    rtt = await a.plugin["xep_0199"].ping(b.boundjid.full, timeout=5)
    assert rtt is not None


async def test_message_to_bare_jid_and_offline(xmpp_server, clients):
    srv = await xmpp_server()
    srv.users.add("carol", "localhost", "pw")
    sender = await clients.connect(srv)
    carol = await clients.connect(srv, "carol@localhost/desk", "pw")
    own = asyncio.get_running_loop().create_future()
    carol.add_event_handler("presence_available", lambda p: own.done() or own.set_result(p))
    carol.send_presence()
    await asyncio.wait_for(own, 5)  # the server reflects her presence once it is available
    got = asyncio.get_running_loop().create_future()
    carol.add_event_handler("message", lambda m: got.done() or got.set_result(m))
    sender.send_message(mto="carol@localhost", mbody="to the bare jid", mtype="chat")
    assert (await asyncio.wait_for(got, 5))["body"] == "to the bare jid"
    errors = asyncio.get_running_loop().create_future()
    sender.add_event_handler("message_error", lambda m: errors.done() or errors.set_result(m))
    sender.send_message(mto="nobody@localhost", mbody="lost", mtype="chat")
    err = await asyncio.wait_for(errors, 5)
    assert err["error"]["condition"] == "service-unavailable"


async def test_unhandled_iq_gets_service_unavailable(xmpp_server, clients):
    srv = await xmpp_server()
    a = await clients.connect(srv)
    iq = a.make_iq_get(queryxmlns="urn:example:nothing", ito="localhost")
    with pytest.raises(IqError) as exc:
        await iq.send(timeout=5)
    assert exc.value.condition == "service-unavailable"
    # an IQ to a client resource that does not exist
    iq = a.make_iq_get(queryxmlns="urn:example:nothing", ito="localhost/nobody")
    with pytest.raises(IqError) as exc:
        await iq.send(timeout=5)
    assert exc.value.condition in ("service-unavailable", "item-not-found")
    # a domain we do not serve
    iq = a.make_iq_get(queryxmlns="urn:example:nothing", ito="example.org")
    with pytest.raises(IqError) as exc:
        await iq.send(timeout=5)
    assert exc.value.condition == "remote-server-not-found"


async def test_roster_disco_version_ping(xmpp_server, clients):
    srv = await xmpp_server()
    a = await clients.connect(srv, plugins=("xep_0030", "xep_0092", "xep_0199"))
    roster = await a.get_roster(timeout=5)
    assert roster["roster"]["items"] == {}
    info = await a.plugin["xep_0030"].get_info(jid="localhost", timeout=5)
    features = info["disco_info"]["features"]
    assert "urn:xmpp:ping" in features and "jabber:iq:version" in features
    assert any(ident[0] == "server" for ident in info["disco_info"]["identities"])
    items = await a.plugin["xep_0030"].get_items(jid="localhost", timeout=5)
    assert items["disco_items"] is not None
    version = await a.plugin["xep_0092"].get_version("localhost", timeout=5)
    assert version["software_version"]["name"]
    assert await a.plugin["xep_0199"].ping("localhost", timeout=5) is not None


async def test_presence_unavailable_on_disconnect(xmpp_server, clients):
    srv = await xmpp_server()
    srv.users.add("dave", "localhost", "pw")
    one = await clients.connect(srv, "dave@localhost/one", "pw")
    two = await clients.connect(srv, "dave@localhost/two", "pw")
    watcher = await clients.connect(srv)
    gone = asyncio.get_running_loop().create_future()
    two.add_event_handler("presence_unavailable", lambda p: gone.done() or gone.set_result(p))
    directed_gone = asyncio.get_running_loop().create_future()
    watcher.add_event_handler("presence_unavailable", lambda p: directed_gone.done() or directed_gone.set_result(p))
    seen = asyncio.get_running_loop().create_future()
    watcher.add_event_handler("presence_available", lambda p: seen.done() or seen.set_result(p))
    one.send_presence()
    one.send_presence(pto=watcher.boundjid.full)  # directed presence
    assert (await asyncio.wait_for(seen, 5))["from"] == one.boundjid
    one.abort()  # no goodbye: the server notices the dead socket
    p = await asyncio.wait_for(gone, 5)
    assert p["from"] == one.boundjid
    p = await asyncio.wait_for(directed_gone, 5)
    assert p["from"] == one.boundjid


async def test_plugin_fault_is_internal_server_error_for_that_stanza_only(xmpp_server, clients):
    from xmpp_plugins.plugin import Plugin
    from xmpp_plugins.server import default_plugins

    class Broken(Plugin):
        name = "broken"

        async def start(self) -> None:
            self.server.register_iq("{urn:example:broken}query", self.boom)

        def boom(self, stanza):
            raise RuntimeError("bug in a plugin")

    srv = await xmpp_server(plugins=default_plugins() + [Broken])
    a = await clients.connect(srv, plugins=("xep_0199",))
    iq = a.make_iq_get(queryxmlns="urn:example:broken", ito="localhost")
    with pytest.raises(IqError) as exc:
        await iq.send(timeout=5)
    assert exc.value.condition == "internal-server-error"
    # the session and the server carry on
    assert await a.plugin["xep_0199"].ping("localhost", timeout=5) is not None
    assert srv.router.session(a.boundjid) is not None


async def test_stream_header_right_after_tls13_handshake(xmpp_server, certificate):
    """A TLS 1.3 client may send its new stream header with its Finished message, before the
    server's start_tls() returns: those bytes must not be lost."""
    import ssl

    srv = await xmpp_server()
    reader, writer = await asyncio.open_connection(*srv.c2s_address)
    header = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
              "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
    writer.write(header.encode())
    got = b""
    while b"</stream:features>" not in got:
        got += await asyncio.wait_for(reader.read(4096), 5)
    writer.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    while b"<proceed" not in got:
        got += await asyncio.wait_for(reader.read(4096), 5)
    ctx = ssl.create_default_context(cafile=str(certificate[0]))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    await asyncio.wait_for(writer.start_tls(ctx, server_hostname="localhost"), 5)
    writer.write(header.encode())  # at once, no waiting for anything
    got = b""
    while b"</stream:features>" not in got:
        got += await asyncio.wait_for(reader.read(4096), 5)
    assert b"mechanisms" in got
    writer.close()
