"""Hostile guests against the all-in-one stack while two honest participants are in a call.

Each test is one attack from issue 13, run by a client that signed in anonymously (what anyone
on the internet gets). It asserts that the attack is refused with a clear error AND that the
honest participants go on decoding each other's audio and video, during and after it.
"""
from __future__ import annotations

import asyncio
import ssl
import xml.etree.ElementTree as ET

import pytest
import slixmpp
from lxml import etree
from slixmpp import JID
from slixmpp.exceptions import IqError, IqTimeout

from calls import participant, receives_from
from conftest import make_config, until
from jitsi_py.participant.client import Participant
from jitsi_py.stack import Stack
from jitsi_protocols import colibri2, focus_iq

ROOM = "victims"
ROOM_JID = f"{ROOM}@conference.localhost"
BREWERY = "jvbbrewery@internal.auth.localhost"


@pytest.fixture
async def call(tmp_path):
    """A stack and two honest participants who see and hear each other."""
    stack = Stack(make_config(server__data_dir=str(tmp_path / "data"), bridge__last_n=4, bridge__audio_slots=3,
                              focus__empty_room_timeout=1.0, focus__max_waiting_rooms=20))
    await stack.start()
    a, b = participant(stack, ROOM, "alice001"), participant(stack, ROOM, "bob00002")
    try:
        await asyncio.gather(a.join(), b.join())
        await receives_from(a, b)
        await receives_from(b, a)
        yield stack, a, b
    finally:
        for p in (a, b):
            await p.leave()
        await stack.stop()


class Guest:
    """An anonymous client that sends whatever it likes."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        c = self.client = slixmpp.ClientXMPP("localhost", "", sasl_mech="ANONYMOUS")
        c.ssl_context = ssl.create_default_context(cafile=str(stack.cert_path))
        c.enable_direct_tls = False
        for plugin in ("xep_0030", "xep_0045"):
            c.register_plugin(plugin)

    async def connect(self) -> "Guest":
        started = asyncio.get_running_loop().create_future()
        self.client.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
        self.client.connect(*self.stack.server.c2s_address)
        await asyncio.wait_for(started, 10)
        return self

    async def close(self) -> None:
        if self.client.transport is not None:
            try:
                await asyncio.wait_for(self.client.disconnect(wait=0), 2)
            except Exception:
                self.client.abort()

    async def iq(self, to: str, payload: etree._Element | str, type_: str = "set") -> IqError:
        """Send an IQ that must be refused; the error it got."""
        iq = self.client.make_iq(ito=to, itype=type_)
        iq.xml.append(ET.fromstring(payload if isinstance(payload, str) else etree.tostring(payload)))
        with pytest.raises(IqError) as exc:
            await iq.send(timeout=10)
        return exc.value

    async def join(self, room: str, nick: str) -> None:
        await self.client.plugin["xep_0045"].join_muc_wait(JID(room), nick, timeout=10, maxstanzas=0)


@pytest.fixture
async def guest(call):
    g = await Guest(call[0]).connect()
    yield g
    await g.close()


def meeting_id(stack: Stack) -> str:
    """The victims' meeting id: the attacker is assumed to know it (it used to be public)."""
    return stack.focus.conferences[ROOM_JID].meeting_id


def modify(req: colibri2.ConferenceModify) -> etree._Element:
    return colibri2.modify_element(req)


async def media_keeps_flowing(a: Participant, b: Participant) -> None:
    await receives_from(a, b)
    await receives_from(b, a)


def endpoints_on_bridge(stack: Stack) -> set[str]:
    conf = next(c for c in stack.bridge.conferences.values() if c.name == ROOM_JID)
    return set(conf.endpoints)


# ---- 2: COLIBRI2 straight to the bridge ----------------------------------------------------------

