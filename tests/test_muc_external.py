"""The MUC as an XEP-0114 component: attached to our own server and to a real Prosody."""
from __future__ import annotations

import asyncio

import pytest
import slixmpp
from slixmpp import JID

from conftest import make_config
from jitsi_py.config import ComponentSecret
from prosody_server import Prosody
from xmpp_plugins.muc.external import MucComponent

SECRET = "muc-secret"


def component_cfg(port: int):
    """Plain XEP-0045 rooms that any client creates: these tests are about the component link,
    with no focus around (by default only the focus creates rooms)."""
    cfg = make_config(muc__server_port=port, muc__secret=SECRET, muc__create_rooms="anyone")
    return cfg


async def chat_in_room(a: slixmpp.ClientXMPP, b: slixmpp.ClientXMPP, room: str) -> None:
    """Both join, chat, and one leaves; every step observed by the other client."""
    muc_a, muc_b = a.plugin["xep_0045"], b.plugin["xep_0045"]
    pres, *_ = await muc_a.join_muc_wait(JID(room), "alice", timeout=10)
    assert 110 in pres["muc"]["status_codes"]
    if 201 in pres["muc"]["status_codes"]:  # accept the instant room (XEP-0045 10.1.2)
        iq = a.make_iq_set(ito=room)
        q = slixmpp.xmlstream.ET.SubElement(iq.xml, "{http://jabber.org/protocol/muc#owner}query")
        slixmpp.xmlstream.ET.SubElement(q, "{jabber:x:data}x", type="submit")
        await iq.send(timeout=10)
    loop = asyncio.get_running_loop()
    b_joined, a_msg, a_left = loop.create_future(), loop.create_future(), loop.create_future()
    a.add_event_handler("groupchat_presence",
                        lambda p: (p["from"].resource == "bob" and p["type"] != "unavailable"
                                   and not b_joined.done() and b_joined.set_result(p)))
    a.add_event_handler("groupchat_presence",
                        lambda p: (p["from"].resource == "bob" and p["type"] == "unavailable"
                                   and not a_left.done() and a_left.set_result(p)))
    a.add_event_handler("groupchat_message", lambda m: m["body"] == "hi from bob" and not a_msg.done() and a_msg.set_result(m))
    await muc_b.join_muc_wait(JID(room), "bob", timeout=10)
    await asyncio.wait_for(b_joined, 10)
    b.send_message(mto=room, mbody="hi from bob", mtype="groupchat")
    msg = await asyncio.wait_for(a_msg, 10)
    assert msg["from"] == JID(f"{room}/bob")
    muc_b.leave_muc(JID(room), "bob")
    await asyncio.wait_for(a_left, 10)


async def test_muc_component_on_our_server(xmpp_server, clients):
    cfg = make_config(muc__enabled=False)
    cfg.component = [ComponentSecret("conference.localhost", SECRET), ComponentSecret("lobby.localhost", SECRET)]
    srv = await xmpp_server(config=cfg)
    assert "conference.localhost" not in srv.router.domains
    comp = MucComponent(component_cfg(srv.component_address[1]))
    await comp.start()
    try:
        assert {"conference.localhost", "lobby.localhost"} <= set(srv.router.domains)
        a = await clients.connect(srv, plugins=("xep_0045", "xep_0004"))
        b = await clients.connect(srv, plugins=("xep_0045", "xep_0004"))
        await chat_in_room(a, b, "remote@conference.localhost")
        assert "remote" in comp.service.rooms
    finally:
        comp.stop()


async def test_muc_component_refused_with_wrong_secret(xmpp_server):
    cfg = make_config(muc__enabled=False)
    cfg.component = [ComponentSecret("conference.localhost", "other"), ComponentSecret("lobby.localhost", "other")]
    srv = await xmpp_server(config=cfg)
    comp = MucComponent(component_cfg(srv.component_address[1]))
    with pytest.raises(ConnectionError, match="not-authorized"):
        await comp.start()
    comp.stop()


@pytest.fixture
async def prosody(tmp_path, certificate):
    if not Prosody.available():
        pytest.skip("prosody is not installed (CI installs the Debian package)")
    p = Prosody(tmp_path, certificate[0], certificate[1],
                {"conference.localhost": SECRET, "lobby.localhost": SECRET})
    await p.start()
    yield p
    p.stop()


async def plain_client(port: int) -> slixmpp.ClientXMPP:
    c = slixmpp.ClientXMPP("localhost", "")
    c.enable_plaintext = True
    c.enable_starttls = False
    c.enable_direct_tls = False
    c.register_plugin("xep_0045")
    c.register_plugin("xep_0004")
    started = asyncio.get_running_loop().create_future()
    c.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    c.connect("127.0.0.1", port)
    await asyncio.wait_for(started, 10)
    return c


async def test_muc_component_on_prosody(prosody):
    comp = MucComponent(component_cfg(prosody.component_port))
    await comp.start()
    a = b = None
    try:
        a = await plain_client(prosody.c2s_port)
        b = await plain_client(prosody.c2s_port)
        await chat_in_room(a, b, "viaprosody@conference.localhost")
        room = comp.service.rooms["viaprosody"]
        assert set(room.occupants) == {"alice"}
        # a client that vanishes: Prosody sends the room its unavailable presence
        left = asyncio.get_running_loop().create_future()
        orig = room._remove

        def watch(occupant, *args, **kw):
            orig(occupant, *args, **kw)
            left.done() or left.set_result(occupant.nick)
        room._remove = watch
        a.abort()
        assert await asyncio.wait_for(left, 10) == "alice"
        assert "viaprosody" not in comp.service.rooms
    finally:
        for c in (a, b):
            if c is not None and c.transport is not None:
                c.abort()
        comp.stop()
