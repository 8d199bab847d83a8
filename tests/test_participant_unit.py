"""The Python participant without a focus: Jingle <-> SDP through aiortc, Jingle IQ answers,
bridge channel messages, slot media relays and recording, and the `join` command's edges."""
from __future__ import annotations

import asyncio
import fractions
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET

import av
import numpy as np
import pytest
import slixmpp
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from conftest import until
from lxml import etree

from jitsi_py.participant import Participant, SlotTrack, TestPatternTrack, ToneTrack
from jitsi_py.participant.client import plan_offer, session_accept
from jitsi_protocols import jingle
from jitsi_protocols.jingle import JingleAction
from jitsi_protocols.model import Content, Source
from jitsi_base.errors import StanzaError

ROOM = "room1@conference.localhost"
FOCUS = f"{ROOM}/focus"
FINGERPRINT = ":".join(["AB"] * 32)

# What our focus sends alice: her receive slots (the bridge's, with msid), bob's sources listed
# per participant (owner room/nick, no msid), the bridge's transport with its channel.
SESSION_INITIATE = f"""
<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s1' initiator='{FOCUS}'>
  <content creator='initiator' name='audio' senders='both'>
    <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>
      <payload-type id='111' name='opus' clockrate='48000' channels='2'>
        <parameter name='minptime' value='10'/><parameter name='useinbandfec' value='1'/>
      </payload-type>
      <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='1'
                  uri='urn:ietf:params:rtp-hdrext:ssrc-audio-level'/>
      <rtcp-mux/>
      <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='1001' name='jvb-a0'>
        <parameter name='cname' value='jvb'/><parameter name='msid' value='jvb-a0 jvb-a0-t'/>
      </source>
      <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='1002' name='jvb-a1'>
        <parameter name='cname' value='jvb'/><parameter name='msid' value='jvb-a1 jvb-a1-t'/>
      </source>
      <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='777' name='bob-a0'>
        <parameter name='cname' value='bobcname'/>
        <ssrc-info xmlns='http://jitsi.org/jitmeet' owner='{ROOM}/bob'/>
      </source>
    </description>
    <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='bufrag' pwd='bridgepasswordbridgepassword'>
      <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>{FINGERPRINT}</fingerprint>
      <candidate foundation='1' component='1' protocol='udp' priority='2130706431' ip='127.0.0.1'
                 port='9' type='host' generation='0' id='c1' network='0'/>
      <rtcp-mux/>
      <web-socket xmlns='http://jitsi.org/protocol/colibri' url='ws://127.0.0.1:9/colibri-ws/jvb1/m/alice?pwd=x'/>
    </transport>
  </content>
  <content creator='initiator' name='video' senders='both'>
    <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>
      <payload-type id='100' name='VP8' clockrate='90000'>
        <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack'/>
        <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack' subtype='pli'/>
        <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='ccm' subtype='fir'/>
        <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='goog-remb'/>
      </payload-type>
      <rtcp-mux/>
      <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='2001' name='jvb-v0'>
        <parameter name='cname' value='jvb'/><parameter name='msid' value='jvb-v0 jvb-v0-t'/>
      </source>
      <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='2002' name='jvb-v1'>
        <parameter name='cname' value='jvb'/><parameter name='msid' value='jvb-v1 jvb-v1-t'/>
      </source>
      <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='2003' name='jvb-v2'>
        <parameter name='cname' value='jvb'/><parameter name='msid' value='jvb-v2 jvb-v2-t'/>
      </source>
      <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='888' name='bob-v0'>
        <parameter name='cname' value='bobcname'/>
        <ssrc-info xmlns='http://jitsi.org/jitmeet' owner='{ROOM}/bob'/>
      </source>
    </description>
    <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='bufrag' pwd='bridgepasswordbridgepassword'>
      <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>{FINGERPRINT}</fingerprint>
      <candidate foundation='1' component='1' protocol='udp' priority='2130706431' ip='127.0.0.1'
                 port='9' type='host' generation='0' id='c1' network='0'/>
      <rtcp-mux/>
    </transport>
  </content>
  <group xmlns='urn:xmpp:jingle:apps:grouping:0' semantics='BUNDLE'>
    <content name='audio'/><content name='video'/>
  </group>
  <bridge-session xmlns='http://jitsi.org/protocol/focus' id='bs-1'/>
</jingle>
"""


