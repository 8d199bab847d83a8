"""The bridge with real aiortc participants: ICE, DTLS-SRTP and decoded frames on loopback.

Participants are set up the way the focus will do it: a COLIBRI2 create gives each one its
transport and slot sources, an SDP offer is built from them, and the participant's answer goes
back to the bridge as a COLIBRI2 update.
"""
from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCSessionDescription

from bridge.bridge import Bridge
from jitsi_py.config import BridgeSection
from jitsi_protocols import colibri2
from jitsi_protocols.model import Content
from jitsi_protocols.sdp import build_offer, default_media, parse_answer
from jitsi_base.errors import StanzaError

from bridge_peer import Peer  # noqa: E402
from conftest import until  # noqa: E402


@pytest.fixture
async def bridge():
    b = Bridge(BridgeSection(id="jvbtest", last_n=2, audio_slots=2, endpoint_timeout=30))
    await b.start()
    yield b
    await b.stop()


async def test_three_participants_receive_each_other_and_a_stranger_nothing(bridge):
    peers = [Peer(bridge, "conf1", f"ep{i}") for i in range(3)]
    stranger = Peer(bridge, "conf2", "alone")
    started = asyncio.get_running_loop().time()
    try:
        for p in peers + [stranger]:
            await p.join()
        for p in peers:
            await p.frames("video", 3, n_tracks=2)
            await p.frames("audio", 5, n_tracks=2)
        conf = bridge.conferences["conf1"]
        assert conf.packets_forwarded > 0
        # the stranger's conference has nobody to forward: no media was sent to it (the bridge's
        # own receiver reports and REMB to it, once a second, are RTCP, not media)
        lone = bridge.conferences["conf2"].endpoints["alone"]
        assert sum(s.sent for s in lone.audio_slots + lone.video_slots) == 0
        assert lone.transport.stats["packets_out"] <= 2 * (1 + int(asyncio.get_running_loop().time()
                                                                   - started))
        assert all(s.source is None for s in lone.audio_slots + lone.video_slots)
        # nobody receives their own media
        for ep in conf.endpoints.values():
            own = set(ep.sources)
            assert all(s.source not in own for s in ep.audio_slots + ep.video_slots)
    finally:
        for p in peers + [stranger]:
            await p.close()


async def test_expire_pli_silence_and_dominant_speaker(bridge):
    loud, quiet, silent = (Peer(bridge, "c", "loud", 0.6), Peer(bridge, "c", "quiet", 0.01),
                           Peer(bridge, "c", "silent", 0.0))
    peers = [loud, quiet, silent]
    try:
        for p in peers:
            await p.join()
        await quiet.frames("video", 3, n_tracks=2)
        conf = bridge.conferences["c"]
        # the louder participant becomes dominant speaker
        changed = asyncio.get_running_loop().create_future()
        ep_quiet = conf.endpoints["quiet"]
        ep_quiet.channel_send = lambda text: ("DominantSpeaker" in text and "loud" in text
                                              and not changed.done() and changed.set_result(text))
        if conf.speaker.dominant != "loud":  # it may have happened before we listened
            await asyncio.wait_for(changed, 10)
        assert conf.speaker.dominant == "loud"
        # the silent participant's packets are dropped, not relayed
        assert conf.silence_dropped > 0
        # a receiver's PLI reaches the sender of that slot as a PLI for its own SSRC
        slot = next(s for s in ep_quiet.video_slots if s.owner == "loud")
        from bridge import rtp
        got_pli = asyncio.get_running_loop().create_future()
        ep_loud = conf.endpoints["loud"]
        orig = ep_loud.transport.send_rtcp

        def spy(data: bytes) -> None:
            for pt, fmt, off, _len in rtp.iter_rtcp(data):
                if pt == 206 and fmt == 1 and rtp.rtcp_media_ssrc(data, off) == slot.source and not got_pli.done():
                    got_pli.set_result(True)
            orig(data)
        ep_loud.transport.send_rtcp = spy
        conf._last_pli.clear()
        conf.on_rtcp(ep_quiet, rtp.build_pli(12345, slot.out_ssrc))
        assert await asyncio.wait_for(got_pli, 5)
        # expiring an endpoint stops its packets to the others
        await bridge.handle(colibri2.ConferenceModify(meeting_id="c", endpoints=[colibri2.Endpoint(id="loud", expire=True)]))
        assert "loud" not in conf.endpoints
        assert all(s.owner != "loud" for s in ep_quiet.video_slots + ep_quiet.audio_slots)
        assert not any(ssrc in conf.routes for ssrc in ep_loud.sources)
    finally:
        for p in peers:
            await p.close()