async def test_guest_cannot_allocate_or_expire_endpoints_on_the_bridge(call, guest):
    stack, a, b = call
    mid = meeting_id(stack)
    before = endpoints_on_bridge(stack)
    bridge_jid = f"jvb@auth.localhost/{stack.bridge.id}"
    spy = modify(colibri2.ConferenceModify(meeting_id=mid, endpoints=[
        colibri2.Endpoint(id="eavesdropper", create=True, media=stack.focus.conferences[ROOM_JID].media)]))
    cut = modify(colibri2.ConferenceModify(meeting_id=mid, endpoints=[colibri2.Endpoint(id=a.nick, expire=True)]))
    kill = modify(colibri2.ConferenceModify(meeting_id=mid, expire=True))

    async def attack() -> list[IqError]:
        return [await guest.iq(bridge_jid, el) for el in (spy, cut, kill)]
    errors, _ = await asyncio.gather(attack(), media_keeps_flowing(a, b))
    for err in errors:
        assert err.condition == "service-unavailable", err
        assert "Internal accounts" in (err.text or "")
    # the bridge's account by its bare JID and the server's auth host are closed too
    err = await guest.iq("jvb@auth.localhost", spy)
    assert err.condition == "service-unavailable"
    assert endpoints_on_bridge(stack) == before
    await media_keeps_flowing(a, b)


async def test_guest_cannot_enter_the_brewery(call, guest):
    stack, a, b = call
    with pytest.raises(Exception) as exc:
        await guest.join(BREWERY, "focus")
    assert "forbidden" in str(exc.value) or "not-allowed" in str(exc.value) or "registration" in str(exc.value)
    # nor reach the bridge through the brewery's occupant address
    err = await guest.iq(f"{BREWERY}/{stack.bridge.id}", modify(colibri2.ConferenceModify(
        meeting_id=meeting_id(stack), endpoints=[colibri2.Endpoint(id="eavesdropper", create=True)])))
    assert err.condition in ("forbidden", "not-acceptable", "not-allowed"), err
    await media_keeps_flowing(a, b)


async def test_bridge_refuses_colibri2_from_an_internal_account_that_is_not_the_focus(call, tmp_path):
    """Even inside auth.<domain>, only the configured focus steers a bridge: a second bridge's
    account (a compromised bridge, say) is refused."""
    stack, a, b = call
    stack.users.add("jvb2", "auth.localhost", "pw-of-jvb2")
    other = slixmpp.ClientXMPP("jvb2@auth.localhost/jvb2", "pw-of-jvb2")
    other.ssl_context = ssl.create_default_context(cafile=str(stack.cert_path))
    other.enable_direct_tls = False
    other.register_plugin("xep_0045")
    started = asyncio.get_running_loop().create_future()
    other.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    other.connect(*stack.server.c2s_address)
    try:
        await asyncio.wait_for(started, 10)
        await other.plugin["xep_0045"].join_muc_wait(JID(BREWERY), "jvb2", timeout=10, maxstanzas=0)
        for to in (f"{BREWERY}/{stack.bridge.id}", f"jvb@auth.localhost/{stack.bridge.id}"):
            iq = other.make_iq_set(ito=to)
            iq.xml.append(ET.fromstring(etree.tostring(modify(colibri2.ConferenceModify(
                meeting_id=meeting_id(stack), endpoints=[colibri2.Endpoint(id=a.nick, expire=True)])))))
            with pytest.raises(IqError) as exc:
                await iq.send(timeout=10)
            assert exc.value.condition == "forbidden", exc.value
            assert "Only the focus" in (exc.value.text or "")
    finally:
        other.abort()
    assert a.nick in endpoints_on_bridge(stack)
    await media_keeps_flowing(a, b)


# ---- 3: forged bridge notices to the focus --------------------------------------------------------

async def test_forged_bridge_notices_do_not_end_sessions(call, guest):
    stack, a, b = call
    mid = meeting_id(stack)
    sessions = (a.sessions, b.sessions)
    expire_a = modify(colibri2.ConferenceModify(meeting_id=mid, name=ROOM_JID,
                                                endpoints=[colibri2.Endpoint(id=a.nick, expire=True)]))
    expire_relay = modify(colibri2.ConferenceModify(meeting_id=mid, relays=[colibri2.Relay(id="jvb1", expire=True)]))
    # straight to the focus account: the router does not deliver it
    for el in (expire_a, expire_relay):
        err = await guest.iq("focus@auth.localhost/focus", el)
        assert err.condition == "service-unavailable"
    # through the room (the MUC relays an occupant's IQ to the focus): the focus refuses it
    await guest.join(ROOM_JID, "mallory1")
    for el in (expire_a, expire_relay):
        err = await guest.iq(f"{ROOM_JID}/focus", el)
        assert err.condition == "forbidden", err
        assert "Only a bridge" in (err.text or "")
    await media_keeps_flowing(a, b)
    assert (a.sessions, b.sessions) == sessions  # nobody was re-invited