def initiate() -> JingleAction:
    return jingle.parse_jingle(etree.fromstring(SESSION_INITIATE))


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


async def test_offer_from_session_initiate_has_one_transceiver_per_slot():
    ja = initiate()
    plan = plan_offer(ja, own_nick="alice")
    assert plan.transport.websocket_url.startswith("ws://127.0.0.1:9/colibri-ws/")
    # bob's sources are people, not slots: they go to remote_sources, not into the SDP
    assert {n: [s.ssrc for s in ss] for n, ss in plan.others.items()} == {"bob": [777, 888]}
    assert plan.mid_slot == {"audio": ("audio", 0), "audio1": ("audio", 1), "video": ("video", 0),
                             "video1": ("video", 1), "video2": ("video", 2)}
    assert plan.ssrc_slot[("video", 2003)] == 2 and plan.ssrc_slot[("audio", 1001)] == 0
    assert "a=ssrc:777" not in plan.sdp and "a=ssrc:2003 msid:jvb-v2 jvb-v2-t" in plan.sdp
    pc = new_pc()
    try:
        await pc.setRemoteDescription(RTCSessionDescription(plan.sdp, "offer"))
        transceivers = pc.getTransceivers()
        assert [(t.mid, t.kind) for t in transceivers] == [("audio", "audio"), ("audio1", "audio"),
                                                           ("video", "video"), ("video1", "video"),
                                                           ("video2", "video")]
        assert all(t.receiver.track is not None for t in transceivers)
    finally:
        await pc.close()


async def test_session_accept_from_an_aiortc_answer_round_trips():
    ja = initiate()
    plan = plan_offer(ja, own_nick="alice")
    pc = new_pc()
    try:
        await pc.setRemoteDescription(RTCSessionDescription(plan.sdp, "offer"))
        audio_sender = pc.addTrack(ToneTrack())
        video_sender = pc.addTrack(TestPatternTrack())
        await pc.setLocalDescription(await pc.createAnswer())
        sdp = pc.localDescription.sdp
        me = f"{ROOM}/alice"
        accept = session_accept(ja, plan.contents, sdp, me, "alice")
        wire = etree.tostring(jingle.jingle_element(accept))
        back = jingle.parse_jingle(etree.fromstring(wire))
    finally:
        await pc.close()
    assert (back.action, back.sid, back.initiator, back.responder) == ("session-accept", "s1", FOCUS, me)
    assert back.bundle == ["audio", "video"] and back.bridge_session == "bs-1"
    by_name = {c.name: c for c in back.contents}
    assert set(by_name) == {"audio", "video"}
    audio, video = by_name["audio"], by_name["video"]
    # our own streams, each in its kind's content, named and owned like Jitsi's
    assert [s.ssrc for s in audio.sources] == [audio_sender._ssrc]
    assert [s.ssrc for s in video.sources] == [video_sender._ssrc]
    for c, suffix in ((audio, "a0"), (video, "v0")):
        src = c.sources[0]
        assert src.kind == c.kind and src.name == f"alice-{suffix}" and src.owner == me
        assert src.cname and src.msid
        # the codecs of the offer
        offered = next(o for o in ja.contents if o.name == c.name)
        assert [(p.id, p.name) for p in c.media.payload_types] == [(p.id, p.name) for p in offered.media.payload_types]
        assert c.media.header_extensions == offered.media.header_extensions
    assert {g.semantics for g in video.groups} <= {"FID"}
    for g in video.groups:
        assert set(g.ssrcs) <= {s.ssrc for s in video.sources}
    # the answer's transport, in every content: DTLS client towards the bridge
    ufrag = next(line.split(":", 1)[1] for line in sdp.splitlines() if line.startswith("a=ice-ufrag:"))
    for c in back.contents:
        t = c.transport
        assert t.ufrag == ufrag and len(t.pwd) >= 22
        assert "sha-256" in {f.hash for f in t.fingerprints}
        assert {f.setup for f in t.fingerprints} == {"active"}
        assert t.candidates and all(cand.component == 1 for cand in t.candidates)
        assert t.websocket_url is None