async def test_colibri2_errors(bridge):
    with pytest.raises(StanzaError) as exc:
        await bridge.handle(colibri2.ConferenceModify(meeting_id="nope", endpoints=[colibri2.Endpoint(id="x")]))
    assert exc.value.condition == "item-not-found"
    await bridge.handle(colibri2.ConferenceModify(meeting_id="m", create=True,
                                                  endpoints=[colibri2.Endpoint(id="a", create=True)]))
    with pytest.raises(StanzaError) as exc:
        await bridge.handle(colibri2.ConferenceModify(meeting_id="m", endpoints=[colibri2.Endpoint(id="ghost")]))
    assert exc.value.condition == "item-not-found"
    from jitsi_protocols.model import Source, SourceGroup
    with pytest.raises(StanzaError) as exc:
        await bridge.handle(colibri2.ConferenceModify(meeting_id="m", endpoints=[colibri2.Endpoint(
            id="a", sources_given=True, sources=[Source(5, "video")], groups=[SourceGroup("FID", [5, 6])])]))
    assert exc.value.condition == "bad-request"
    assert bridge.conferences["m"].endpoints["a"].sources == {}


async def test_nack_answered_from_cache_and_unknown_ssrc_counted(bridge):
    import struct

    from bridge import rtp
    a, b = Peer(bridge, "n", "a"), Peer(bridge, "n", "b")
    try:
        await a.join()
        await b.join()
        await b.frames("video", 2, n_tracks=1)
        conf = bridge.conferences["n"]
        ep_b = conf.endpoints["b"]
        slot = next(s for s in ep_b.video_slots if s.owner == "a")
        seq = slot.last_seq
        in_seq = slot.source_seq(seq)
        entry = conf.endpoints["a"].video_cache[slot.source][in_seq % 512]
        assert entry is not None and entry[0] == in_seq
        cached = slot.rewrite(entry[1])  # what the slot sent for that sequence number
        resent = asyncio.get_running_loop().create_future()
        orig = ep_b.transport.send_rtp

        def spy(data: bytes) -> None:
            if data == cached and not resent.done():
                resent.set_result(True)
            orig(data)
        ep_b.transport.send_rtp = spy
        conf.on_rtcp(ep_b, rtp.build_nack(1234, slot.out_ssrc, [seq]))
        assert await asyncio.wait_for(resent, 2)
        # a packet from an SSRC nobody announced is dropped and counted, the rest flows on
        before = conf.unknown_dropped
        stray = struct.pack("!BBHII", 0x80, 100, 1, 1, 0xDEADBEEF) + b"x" * 100
        conf.on_rtp(conf.endpoints["a"], stray)
        conf.on_rtp(conf.endpoints["a"], b"\x80")  # truncated
        assert conf.unknown_dropped == before + 1
        await b.frames("video", 2, n_tracks=1)
    finally:
        await a.close()
        await b.close()


