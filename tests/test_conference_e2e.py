"""Whole calls on loopback: the all-in-one stack (server, MUC, focus, bridge) and Python
participants (slixmpp + aiortc) that send a tone and a test pattern and decode what they get."""
from __future__ import annotations

import asyncio

import pytest

from calls import participant, receives_from
from conftest import BridgeProcess, make_config, until
from jitsi_py.participant.client import Participant
from jitsi_py.stack import Stack


@pytest.fixture
async def stack(tmp_path):
    s = Stack(make_config(server__data_dir=str(tmp_path / "data"), bridge__last_n=4, bridge__audio_slots=3))
    await s.start()
    yield s
    await s.stop()


async def test_three_participants_see_hear_and_chat(stack):
    ps = [participant(stack, "trio", n) for n in ("ann00001", "bob00002", "cat00003")]
    try:
        await asyncio.gather(*(p.join() for p in ps))
        for p in ps:
            await receives_from(p, *[o for o in ps if o is not p])
        ps[0].send_chat("hello everyone")
        for p in ps[1:]:
            frm, text = await p.wait_chat("hello everyone", timeout=10)
            assert frm == "ann00001"
    finally:
        for p in ps:
            await p.leave()


async def test_leave_and_late_join(stack):
    a, b, c = (participant(stack, "comings", n) for n in ("aaa00001", "bbb00002", "ccc00003"))
    try:
        await asyncio.gather(a.join(), b.join())
        await receives_from(a, b)
        # a latecomer: the others are told its sources and start receiving it
        await c.join()
        assert {s.kind for s in await a.wait_source_add("ccc00003")} == {"audio", "video"}
        await b.wait_source_add("ccc00003")
        await receives_from(a, c)
        await receives_from(c, a, b)
        # someone leaves: source-remove, and their slot empties
        await b.leave()
        await a.wait_source_remove("bbb00002")
        await c.wait_source_remove("bbb00002")
        await until(lambda: "bbb00002" not in a.slot_owner.values(), 10, "bbb00002's slot to empty")
        await receives_from(a, c)  # the rest carries on
    finally:
        for p in (a, b, c):
            await p.leave()


async def test_two_bridges_spread_and_failover(stack, tmp_path):
    """A second bridge process joins the brewery; conferences spread; killing it moves its
    conference to the remaining bridge and media flows again within 10 s, room untouched."""
    jvb2 = BridgeProcess(stack, tmp_path, "jvb2")
    people: list[Participant] = []
    try:
        await jvb2.start()
        rooms = {}
        for room in ("east", "west"):
            pair = [participant(stack, room, f"{room}{i}aaaa") for i in range(2)]
            await asyncio.gather(*(p.join() for p in pair))
            await receives_from(pair[0], pair[1])
            people += pair
            rooms[room] = pair
        placed = {stack.focus.conferences[f"{r}@conference.localhost"].bridge.jid.rsplit("/", 1)[1] for r in rooms}
        assert placed == {"jvb1", "jvb2"}, "two conferences should go to two bridges"
        moved_room = next(r for r in rooms
                          if stack.focus.conferences[f"{r}@conference.localhost"].bridge.jid.endswith("/jvb2"))
        a, b = rooms[moved_room]
        await jvb2.kill()
        # media back through jvb1 within 10 s of the kill, without anyone rejoining
        await asyncio.gather(a.wait_session(count=2, timeout=10), b.wait_session(count=2, timeout=10))
        await receives_from(a, b)
        await receives_from(b, a)
        conf = stack.focus.conferences[f"{moved_room}@conference.localhost"]
        assert conf.bridge.jid.endswith("/jvb1")
        room = stack.server.plugins[-1].service.rooms[moved_room]
        assert set(room.occupants) == {"focus", a.nick, b.nick}
        a.send_chat("still here")
        assert (await b.wait_chat("still here", timeout=10))[0] == a.nick
    finally:
        for p in people:
            await p.leave()
        await jvb2.kill()