async def test_focus_replaces_an_endpoint_it_believed_gone(call):
    """Whatever made the focus think an endpoint was gone, the participant gets a fresh session
    (the bridge still holding the endpoint was a `conflict` dead end)."""
    stack, a, b = call
    conf = stack.focus.conferences[ROOM_JID]
    p = conf.participants[a.nick]
    p.endpoint = False  # the focus's belief, against the bridge's state
    conf.endpoint_expired(a.nick, p.bridge)
    await a.wait_session(count=2, timeout=15)
    await media_keeps_flowing(a, b)


# ---- 5: the focus does not open rooms by the hundred --------------------------------------------

async def test_conference_request_flood_is_refused_and_rooms_are_left(call, guest):
    stack, a, b = call

    async def flood() -> list[str]:
        outcomes = []
        for i in range(60):
            iq = guest.client.make_iq_set(ito="focus.localhost")
            iq.xml.append(ET.fromstring(etree.tostring(focus_iq.request_element(
                focus_iq.ConferenceRequest(f"flood{i}@conference.localhost")))))
            try:
                await iq.send(timeout=10)
                outcomes.append("ready")
            except IqError as exc:
                outcomes.append(exc.condition)
                assert exc.condition == "resource-constraint", exc
                assert "Too many" in (exc.iq["error"]["text"] or "")
            except IqTimeout:
                outcomes.append("timeout")
        return outcomes
    outcomes, _ = await asyncio.gather(flood(), media_keeps_flowing(a, b))
    assert "timeout" not in outcomes
    assert outcomes.count("ready") <= 10 and outcomes.count("resource-constraint") >= 50
    # the rooms nobody joined are left again (empty_room_timeout is 1 s here)
    await until(lambda: not any(r.startswith("flood") for r in stack.focus.conferences), 10,
                "the focus to leave the rooms nobody joined")
    assert ROOM_JID in stack.focus.conferences
    await media_keeps_flowing(a, b)


async def test_waiting_rooms_are_bounded_across_clients(call):
    """Many guests, each under its own request rate, still cannot make the focus hold more than
    max_waiting_rooms empty rooms (20 in this test's config)."""
    stack, a, b = call
    guests = [await Guest(stack).connect() for _ in range(5)]
    try:
        async def ask(g: Guest, i: int) -> str:
            iq = g.client.make_iq_set(ito="focus.localhost")
            iq.xml.append(ET.fromstring(etree.tostring(focus_iq.request_element(
                focus_iq.ConferenceRequest(f"w{id(g) % 9973}x{i}@conference.localhost")))))
            try:
                await iq.send(timeout=10)
                return "ready"
            except IqError as exc:
                return exc.condition
        results = await asyncio.gather(*(ask(g, i) for g in guests for i in range(8)))
        waiting = [c for c in stack.focus.conferences.values() if not c.participants]
        assert len(waiting) <= 20
        assert results.count("resource-constraint") >= len(results) - 20
    finally:
        for g in guests:
            await g.close()
    await media_keeps_flowing(a, b)


# ---- 4: rooms belong to the focus -----------------------------------------------------------------

async def test_guest_cannot_create_rooms_or_pose_as_the_focus(call, guest):
    stack, a, b = call
    muc = guest.client.plugin["xep_0045"]
    # a room of its own, before anyone asked the focus: refused, so the focus always owns rooms
    with pytest.raises(Exception) as exc:
        await guest.join("fresh@conference.localhost", "focus")
    assert "item-not-found" in str(exc.value), exc.value
    # the victims' room under the focus's nick, in any spelling
    for nick in ("focus", "Focus", "FOCUS "):
        with pytest.raises(Exception) as exc:
            await guest.join(ROOM_JID, nick)
        assert "conflict" in str(exc.value), exc.value
    # who is the focus in the room is unchanged: its real JID is the focus account
    real = muc.get_jid_property(JID(ROOM_JID), "focus", "jid") if JID(ROOM_JID) in muc.rooms else None
    assert real is None or JID(real).bare == "focus@auth.localhost"
    await media_keeps_flowing(a, b)
    assert (a.sessions, b.sessions) == (1, 1)


