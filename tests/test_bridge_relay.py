"""Two bridges in one process joined by a relay, driven by COLIBRI2 as the focus does it, with
aiortc participants on each: media crosses, only the video the far side shows crosses, and
malformed relay requests are refused without touching the conference."""
from __future__ import annotations

import pytest

from bridge.bridge import Bridge
from bridge.relay import build_wanted, parse_wanted
from bridge_peer import Peer
from conftest import until
from jitsi_py.config import BridgeSection
from jitsi_protocols import colibri2
from jitsi_protocols.model import Source
from jitsi_protocols.sdp import default_media
from jitsi_base.errors import StanzaError

M = "cascade"


@pytest.fixture
async def bridges():
    one = Bridge(BridgeSection(id="b1", last_n=2, audio_slots=2, endpoint_timeout=30))
    two = Bridge(BridgeSection(id="b2", last_n=1, audio_slots=2, endpoint_timeout=30))
    for b in (one, two):
        await b.start()
    yield one, two
    for b in (one, two):
        await b.stop()


async def link(one: Bridge, two: Bridge) -> None:
    """What the focus does when a conference moves on to a second bridge."""
    res = await one.handle(colibri2.ConferenceModify(meeting_id=M, create=True, relays=[
        colibri2.Relay(id=two.id, create=True, ice_controlling=True)]))
    res2 = await two.handle(colibri2.ConferenceModify(meeting_id=M, create=True, relays=[
        colibri2.Relay(id=one.id, create=True, ice_controlling=False, transport=res.relays[0].transport)]))
    await one.handle(colibri2.ConferenceModify(meeting_id=M, relays=[
        colibri2.Relay(id=two.id, transport=res2.relays[0].transport)]))


async def across(one: Bridge, two: Bridge, on_one: list[Peer], on_two: list[Peer]) -> None:
    """Link the bridges, join every peer on its own, and tell each bridge who is on the other."""
    await link(one, two)
    for p in on_one + on_two:
        await p.join()
    for p in on_one:
        await announce(two, one, p)
    for p in on_two:
        await announce(one, two, p)


async def announce(to: Bridge, home: Bridge, peer: Peer) -> None:
    await to.handle(colibri2.ConferenceModify(meeting_id=M, relays=[colibri2.Relay(id=home.id, endpoints=[
        colibri2.Endpoint(id=peer.id, media=default_media(), sources_given=True, sources=peer.sources,
                          groups=peer.groups)])]))


def test_wanted_message_round_trip():
    from bridge import rtp
    data = build_wanted(7, [3, 1, 2])
    [(pt, _, off, length)] = list(rtp.iter_rtcp(data))
    assert pt == 204 and parse_wanted(data, off, length) == {1, 2, 3}
    assert parse_wanted(data[:8] + b"XXXX" + data[12:], off, length) is None  # another APP name


async def test_media_crosses_the_relay_and_only_wanted_video(bridges):
    one, two = bridges
    loud, quiet = Peer(one, M, "loud", amplitude=0.5), Peer(one, M, "quiet", amplitude=0.0)
    far = Peer(two, M, "far", amplitude=0.3)
    try:
        await across(one, two, [loud, quiet], [far])
        c1, c2 = one.conferences[M], two.conferences[M]
        await until(lambda: c1.relays["b2"].connected and c2.relays["b1"].connected, 10, "the relay to connect")
        # far (on b2, last-N 1) gets video and audio from b1's loud speaker; b1's people get far's
        await far.frames("video", 3, n_tracks=1)
        await far.frames("audio", 3, n_tracks=1)
        await loud.frames("video", 3, n_tracks=2)
        assert c2.local_endpoints() == 1 and set(c2.relays["b1"].endpoints) == {"loud", "quiet"}
        # b2 holds one of b1's videos in far's only video slot: b1 sends that one, not the other
        shown = {s.source for s in c2.endpoints["far"].video_slots if s.source is not None}
        await until(lambda: c1.relays["b2"].wanted == shown, 5, "b2's wanted list to reach b1")
        relay_send = c1.relays["b2"].transport.send_rtp
        for ep_id in ("loud", "quiet"):
            for ssrc, src in c1.endpoints[ep_id].logical.items():
                crosses = any(send == relay_send for send, _, _ in c1.routes.get(ssrc, ()))
                assert crosses == (src.kind == "audio" or ssrc in shown), (ep_id, src.kind)
        # a relayed endpoint that leaves b1 is dropped from b2 when the focus says so
        await two.handle(colibri2.ConferenceModify(meeting_id=M, relays=[colibri2.Relay(
            id="b1", endpoints=[colibri2.Endpoint(id="quiet", expire=True)])]))
        assert "quiet" not in c2.endpoints and c2.relays["b1"].endpoints == {"loud"}
        # expiring the relay takes the endpoints behind it along
        await two.handle(colibri2.ConferenceModify(meeting_id=M, relays=[colibri2.Relay(id="b1", expire=True)]))
        assert set(c2.endpoints) == {"far"} and not c2.relays
    finally:
        for p in (loud, quiet, far):
            await p.close()


