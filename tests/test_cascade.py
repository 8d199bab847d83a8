"""Cascading: one conference over two bridges (the all-in-one stack's jvb1 and a second bridge
process), joined by a relay. Participants on different bridges see and hear each other."""
from __future__ import annotations

import asyncio

import pytest

import calls
from calls import receives_from
from conftest import BridgeProcess, make_config, until
from jitsi_py.participant.client import Participant
from jitsi_py.stack import Stack

ROOM = "cascade@conference.localhost"


@pytest.fixture
async def stack(tmp_path):
    s = Stack(make_config(server__data_dir=str(tmp_path / "data"), bridge__last_n=4, bridge__audio_slots=3,
                          focus__max_bridge_participants=2))
    await s.start()
    yield s
    await s.stop()


def participant(stack: Stack, nick: str) -> Participant:
    return calls.participant(stack, "cascade", nick)


def bridge_of(stack: Stack, nick: str) -> str:
    conf = stack.focus.conferences[ROOM]
    return conf.participants[nick].bridge.rsplit("/", 1)[1]


async def test_one_conference_over_two_bridges(stack, tmp_path):
    jvb2 = await BridgeProcess(stack, tmp_path, "jvb2").start()
    a, b, c, d = (participant(stack, n) for n in ("ann00001", "bob00002", "cat00003", "dan00004"))
    people = [a, b, c, d]
    try:
        await asyncio.gather(a.join(), b.join())
        await receives_from(a, b)
        await c.join()
        await d.join()
        # two per bridge: the first bridge filled up, the conference went on on the second
        assert [bridge_of(stack, p.nick) for p in people] == ["jvb1", "jvb1", "jvb2", "jvb2"]
        for p in people:
            await receives_from(p, *[o for o in people if o is not p])

        # jvb1 (in this process) knows c and d as endpoints behind its relay to jvb2
        conf = next(iter(stack.bridge.conferences.values()))
        relay = conf.relays["jvb2"]
        assert relay.connected and relay.endpoints == {c.nick, d.nick}
        assert conf.local_endpoints() == 2
        assert relay.wanted, "jvb2 asked for the video of jvb1's participants"
        assert relay.transport.stats["packets_in"] > 0 and relay.transport.stats["packets_out"] > 0

        # the relay breaks (here: its transport on jvb1 closes): jvb1 tells the focus, which
        # links the two bridges again, and media crosses once more
        await relay.transport.stop()
        await until(lambda: conf.relays.get("jvb2") not in (None, relay) and conf.relays["jvb2"].connected, 20,
                    "a new relay between jvb1 and jvb2")
        relay = conf.relays["jvb2"]
        assert relay.endpoints == {c.nick, d.nick}
        await receives_from(a, c, d)
        await receives_from(c, a, b)

        # someone on jvb2 leaves: jvb1 forgets it, the others carry on
        await d.leave()
        await a.wait_source_remove(d.nick)
        await until(lambda: d.nick not in conf.endpoints, 10, "jvb1 to drop the relayed endpoint")
        await receives_from(a, c)
        await receives_from(c, a, b)

        # jvb2 dies: its participant moves to jvb1 (the only bridge left) and media resumes
        await jvb2.kill()
        await c.wait_session(count=2, timeout=15)
        await until(lambda: "jvb2" not in conf.relays, 10, "the relay to the dead bridge to go")
        assert bridge_of(stack, c.nick) == "jvb1"
        await receives_from(c, a, b)
        await receives_from(a, c)
    finally:
        for p in people:
            await p.leave()
        await jvb2.kill()


async def test_last_participant_on_a_bridge_leaves_it(stack, tmp_path):
    """When nobody of the conference is left on the second bridge, the conference and the
    relays towards it are expired there and on the first."""
    jvb2 = await BridgeProcess(stack, tmp_path, "jvb2").start()
    a, b, c = (participant(stack, n) for n in ("amy00001", "ben00002", "cid00003"))
    try:
        await asyncio.gather(a.join(), b.join())
        await c.join()
        assert bridge_of(stack, c.nick) == "jvb2"
        await receives_from(a, c)
        await receives_from(c, a)
        conf = next(iter(stack.bridge.conferences.values()))
        await c.leave()
        await until(lambda: not conf.relays, 10, "jvb1's relay to jvb2 to expire")
        focus_conf = stack.focus.conferences[ROOM]
        assert [cb.id for cb in focus_conf.bridges.values()] == ["jvb1"]
        await receives_from(a, b)
    finally:
        for p in (a, b, c):
            await p.leave()
        await jvb2.kill()