async def test_data_content_round_trips_into_sdp_and_session_accept():
    """The focus's data content (no description, the bridge transport with an sctpmap) survives
    Jingle XML, becomes the offer's m=application section, and is accepted with our transport."""
    import dataclasses

    ja = initiate()
    bridge_transport = dataclasses.replace(ja.contents[0].transport, websocket_url=None, sctp_port=5000)
    ja.contents.append(Content("data", "application", transport=bridge_transport))
    ja.bundle.append("data")
    wire = etree.tostring(jingle.jingle_element(ja))
    assert b"urn:xmpp:jingle:transports:dtls-sctp:1" in wire
    ja = jingle.parse_jingle(etree.fromstring(wire))
    data = next(c for c in ja.contents if c.name == "data")
    assert data.kind == "application" and data.media is None and data.transport.sctp_port == 5000
    plan = plan_offer(ja, own_nick="alice")
    assert plan.data is not None and [c.name for c in plan.contents] == ["audio", "video"]
    assert "data" not in plan.mid_slot
    assert "a=group:BUNDLE audio audio1 video video1 video2 data" in plan.sdp
    assert "m=application 9 UDP/DTLS/SCTP webrtc-datachannel" in plan.sdp and "a=sctp-port:5000" in plan.sdp
    pc = new_pc()
    try:
        await pc.setRemoteDescription(RTCSessionDescription(plan.sdp, "offer"))
        pc.addTrack(ToneTrack())
        await pc.setLocalDescription(await pc.createAnswer())
        sdp = pc.localDescription.sdp
        assert "m=application" in sdp and pc.sctp is not None
        accept = session_accept(ja, plan.contents, sdp, f"{ROOM}/alice", "alice", plan.data)
        back = jingle.parse_jingle(etree.fromstring(etree.tostring(jingle.jingle_element(accept))))
    finally:
        await pc.close()
    assert back.bundle == ["audio", "video", "data"]
    data = next(c for c in back.contents if c.name == "data")
    assert data.kind == "application" and not data.sources and data.transport.sctp_port == 5000
    assert data.transport.ufrag == next(c for c in back.contents if c.name == "audio").transport.ufrag


def test_offers_without_media_or_transport_are_refused():
    ja = initiate()
    no_media = JingleAction("session-initiate", "s2", contents=[Content("data", "application",
                                                                        transport=ja.contents[0].transport)])
    with pytest.raises(StanzaError) as exc:
        plan_offer(no_media)
    assert exc.value.condition == "bad-request"
    no_transport = JingleAction("session-initiate", "s3", contents=[
        Content(c.name, c.kind, c.media, c.sources) for c in ja.contents])
    with pytest.raises(StanzaError):
        plan_offer(no_transport)


# ---- Jingle IQs against a participant with a captured stream --------------------------------
class Wire:
    def __init__(self) -> None:
        self.sent: list = []


@pytest.fixture
def alice():
    p = Participant("127.0.0.1", 1, "room1", nick="alice")
    c = slixmpp.ClientXMPP("localhost", "")
    wire = Wire()
    c.send = lambda stanza, *a, **k: wire.sent.append(stanza)  # type: ignore[method-assign]
    p.client = c
    p._in_room = True
    p._focus_real = "focus@auth.localhost/focus"  # what the room's presence of `focus` shows
    p.wire = wire  # type: ignore[attr-defined]
    return p


def jingle_iq(p: Participant, ja: JingleAction | str, frm: str = FOCUS) -> slixmpp.Iq:
    iq = p.client.make_iq_set(ito=p.occupant_jid, ifrom=frm)
    el = etree.fromstring(ja) if isinstance(ja, str) else jingle.jingle_element(ja)
    iq.xml.append(ET.fromstring(etree.tostring(el)))
    return iq


def last_answer(p: Participant) -> tuple[str, str | None, ET.Element | None]:
    stanza = p.wire.sent[-1]  # type: ignore[attr-defined]
    err = stanza.xml.find("{jabber:client}error")
    cond = None
    if err is not None:
        cond = next(etree.QName(c.tag).localname for c in err
                    if c.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}"))
    return stanza["type"], cond, err


