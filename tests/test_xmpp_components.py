"""XEP-0114 external components: a real slixmpp ComponentXMPP serving a domain through us."""
from __future__ import annotations

import asyncio

import slixmpp

from conftest import RawClient, make_config
from jitsi_py.config import ComponentSecret


def component_config(**overrides):
    cfg = make_config(**overrides)
    cfg.component = [ComponentSecret(domain="echo.localhost", secret="s3cret")]
    return cfg


async def start_component(srv, secret: str = "s3cret", domain: str = "echo.localhost"):
    comp = slixmpp.ComponentXMPP(domain, secret, *srv.component_address)
    loop = asyncio.get_running_loop()
    ready, failed = loop.create_future(), loop.create_future()
    comp.add_event_handler("session_start", lambda _: ready.done() or ready.set_result(True))
    comp.add_event_handler("stream_error", lambda e: failed.done() or failed.set_result(e))
    comp.add_event_handler("disconnected", lambda e: failed.done() or failed.set_result("disconnected"))
    comp.connect()
    done, _ = await asyncio.wait({ready, failed}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    return comp, (ready in done and ready.result() is True), (failed.result() if failed in done else None)


async def test_component_receives_its_domain_and_answers(xmpp_server, clients):
    srv = await xmpp_server(config=component_config())
    comp, ok, _ = await start_component(srv)
    assert ok
    try:
        def echo(msg):
            msg.reply("echo: " + msg["body"]).send()
        comp.add_event_handler("message", echo)
        user = await clients.connect(srv)
        got = asyncio.get_running_loop().create_future()
        user.add_event_handler("message", lambda m: got.done() or got.set_result(m))
        user.send_message(mto="bot@echo.localhost", mbody="hi", mtype="chat")
        reply = await asyncio.wait_for(got, 5)
        assert reply["body"] == "echo: hi"
        assert reply["from"].bare == "bot@echo.localhost"
        # the server lists the component in disco#items
        user.register_plugin("xep_0030")
        items = await user.plugin["xep_0030"].get_items(jid="localhost", timeout=5)
        assert "echo.localhost" in {item[0] for item in items["disco_items"]["items"]}
    finally:
        comp.disconnect()


async def test_component_wrong_secret_refused(xmpp_server):
    srv = await xmpp_server(config=component_config())
    comp, ok, error = await start_component(srv, secret="wrong")
    assert not ok
    assert "echo.localhost" not in srv.router.domains
    comp.abort()
    raw = await RawClient.connect(srv.component_address)
    raw.send("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='echo.localhost'>")
    await raw.read_until(b"<stream:stream")
    raw.send("<handshake>0000000000000000000000000000000000000000</handshake>")
    await raw.read_to_close()
    assert raw.stream_error() == "not-authorized"


async def test_component_unknown_domain_refused(xmpp_server):
    srv = await xmpp_server(config=component_config())
    raw = await RawClient.connect(srv.component_address)
    raw.send("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='other.localhost'>")
    await raw.read_to_close()
    assert raw.stream_error() == "host-unknown"


async def test_component_may_only_send_from_its_domain(xmpp_server, clients):
    import hashlib
    import re
    srv = await xmpp_server(config=component_config())
    user = await clients.connect(srv)
    raw = await RawClient.connect(srv.component_address)
    raw.send("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='echo.localhost'>")
    head = await raw.read_until(b">")
    sid = re.search(r"id=['\"]([^'\"]+)", head).group(1)
    raw.send(f"<handshake>{hashlib.sha1((sid + 's3cret').encode()).hexdigest()}</handshake>")
    await raw.read_until(b"<handshake")
    raw.send(f"<message from='admin@localhost' to='{user.boundjid.full}'><body>spoof</body></message>")
    await raw.read_to_close()
    assert raw.stream_error() == "invalid-from"
    assert "echo.localhost" not in srv.router.domains
