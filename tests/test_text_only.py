"""Text-only XMPP clients in a call's room: the focus offers them no media session (their
caps lack Jingle RTP) or one at most (no caps, and they refuse it); no bridge endpoint stays
reserved for them, and the Python participants in the same room have their call."""
from __future__ import annotations

import asyncio
import ssl

import pytest
import slixmpp
from slixmpp import JID

from calls import participant, receives_from
from conftest import make_config, until
from jitsi_py.stack import Stack

ROOMS = "conference.localhost"
ENDPOINT_TIMEOUT = 3.0  # the bridge expires a silent endpoint after this: the old re-offer loop's period


@pytest.fixture
async def stack(tmp_path):
    s = Stack(make_config(server__data_dir=str(tmp_path / "data"), bridge__endpoint_timeout=ENDPOINT_TIMEOUT))
    await s.start()
    yield s
    await s.stop()


class TextClient:
    """A plain slixmpp client: MUC chat only, no Jingle handler (slixmpp itself answers an
    offer with feature-not-implemented). Its presence has caps unless told otherwise, and it
    answers disco#info without the Jingle features. It counts the offers it is sent."""

    def __init__(self, stack: Stack, clients, caps: bool) -> None:
        c = self.c = slixmpp.ClientXMPP("localhost", "")
        c.ssl_context = ssl.create_default_context(cafile=str(stack.cert_path))
        c.enable_direct_tls = False
        c.register_plugin("xep_0045")  # brings disco and caps (XEP-0115) along
        c.plugin["xep_0115"].broadcast = caps
        self.offers: asyncio.Queue = asyncio.Queue()
        c.add_filter("in", self._count)
        clients.all.append(c)
        self.stack = stack

    def _count(self, stanza):
        if isinstance(stanza, slixmpp.Iq) and stanza["type"] == "set":
            j = stanza.xml.find("{urn:xmpp:jingle:1}jingle")
            if j is not None and j.get("action") == "session-initiate":
                self.offers.put_nowait(stanza["from"])
        return stanza

    async def join(self, room: str, nick: str) -> None:
        started = asyncio.get_running_loop().create_future()
        self.c.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
        self.c.connect(*self.stack.server.c2s_address)
        await asyncio.wait_for(started, 10)
        await self.c.plugin["xep_0045"].join_muc_wait(JID(room), nick, timeout=10)


async def text_only_call(stack: Stack, clients, room_name: str, caps: bool) -> int:
    """A text client joins first, two Python participants after it; returns how many offers
    the text client got once the call runs and the bridge has had time to expire any endpoint
    reserved for it."""
    room = f"{room_name}@{ROOMS}"
    text = TextClient(stack, clients, caps)
    a, b = participant(stack, room_name, "ann00001"), participant(stack, room_name, "bob00002")
    try:
        joining = asyncio.ensure_future(a.join())
        await until(lambda: room in stack.focus.conferences, 10, "the focus to have the room")
        await text.join(room, "terminal")
        await asyncio.gather(joining, b.join())
        await receives_from(a, b)
        await receives_from(b, a)
        conf = stack.focus.conferences[room]
        await until(lambda: conf.participants["terminal"].chat_only, 20, "the text client to be chat-only")
        endpoints = stack.bridge.conferences[conf.meeting_id].endpoints
        await until(lambda: set(endpoints) == {"ann00001", "bob00002"}, 10,
                    "the bridge to hold only the two participants' endpoints")
        # the bug re-offered every time the bridge expired the refused endpoint: await the
        # bridge's expiry sweeps that would have expired one reserved now, then a round trip
        # through the room to the focus (which would have sent the offer first), and count
        offers = text.offers.qsize()
        reserved_by = asyncio.get_running_loop().time() + ENDPOINT_TIMEOUT
        late_sweeps: list[float] = []
        sweep = stack.bridge.expire_silent

        def counted(*args, **kwargs):
            if asyncio.get_running_loop().time() > reserved_by:
                late_sweeps.append(asyncio.get_running_loop().time())
            return sweep(*args, **kwargs)
        stack.bridge.expire_silent = counted  # type: ignore[method-assign]
        try:
            await until(lambda: len(late_sweeps) >= 2, 2 * ENDPOINT_TIMEOUT + 5,
                        "two bridge expiry sweeps past the endpoint timeout")
        finally:
            stack.bridge.expire_silent = sweep  # type: ignore[method-assign]
        await text.c.plugin["xep_0030"].get_info(jid=f"{room}/focus", timeout=10)
        assert text.offers.qsize() == offers
        assert set(endpoints) == {"ann00001", "bob00002"}
        assert conf.participants["terminal"].state != "pending" and not conf.participants["terminal"].endpoint
        await receives_from(a, b)  # the call goes on
        return offers
    finally:
        for p in (a, b):
            await p.leave()


async def test_client_without_caps_refuses_one_offer_and_gets_no_more(stack, clients):
    assert await text_only_call(stack, clients, "plain", caps=False) == 1


async def test_plain_slixmpp_client_whose_caps_lack_jingle_gets_no_offer(stack, clients):
    assert await text_only_call(stack, clients, "capsroom", caps=True) == 0