def sources_action(action: str, sid: str, owner: str, ssrcs: dict[str, list[int]]) -> JingleAction:
    contents = [Content(kind, kind, None, [Source(s, kind, owner=owner, name=f"x-{kind[0]}0", msid="m t",
                                                  cname="c") for s in ss]) for kind, ss in ssrcs.items()]
    return JingleAction(action, sid, initiator=FOCUS, contents=contents)


async def test_jingle_iqs_are_acknowledged_or_refused_as_xep_0166_says(alice):
    p = alice
    p.sid = "s1"
    # unknown session
    await p._on_jingle_iq(jingle_iq(p, sources_action("source-add", "nope", f"{ROOM}/bob", {"audio": [5]})))
    typ, cond, err = last_answer(p)
    assert (typ, cond) == ("error", "item-not-found")
    assert err.find("{urn:xmpp:jingle:errors:1}unknown-session") is not None
    # an action a participant does not take
    await p._on_jingle_iq(jingle_iq(p, JingleAction("content-modify", "s1", contents=[])))
    assert last_answer(p)[:2] == ("error", "bad-request")
    await p._on_jingle_iq(jingle_iq(p, "<jingle xmlns='urn:xmpp:jingle:1' action='dance' sid='s1'/>"))
    assert last_answer(p)[:2] == ("error", "bad-request")
    # only the focus starts sessions here
    await p._on_jingle_iq(jingle_iq(p, SESSION_INITIATE, frm=f"{ROOM}/mallory"))
    assert last_answer(p)[:2] == ("error", "not-acceptable")
    await p._on_jingle_iq(jingle_iq(p, SESSION_INITIATE, frm="focus@auth.localhost/focus"))  # not via the room
    assert last_answer(p)[:2] == ("error", "not-acceptable")
    # room/focus, but the occupant there is not the focus account (a guest took the nick)
    p._focus_real = "d00dfeed@localhost/x"
    await p._on_jingle_iq(jingle_iq(p, SESSION_INITIATE))
    typ, cond, err = last_answer(p)
    assert (typ, cond) == ("error", "forbidden")
    assert "not the conference focus" in err.findtext("{urn:ietf:params:xml:ns:xmpp-stanzas}text")
    p._focus_real = ""  # no presence from `focus` seen: nobody to trust
    await p._on_jingle_iq(jingle_iq(p, SESSION_INITIATE))
    assert last_answer(p)[:2] == ("error", "forbidden")
    # the conference IQ answer names the focus account: that one, not the default, is trusted
    p.focus_jid, p._focus_real = "focus2@auth.localhost/x", "focus@auth.localhost/focus"
    await p._on_jingle_iq(jingle_iq(p, SESSION_INITIATE))
    assert last_answer(p)[:2] == ("error", "forbidden")
    assert p.sessions == 0 and p.sid == "s1"
    p.focus_jid = ""

    # source-add / source-remove: acknowledged, tracked per nick, awaitable
    waiting = asyncio.ensure_future(p.wait_source_add("bob", timeout=5))
    await asyncio.sleep(0)
    await p._on_jingle_iq(jingle_iq(p, sources_action("source-add", "s1", f"{ROOM}/bob",
                                                      {"audio": [11], "video": [12, 13]})))
    assert last_answer(p)[:2] == ("result", None)
    got = await waiting
    assert sorted(s.ssrc for s in got) == [11, 12, 13]
    assert {s.kind for s in p.remote_sources["bob"]} == {"audio", "video"}
    await p._on_jingle_iq(jingle_iq(p, sources_action("source-add", "s1", f"{ROOM}/carol", {"audio": [21]})))
    await p._on_jingle_iq(jingle_iq(p, sources_action("source-remove", "s1", f"{ROOM}/bob", {"video": [12, 13]})))
    assert [s.ssrc for s in p.remote_sources["bob"]] == [11]
    with pytest.raises(TimeoutError):
        await p.wait_source_remove("bob", timeout=0.1)  # audio is still there
    await p._on_jingle_iq(jingle_iq(p, sources_action("source-remove", "s1", f"{ROOM}/bob", {"audio": [11]})))
    await p.wait_source_remove("bob", timeout=1)
    assert set(p.remote_sources) == {"carol"}

    # session-terminate for a bridge move: acknowledged, media down, ready for a new offer
    await p._on_jingle_iq(jingle_iq(p, JingleAction("session-terminate", "s1", initiator=FOCUS,
                                                    reason="failed-application", reason_text="bridge moved")))
    assert last_answer(p)[:2] == ("result", None)
    assert p.sid is None and not p._ended
    await until(lambda: p.pc is None, 5, "the session to close (in a task of its own)")
    await p._on_jingle_iq(jingle_iq(p, sources_action("source-add", "s1", f"{ROOM}/bob", {"audio": [5]})))
    assert last_answer(p)[:2] == ("error", "item-not-found")