async def test_sender_constraints_follow_last_n():
    """With last-N 1, the one sender nobody receives is told to send no video (idealHeight 0)."""
    import json
    b = Bridge(BridgeSection(id="jvbc", last_n=1, audio_slots=1))
    await b.start()
    peers = [Peer(b, "lastn", f"p{i}") for i in range(3)]
    try:
        for p in peers:
            await p.join()
        conf = b.conferences["lastn"]
        heard: dict[str, list[int]] = {ep: [] for ep in conf.endpoints}
        for ep in conf.endpoints.values():
            ep.channel_send = lambda text, ep=ep: heard[ep.id].append(
                json.loads(text)["videoConstraints"]["idealHeight"]) if "SenderVideoConstraints" in text else None
            ep.sent_ideal_height = None  # resend on the next decision
        conf.reassign()
        receiving = {s.owner for ep in conf.endpoints.values() for s in ep.video_slots if s.owner}
        assert len(receiving) == 2  # three receivers, one slot each, nobody gets their own video
        for ep_id, heights in heard.items():
            assert heights == [720 if ep_id in receiving else 0]
    finally:
        for p in peers:
            await p.close()
        await b.stop()


# ---- the bridge channel over SCTP ------------------------------------------------------------
COLIBRI_PROTOCOL = "http://jitsi.org/protocols/colibri"


class DataPeer(Peer):
    """A peer whose offer has the data content; it opens the bridge channel as a data channel."""

    def __init__(self, bridge: Bridge, meeting_id: str, ep_id: str, answer_data: bool = True) -> None:
        super().__init__(bridge, meeting_id, ep_id)
        self.answer_data = answer_data  # False: like our browser client, which leaves it out
        self.messages: list[dict] = []  # received on the data channel, not yet taken by next()
        self.arrived = asyncio.Event()
        self.dc = None

    async def join(self) -> None:
        import json

        media = default_media()
        res = await self.bridge.handle(colibri2.ConferenceModify(
            meeting_id=self.meeting_id, name=f"{self.meeting_id}@conference.localhost", create=True,
            endpoints=[colibri2.Endpoint(id=self.id, create=True, media=media, sctp=True)]))
        mine = res.endpoints[0]
        assert mine.sctp and mine.transport.sctp_port == 5000
        self.transport = mine.transport
        contents = [Content("audio", "audio", media[0], [s for s in mine.sources if s.kind == "audio"]),
                    Content("video", "video", media[1], [s for s in mine.sources if s.kind == "video"])]
        if self.answer_data:
            contents.append(Content("data", "application", transport=mine.transport))
        offer = build_offer(contents, mine.transport)
        assert ("m=application 9 UDP/DTLS/SCTP webrtc-datachannel" in offer) == self.answer_data
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        connected = asyncio.get_running_loop().create_future()
        self.pc.on("connectionstatechange", lambda: self.pc.connectionState == "connected"
                   and not connected.done() and connected.set_result(True))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        answer = parse_answer(self.pc.localDescription.sdp, owner=self.id)
        await self.bridge.handle(colibri2.ConferenceModify(meeting_id=self.meeting_id, endpoints=[
            colibri2.Endpoint(id=self.id, transport=answer.transport, media=media)]))
        await asyncio.wait_for(connected, 15)
        if not self.answer_data:
            return
        dc = self.pc.createDataChannel("JVB data channel", protocol=COLIBRI_PROTOCOL)
        opened = asyncio.get_running_loop().create_future()
        dc.on("open", lambda: opened.done() or opened.set_result(True))
        dc.on("message", lambda m: (self.messages.append(json.loads(m)), self.arrived.set()))
        await asyncio.wait_for(opened, 10)
        self.dc = dc

    async def next(self, cls: str, timeout: float = 10.0) -> dict:
        """The first message of class `cls` not taken yet (others stay for later calls)."""
        async def find() -> dict:
            while True:
                for m in self.messages:
                    if m.get("colibriClass") == cls:
                        self.messages.remove(m)
                        return m
                self.arrived.clear()
                await self.arrived.wait()
        return await asyncio.wait_for(find(), timeout)