async def test_restarted_focus_rejoins_and_media_resumes(stack):
    """The focus keeps nothing it cannot rebuild: a new focus finds the room and re-invites."""
    from jicofo_py.focus import Focus
    a, b = participant(stack, "phoenix", "aaa11111"), participant(stack, "phoenix", "bbb22222")
    try:
        await asyncio.gather(a.join(), b.join())
        await receives_from(a, b)
        old = stack.focus
        await old.stop()
        srv = stack.server
        stack.focus = Focus("localhost", stack.internal_passwords["focus"], tuple(srv.c2s_address),
                            tuple(srv.component_address), stack.focus_secret, cafile=str(stack.cert_path))
        await stack.focus.start()
        await asyncio.gather(a.wait_session(count=2, timeout=15), b.wait_session(count=2, timeout=15))
        await receives_from(a, b)
        await receives_from(b, a)
        assert "phoenix@conference.localhost" in stack.focus.conferences
    finally:
        for p in (a, b):
            await p.leave()


async def test_last_n_and_nobody_uploads_unwatched_video(tmp_path):
    """last-N 1 in a room of three: the participant nobody receives is told to stop sending
    video (and does), the others keep receiving one video each."""
    s = Stack(make_config(server__data_dir=str(tmp_path / "data"), bridge__last_n=1, bridge__audio_slots=2))
    await s.start()
    ps = [participant(s, "small", n) for n in ("one00001", "two00002", "three003")]
    try:
        await asyncio.gather(*(p.join() for p in ps))
        conf = next(iter(s.bridge.conferences.values()))

        async def settled() -> None:
            while True:
                watched = {sl.owner for ep in conf.endpoints.values() for sl in ep.video_slots if sl.owner}
                unwatched = [p for p in ps if p.nick not in watched]
                if len(watched) == 2 and len(unwatched) == 1 and not unwatched[0].video_wanted:
                    return
                await asyncio.sleep(0.05)  # slot decisions follow the speaker ranking ticks
        await asyncio.wait_for(settled(), 15)
        watched = {sl.owner for ep in conf.endpoints.values() for sl in ep.video_slots if sl.owner}
        for p in ps:
            assert sum(1 for k, o in p.slot_owner.items() if k[0] == "video" and o) <= 1
            assert p.video_wanted == (p.nick in watched)
    finally:
        for p in ps:
            await p.leave()
        await s.stop()


async def test_bridge_channel_is_a_data_channel_with_websocket_fallback(stack, monkeypatch):
    """Participants open the bridge channel as an SCTP data channel over the media transport:
    slot maps, dominant speaker and endpoint messages arrive on it. A participant whose data
    channel does not open (here: the bridge runs no SCTP for it) falls back to colibri-ws, and
    messages cross between the two kinds of channel."""
    from bridge.transport import EndpointTransport
    from jitsi_py.participant import channel

    a, b = participant(stack, "datachan", "dan00001"), participant(stack, "datachan", "eve00002")
    c = participant(stack, "datachan", "fay00003")
    try:
        await asyncio.gather(a.join(), b.join())
        conf = next(iter(stack.bridge.conferences.values()))
        for p, other in ((a, b), (b, a)):
            assert await p.wait_channel(10) == "sctp"
            assert p._ws is None  # the WebSocket was never needed
            assert type(conf.endpoints[p.nick].channel_send).__name__ == "_DataChannelSender"
            # slot maps and the dominant speaker came over it
            await p._until(lambda p=p, other=other: other.nick in p.slot_owner.values()
                           and p.dominant_speaker in (a.nick, b.nick), 15, "slot map and dominant speaker")
        await a.send_endpoint_message(b.nick, {"hello": "eve"})
        got = await asyncio.wait_for(b.endpoint_messages.get(), 10)
        assert got["from"] == a.nick and got["msgPayload"] == {"hello": "eve"}

        # the third one's data channel never opens: after DATA_CHANNEL_TIMEOUT it uses colibri-ws
        monkeypatch.setattr(EndpointTransport, "enable_sctp", lambda self, *args, **kwargs: None)
        monkeypatch.setattr(channel, "DATA_CHANNEL_TIMEOUT", 1.0)
        await c.join()
        assert await c.wait_channel(10) == "websocket"
        assert stack.bridge.endpoint(conf.meeting_id, c.nick).transport.sctp is None
        await a.send_endpoint_message("", "to all")
        for p in (b, c):
            got = await asyncio.wait_for(p.endpoint_messages.get(), 10)
            assert got["from"] == a.nick and got["msgPayload"] == "to all"
        await c.send_endpoint_message(a.nick, "from the websocket")
        got = await asyncio.wait_for(a.endpoint_messages.get(), 10)
        assert got["from"] == c.nick and got["msgPayload"] == "from the websocket"
    finally:
        for p in (a, b, c):
            await p.leave()