def test_bridge_channel_messages_map_slots_and_speakers(alice):
    p = alice
    p._ssrc_slot = {("video", 2001): 0, ("video", 2002): 1, ("audio", 1001): 0}
    p.slot_owner = {("video", 0): None, ("video", 1): None, ("audio", 0): None}
    p._on_channel({"colibriClass": "ServerHello", "version": "1"})
    p._on_channel({"colibriClass": "VideoSourcesMap", "mappedSources": [
        {"source": "jvb-v0", "owner": None, "ssrc": 2001, "slot": 0},
        {"source": "jvb-v1", "owner": "bob", "ssrc": 2002, "slot": 1}]})
    p._on_channel({"colibriClass": "AudioSourcesMap", "mappedSources": [
        {"source": "jvb-a0", "owner": "bob", "ssrc": 1001, "slot": 0}, "junk"]})
    assert p.slot_owner == {("video", 0): None, ("video", 1): "bob", ("audio", 0): "bob"}
    assert p._slot_of("bob", "video") == ("video", 1)
    p._on_channel({"colibriClass": "DominantSpeakerEndpointChangeEvent", "dominantSpeakerEndpoint": "bob"})
    assert p.dominant_speaker == "bob"
    p._on_channel({"colibriClass": "EndpointMessage", "from": "bob", "msgPayload": {"hi": 1}})
    assert p.endpoint_messages.get_nowait()["msgPayload"] == {"hi": 1}


# ---- received media: relays, frame counting, recording --------------------------------------
async def test_slot_pumps_count_frames_relay_them_and_record(alice, tmp_path):
    p = alice
    p._mid_slot = {"audio": ("audio", 0), "video": ("video", 0), "video1": ("video", 1)}
    p.slot_owner = {("audio", 0): "bob", ("video", 0): None, ("video", 1): "bob"}
    sources = {("audio", 0): ToneTrack(), ("video", 1): TestPatternTrack(160, 120)}
    pumps = [asyncio.ensure_future(p._pump(key, track)) for key, track in sources.items()]
    try:
        await p.wait_frames("bob", "video", 3, timeout=5)
        await p.wait_frames("bob", "audio", 5, timeout=5)
        with pytest.raises(TimeoutError):
            await p.wait_frames("carol", "video", 1, timeout=0.2)
        track = p.track_for("bob", "video")
        assert isinstance(track, SlotTrack) and track.kind == "video"
        frame = await asyncio.wait_for(track.recv(), 2)
        assert (frame.width, frame.height) == (160, 120)
        track.stop()
        assert track not in p._subs[("video", 1)]
        assert p.track_for("nobody", "audio") is None

        path = tmp_path / "out.mkv"
        await p.record(str(path))
        # record until enough media went by: counted by the pumps, as frames arrive
        await p.wait_frames("bob", "video", 20, timeout=10)
        await p.wait_frames("bob", "audio", 30, timeout=10)
    finally:
        await p.stop_recording()
        for t in pumps:
            t.cancel()
        for track in sources.values():
            track.stop()
    container = av.open(str(path))
    kinds = [s.type for s in container.streams]
    assert sorted(kinds) == ["audio", "video", "video"]
    packets: dict[str, int] = {}
    for packet in container.demux():
        if packet.size:
            packets[packet.stream.type] = packets.get(packet.stream.type, 0) + 1
    container.close()
    assert packets.get("audio", 0) > 10 and packets.get("video", 0) > 5