@pytest.fixture
async def bridge_http(bridge):
    """The bridge with its HTTP face (colibri-ws) on an ephemeral port."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from bridge.http_api import setup_public

    app = web.Application()
    setup_public(app, bridge)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    bridge.websocket_base = str(server.make_url("")).replace("http://", "ws://")
    yield bridge
    await server.close()


async def test_bridge_channel_over_sctp_and_websocket(bridge_http):
    """Two peers open the bridge channel as a data channel, a third (no data content in its
    answer, like the browser client) uses colibri-ws; endpoint messages cross between them."""
    import json

    import aiohttp

    bridge = bridge_http
    a, b = DataPeer(bridge, "dc", "a"), DataPeer(bridge, "dc", "b")
    c = DataPeer(bridge, "dc", "c", answer_data=False)
    try:
        for p in (a, b, c):
            await p.join()
        conf = bridge.conferences["dc"]
        assert all(ep.transport.sctp is not None for ep in conf.endpoints.values())
        for p in (a, b):
            assert (await p.next("ServerHello"))["version"]
            vmap = await p.next("VideoSourcesMap")
            assert [m["slot"] for m in vmap["mappedSources"]] == [0, 1]
            await p.next("AudioSourcesMap")
        assert a.dc.protocol == COLIBRI_PROTOCOL
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(c.transport.websocket_url)

            async def ws_next(cls: str) -> dict:
                while True:
                    msg = await ws.receive(timeout=10)
                    assert msg.type == aiohttp.WSMsgType.TEXT, msg
                    data = json.loads(msg.data)
                    if data.get("colibriClass") == cls:
                        return data

            await asyncio.wait_for(ws_next("ServerHello"), 10)
            # SCTP -> SCTP and SCTP -> WebSocket, to everyone
            a.dc.send(json.dumps({"colibriClass": "EndpointMessage", "to": "", "msgPayload": {"n": 1}}))
            got_b = await b.next("EndpointMessage")
            got_c = await asyncio.wait_for(ws_next("EndpointMessage"), 10)
            for got in (got_b, got_c):
                assert got["from"] == "a" and got["msgPayload"] == {"n": 1}
            # WebSocket -> SCTP, to one
            await ws.send_str(json.dumps({"colibriClass": "EndpointMessage", "to": "a", "msgPayload": "hi"}))
            got_a = await a.next("EndpointMessage")
            assert got_a["from"] == "c" and got_a["msgPayload"] == "hi"
            assert not [m for m in b.messages if m.get("colibriClass") == "EndpointMessage"]
            # garbage on the data channel gets an error, the channel stays usable
            a.dc.send("{not json")
            assert (await a.next("Error"))["message"] == "not JSON"
            # expiring c's endpoint closes its WebSocket (the bridge does not keep it open)
            await bridge.handle(colibri2.ConferenceModify(meeting_id="dc", endpoints=[
                colibri2.Endpoint(id="c", expire=True)]))
            while True:
                msg = await ws.receive(timeout=10)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
        # expiring an endpoint ends its SCTP association: the peer's data channel closes
        closed = asyncio.get_running_loop().create_future()
        b.dc.on("close", lambda: closed.done() or closed.set_result(True))
        ep_b = conf.endpoints["b"]
        await bridge.handle(colibri2.ConferenceModify(meeting_id="dc", endpoints=[
            colibri2.Endpoint(id="b", expire=True)]))
        assert ep_b.transport.sctp is None and ep_b.channel_send is None
        await asyncio.wait_for(closed, 10)
    finally:
        for p in (a, b, c):
            await p.close()


async def test_a_second_transport_update_adds_candidates_and_keeps_the_endpoint(bridge):
    """Trickled candidates arrive as another COLIBRI2 update with a transport: the endpoint
    must keep its running session (it used to fail start() twice and be expired)."""
    from jitsi_protocols.model import Candidate, IceTransport
    a, b = Peer(bridge, "tr", "a"), Peer(bridge, "tr", "b")
    try:
        await a.join()
        await b.join()
        await b.frames("video", 2, n_tracks=1)
        ep_a = bridge.conferences["tr"].endpoints["a"]
        extra = IceTransport(ufrag="", pwd="", candidates=[Candidate("9", 1, "udp", 1, "127.0.0.1", 9, "host")])
        await bridge.handle(colibri2.ConferenceModify(meeting_id="tr", endpoints=[
            colibri2.Endpoint(id="a", transport=extra)]))
        await b.frames("video", 3, n_tracks=1)  # media keeps flowing from a
        assert bridge.conferences["tr"].endpoints.get("a") is ep_a and ep_a.transport.state == "connected"
    finally:
        await a.close()
        await b.close()


async def test_pinned_source_fills_the_slot_before_the_speaker():
    """last-N 1: the receiver gets the loud speaker's video, until it puts the quiet one on
    stage (ReceiverVideoConstraints onStageSources, by source name); unpinned, back to the
    speaker. Selecting by endpoint id (older clients) works the same."""
    from bridge.channel import handle_message
    b = Bridge(BridgeSection(id="jvbpin", last_n=1, audio_slots=1))
    await b.start()
    loud, quiet, viewer = Peer(b, "pin", "loud", 0.5), Peer(b, "pin", "quiet", 0.0), Peer(b, "pin", "viewer", 0.0)
    try:
        for p in (loud, quiet, viewer):
            await p.join()
        conf = b.conferences["pin"]
        ep = conf.endpoints["viewer"]
        await until(lambda: conf.speaker.dominant == "loud", 10, "loud to be the dominant speaker")
        await until(lambda: ep.video_slots[0].owner == "loud", 5, "the speaker in the viewer's slot")
        quiet_video = next(s for s in conf.endpoints["quiet"].logical.values() if s.kind == "video")
        handle_message(ep, {"colibriClass": "ReceiverVideoConstraints", "onStageSources": [quiet_video.name]})
        assert ep.video_slots[0].owner == "quiet" and ep.video_slots[0].source == quiet_video.ssrc
        await viewer.frames("video", 3, n_tracks=1)
        # the speaker ranking moving on does not take the slot back
        conf.tick()
        conf.reassign()
        assert ep.video_slots[0].owner == "quiet"
        handle_message(ep, {"colibriClass": "ReceiverVideoConstraints", "onStageSources": []})
        assert ep.video_slots[0].owner == "loud"
        handle_message(ep, {"colibriClass": "ReceiverVideoConstraints", "selectedEndpoints": ["quiet"]})
        assert ep.video_slots[0].owner == "quiet"
    finally:
        for p in (loud, quiet, viewer):
            await p.close()
        await b.stop()


async def test_padding_only_probes_are_not_forwarded(bridge):
    """A sender's padding-only probe (Chrome sends them on audio once transport-cc is on) stops
    at the bridge: a receiver's decoder would get an empty frame (aiortc's opus decoder then
    fails for good). Media of the same source keeps flowing."""
    import struct
    a, b = Peer(bridge, "pad", "a", amplitude=0.5), Peer(bridge, "pad", "b")
    try:
        await a.join()
        await b.join()
        await b.frames("audio", 3, n_tracks=1)
        conf = bridge.conferences["pad"]
        sender = conf.endpoints["a"]
        audio_ssrc = next(s for s, src in sender.logical.items() if src.kind == "audio")
        probe = struct.pack("!BBHII", 0xA0, 111, 1, 2, audio_ssrc) + bytes(199) + bytes([200])
        before = conf.packets_forwarded
        conf.on_rtp(sender, probe)
        assert conf.padding_dropped == 1 and conf.packets_forwarded == before
        await b.frames("audio", 3, n_tracks=1)
    finally:
        for p in (a, b):
            await p.close()