async def test_meeting_id_is_not_shown_to_outsiders(call, guest):
    stack, a, b = call
    info = await guest.client.plugin["xep_0030"].get_info(jid=ROOM_JID, timeout=10)
    assert meeting_id(stack) not in str(info)
    assert "meetingId" not in str(info)
    await media_keeps_flowing(a, b)


# ---- 1: stats on the public port; 5: a foreign page's WebSocket ----------------------------------

async def test_public_port_tells_nothing_about_conferences(call):
    import aiohttp
    stack, a, b = call
    host, port = stack.http_address
    secrets_ = (ROOM, meeting_id(stack), a.nick, b.nick)
    async with aiohttp.ClientSession() as http:
        for path in ("/colibri/stats?conferences=true&endpoints=true", "/metrics", "/about/version",
                     "/about/health"):
            async with http.get(f"http://{host}:{port}{path}") as r:
                body = await r.text()
                assert r.status == (200 if path == "/about/health" else 404), (path, r.status)
                assert not any(s in body for s in secrets_), (path, body[:200])
        # the operator still has them, on the admin listener (loopback only)
        ahost, aport = stack.admin_address
        async with http.get(f"http://{ahost}:{aport}/colibri/stats?conferences=true&endpoints=true") as r:
            assert r.status == 200 and meeting_id(stack) in await r.text()
    await media_keeps_flowing(a, b)


async def test_foreign_page_cannot_open_xmpp_websocket_or_bosh(call):
    import aiohttp
    stack, a, b = call
    host, port = stack.http_address
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await http.ws_connect(f"http://{host}:{port}/xmpp-websocket", protocols=("xmpp",),
                                  headers={"Origin": "https://evil.example"})
        assert exc.value.status == 403
        body = ("<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='localhost' wait='5' hold='1' "
                "ver='1.6' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>")
        async with http.post(f"http://{host}:{port}/http-bind", data=body,
                             headers={"Origin": "https://evil.example", "Content-Type": "text/xml"}) as r:
            assert r.status == 403
            assert "Access-Control-Allow-Origin" not in r.headers
    await media_keeps_flowing(a, b)


# ---- 5: floods and half-open connections ------------------------------------------------------------

async def test_stanza_flood_into_the_room_is_cut_off_while_the_call_goes_on(call):
    from conftest import RawClient
    stack, a, b = call
    flooder = await RawClient.connect(stack.server.c2s_address)
    jid = await flooder.login_anonymous()
    assert jid
    # straight to the room's occupants (no join needed to try): groupchat and private messages
    batch = "".join(f"<message to='{ROOM_JID}/{a.nick}' type='chat' id='f{i}'><body>spam {i}</body></message>"
                    for i in range(100)).encode()

    async def flood() -> None:
        while not flooder.writer.is_closing():
            flooder.writer.write(batch)
            await flooder.writer.drain()
    task = asyncio.ensure_future(flood())
    try:
        await asyncio.gather(flooder.read_to_close(timeout=20), media_keeps_flowing(a, b))
    finally:
        task.cancel()
    # closed by the server (its policy-violation may be lost in a reset: the flooder had more
    # in flight than the server read)
    assert flooder.stream_error() in ("policy-violation", None)
    assert stack.server.router.session(JID(jid)) is None
    await media_keeps_flowing(a, b)
    assert (a.sessions, b.sessions) == (1, 1)


async def test_half_open_connections_do_not_lock_out_the_call(call):
    from conftest import RawClient
    stack, a, b = call
    cap = stack.cfg.limits.unauthenticated_per_ip
    header = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
              "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
    held: list[RawClient] = []
    try:
        for _ in range(cap):
            raw = await RawClient.connect(stack.server.c2s_address)
            raw.send(header)
            await raw.read_until(b"</stream:features>")
            held.append(raw)
        extra = await RawClient.connect(stack.server.c2s_address)
        extra.send(header)
        await extra.read_to_close(timeout=5)
        assert extra.stream_error() == "policy-violation" and b"not signed in" in extra.received
        # the participants signed in behind the same address keep their call
        await media_keeps_flowing(a, b)
    finally:
        for raw in held:
            raw.close()
    # once the half-open sockets are gone, a newcomer signs in
    await until(lambda: not stack.server.connections.unauthenticated.get("127.0.0.1", 0), 5,
                "the half-open connections' places to be freed")
    g = await Guest(stack).connect()
    await g.close()