def test_recording_time_fills_silence_and_never_goes_back():
    t = SlotTrack("audio", 0, restamp=True)

    def audio(pts: int) -> av.AudioFrame:
        f = av.AudioFrame.from_ndarray(np.ones((1, 960 * 2), dtype=np.int16), format="s16", layout="stereo")
        f.sample_rate = 48000
        f.pts = pts
        f.time_base = fractions.Fraction(1, 48000)
        return f

    out = list(t._restamped(audio(10_000)))
    first = out[0].pts
    out = list(t._restamped(audio(10_960)))
    assert [f.pts for f in out] == [first + 960]
    # the bridge dropped half a second of silence: it comes back as silent samples
    out = list(t._restamped(audio(10_960 + 960 + 24_000)))
    assert [f.samples for f in out] == [24_000, 960] and out[0].pts == first + 1920
    assert not out[0].to_ndarray().any()
    # a sender restarting its timestamps continues the timeline
    out = list(t._restamped(audio(5)))
    assert out[-1].pts >= first + 1920 + 24_000 + 960

    v = SlotTrack("video", 0, restamp=True)
    frames = []
    for pts in (90_000, 93_000, 93_000, 1_000):
        f = av.VideoFrame(64, 48, "yuv420p")
        f.pts, f.time_base = pts, fractions.Fraction(1, 90000)
        frames += list(v._restamped(f))
    stamps = [f.pts for f in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == 4


async def test_a_closed_peer_connection_leaves_the_source_running():
    """aiortc stops a sender's track with its PeerConnection; a participant moved to another
    bridge must keep sending from the same source on the next one."""
    from jitsi_py.participant.media import SourceFeed

    tone = ToneTrack()
    pc1, pc2 = new_pc(), new_pc()
    try:
        pc1.addTrack(SourceFeed(tone))
        pc2.addTransceiver("audio", direction="recvonly")
        await pc2.setLocalDescription(await pc2.createOffer())
        await pc1.setRemoteDescription(pc2.localDescription)
        await pc1.setLocalDescription(await pc1.createAnswer())
        await pc2.setRemoteDescription(pc1.localDescription)
        received = pc2.getTransceivers()[0].receiver.track
        await asyncio.wait_for(received.recv(), 10)
    finally:
        await pc1.close()
        await pc2.close()
    assert tone.readyState == "live"
    assert (await asyncio.wait_for(tone.recv(), 2)).samples == 960


async def test_test_pattern_moves_and_tone_is_audible():
    video = TestPatternTrack(64, 48)
    a, b = await video.recv(), await video.recv()
    assert (a.width, a.height) == (64, 48)
    assert not np.array_equal(a.to_ndarray(format="rgb24"), b.to_ndarray(format="rgb24"))
    tone = ToneTrack(amplitude=0.3)
    samples = (await tone.recv()).to_ndarray()
    assert np.abs(samples).max() > 0.25 * 32767
    video.stop()
    tone.stop()


# ---- the join command ------------------------------------------------------------------------
def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jitsi_py", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_join_help():
    res = run_cli("join", "--help")
    assert res.returncode == 0
    for option in ("--server", "--domain", "--nick", "--name", "--send", "--test-pattern", "--record",
                   "--cafile", "--insecure", "--config"):
        assert option in res.stdout


def test_join_against_a_closed_port_fails_clearly():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = run_cli("join", "room1", "--server", f"127.0.0.1:{port}", "--insecure", "--timeout", "10")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr + res.stdout
    assert f"cannot connect to 127.0.0.1:{port}" in res.stderr


def test_join_bad_arguments_fail_clearly(tmp_path):
    res = run_cli("join", "room1", "--server", "nonsense")
    assert res.returncode == 2 and "HOST:PORT" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("join", "room1", "--cafile", str(tmp_path / "missing.crt"))
    assert res.returncode == 2 and "missing.crt" in res.stderr
    res = run_cli("join", "room1", "--send", str(tmp_path / "missing.mp4"), "--insecure")
    assert res.returncode == 2 and "cannot open" in res.stderr and "Traceback" not in res.stderr