async def test_bad_relay_requests_change_nothing(bridges):
    one, _ = bridges
    await one.handle(colibri2.ConferenceModify(meeting_id=M, create=True, endpoints=[
        colibri2.Endpoint(id="local", create=True)], relays=[colibri2.Relay(id="b2", create=True)]))
    await one.handle(colibri2.ConferenceModify(meeting_id=M, endpoints=[colibri2.Endpoint(
        id="local", sources_given=True, sources=[Source(1111, "audio")])]))
    conf = one.conferences[M]
    cases = [
        (colibri2.Relay(id="b2", create=True), "conflict"),  # exists already
        (colibri2.Relay(id="b9"), "item-not-found"),
        (colibri2.Relay(id="b2", endpoints=[colibri2.Endpoint(id="local")]), "conflict"),  # a local endpoint
        (colibri2.Relay(id="b2", endpoints=[colibri2.Endpoint(
            id="remote", sources_given=True, sources=[Source(1111, "audio")])]), "conflict"),  # its SSRC
    ]
    for relay, condition in cases:
        with pytest.raises(StanzaError) as exc:
            await one.handle(colibri2.ConferenceModify(meeting_id=M, relays=[relay]))
        assert exc.value.condition == condition, relay
        assert set(conf.endpoints) == {"local"} and set(conf.relays) == {"b2"}
    assert conf.endpoints["local"].relay is None


async def test_a_conference_left_without_own_participants_expires_with_its_relays(bridges):
    """A focus that went away (or restarted under a new meeting id) never expires what it made:
    a conference with relays and relayed endpoints but none of its own participants goes after
    endpoint_timeout, like a silent endpoint."""
    one, _ = bridges
    await one.handle(colibri2.ConferenceModify(meeting_id="orphan", create=True, relays=[
        colibri2.Relay(id="b2", create=True, endpoints=[colibri2.Endpoint(
            id="far", sources_given=True, sources=[Source(4242, "audio")])])]))
    conf = one.conferences["orphan"]
    relay = conf.relays["b2"]
    now = conf.created
    one.expire_silent(now + 1)
    assert "orphan" in one.conferences  # noted empty, not yet gone
    one.expire_silent(now + 1 + one.cfg.endpoint_timeout / 2)
    assert "orphan" in one.conferences
    one.expire_silent(now + 2 + one.cfg.endpoint_timeout)
    assert "orphan" not in one.conferences
    await until(lambda: relay.expired and relay.transport.state == "closed", 5, "the relay closed")


async def test_endpoint_messages_cross_the_relay(bridges):
    """EndpointMessage on the bridge channel reaches participants on the other bridge too:
    broadcast (to everyone on both bridges, once) and addressed (only to the one named)."""
    import json

    from bridge.channel import handle_message
    one, two = bridges
    here, near, far = Peer(one, M, "here"), Peer(one, M, "near"), Peer(two, M, "far")
    try:
        await across(one, two, [here, near], [far])
        c1, c2 = one.conferences[M], two.conferences[M]
        await until(lambda: c1.relays["b2"].channel_send is not None and c2.relays["b1"].channel_send is not None,
                    10, "the data channel between the bridges")
        inbox: dict[str, list[dict]] = {"here": [], "near": [], "far": []}
        for conf, ep_id in ((c1, "here"), (c1, "near"), (c2, "far")):
            # only EndpointMessages: the bridge's own SenderVideoConstraints may arrive any time
            conf.endpoints[ep_id].channel_send = lambda text, ep_id=ep_id: (
                json.loads(text).get("colibriClass") == "EndpointMessage" and inbox[ep_id].append(json.loads(text)))
        handle_message(c1.endpoints["here"], {"colibriClass": "EndpointMessage", "to": "", "msgPayload": {"n": 1}})
        await until(lambda: inbox["far"], 5, "the broadcast on the other bridge")
        assert inbox["far"] == [{"colibriClass": "EndpointMessage", "to": "", "msgPayload": {"n": 1}, "from": "here"}]
        assert [m["msgPayload"] for m in inbox["near"]] == [{"n": 1}] and inbox["here"] == []
        # addressed: from far (on b2) to near (on b1) only
        handle_message(c2.endpoints["far"], {"colibriClass": "EndpointMessage", "to": "near", "msgPayload": "hi"})
        await until(lambda: len(inbox["near"]) == 2, 5, "the addressed message across")
        assert inbox["near"][1]["from"] == "far" and inbox["near"][1]["msgPayload"] == "hi"
        assert len(inbox["here"]) == 0 and len(inbox["far"]) == 1
    finally:
        for p in (here, near, far):
            await p.close()
