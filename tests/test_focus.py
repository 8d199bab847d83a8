"""The focus at the protocol level: conference IQ, room ownership, Jingle offers, source
announcements and the errors for bad Jingle, with plain slixmpp clients playing participants."""
from __future__ import annotations

import asyncio
import ssl
import xml.etree.ElementTree as ET

import pytest
import slixmpp
from lxml import etree
from slixmpp import JID
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import make_config, until
from jitsi_py.stack import Stack
from jitsi_protocols import focus_iq, jingle
from jitsi_protocols.model import Candidate, Content, Fingerprint, IceTransport, Source

ROOMS = "conference.localhost"


@pytest.fixture
async def stack(tmp_path):
    s = Stack(make_config(server__data_dir=str(tmp_path / "data")))
    await s.start()
    yield s
    await s.stop()


class Probe:
    """A participant that speaks the signalling but never sends media."""

    def __init__(self, client: slixmpp.ClientXMPP) -> None:
        self.c = client
        self.jingle: asyncio.Queue = asyncio.Queue()
        client.register_handler(Callback("jingle", MatchXPath("{jabber:client}iq/{urn:xmpp:jingle:1}jingle"),
                                         self._on_jingle))

    def _on_jingle(self, iq) -> None:
        ja = jingle.parse_jingle(etree.fromstring(ET.tostring(iq.xml.find("{urn:xmpp:jingle:1}jingle"))))
        iq.reply(clear=True).send()
        self.jingle.put_nowait((iq["from"], ja))

    async def next(self, action: str, timeout: float = 10.0):
        while True:
            frm, ja = await asyncio.wait_for(self.jingle.get(), timeout)
            if ja.action == action:
                return frm, ja

    async def send(self, room: str, ja: jingle.JingleAction) -> None:
        iq = self.c.make_iq_set(ito=f"{room}/focus")
        iq.xml.append(ET.fromstring(etree.tostring(jingle.jingle_element(ja))))
        await iq.send(timeout=10)


async def guest(stack: Stack, clients) -> Probe:
    c = slixmpp.ClientXMPP("localhost", "")
    c.ssl_context = ssl.create_default_context(cafile=str(stack.cert_path))
    c.enable_direct_tls = False
    c.register_plugin("xep_0045")
    # no caps in its presence, as our own clients: slixmpp's caps (which its MUC plugin brings)
    # would name no Jingle RTP, and the focus would take it for a text-only client
    c.plugin["xep_0115"].broadcast = False
    started = asyncio.get_running_loop().create_future()
    c.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    clients.all.append(c)
    c.connect(*stack.server.c2s_address)
    await asyncio.wait_for(started, 10)
    return Probe(c)


async def conference(probe: Probe, room: str) -> ET.Element:
    iq = probe.c.make_iq_set(ito="focus.localhost")
    iq.xml.append(ET.fromstring(etree.tostring(focus_iq.request_element(focus_iq.ConferenceRequest(room)))))
    res = await iq.send(timeout=10)
    return res.xml.find("{http://jitsi.org/protocol/focus}conference")


def fake_accept(ja: jingle.JingleAction, occupant: str, ssrc_base: int) -> jingle.JingleAction:
    transport = IceTransport(ufrag="abcd", pwd="p" * 24, fingerprints=[Fingerprint("sha-256", "AA:BB", "active")],
                             candidates=[Candidate("1", 1, "udp", 2130706431, "127.0.0.1", 9, "host")])
    contents = [Content(c.name, c.kind, c.media, [Source(ssrc_base + i, c.kind, msid=f"s{ssrc_base} t{i}", cname="x")],
                        [], "both", transport) for i, c in enumerate(ja.contents) if c.kind in ("audio", "video")]
    return jingle.JingleAction(action="session-accept", sid=ja.sid, responder=occupant, contents=contents,
                               bundle=[c.name for c in contents], bridge_session=ja.bridge_session)


async def test_offer_accept_source_add_remove_and_bad_jingle(stack, clients):
    room = f"call@{ROOMS}"
    a, b = await guest(stack, clients), await guest(stack, clients)
    # the conference IQ: ready, with the focus's JID, after the focus is in the room as owner
    res = await conference(a, room)
    assert res.get("ready") == "true" and res.get("focusjid") == "focus@auth.localhost"
    pres, *_ = await a.c.plugin["xep_0045"].join_muc_wait(JID(room), "aaaa1111", timeout=10)
    muc_room = stack.server.plugins[-1].service.rooms["call"]
    assert muc_room.affiliation("focus@auth.localhost") == "owner"
    assert muc_room.config.whois == "anyone"
    assert a.jingle.empty()  # alone: no media session yet
    await conference(b, room)
    await b.c.plugin["xep_0045"].join_muc_wait(JID(room), "bbbb2222", timeout=10)
    # both get an offer from the focus's occupant JID: bridge transport and their slots
    frm, offer_a = await a.next("session-initiate")
    _, offer_b = await b.next("session-initiate")
    assert frm == JID(f"{room}/focus")
    video = next(c for c in offer_a.contents if c.name == "video")
    slots = [s for s in video.sources if s.msid]
    assert len(slots) == stack.cfg.bridge.last_n and all(s.owner == "jvb" for s in slots)
    assert video.transport.fingerprints[0].setup == "actpass"
    assert "/colibri-ws/jvb1/" in video.transport.websocket_url
    assert offer_a.bundle == ["audio", "video", "data"] and offer_a.bridge_session
    # the data channel's content: no description, the same transport with the bridge's SCTP port
    data = next(c for c in offer_a.contents if c.name == "data")
    assert data.kind == "application" and data.media is None and not data.sources
    assert data.transport.sctp_port == 5000 and data.transport.ufrag == video.transport.ufrag
    assert video.transport.sctp_port is None
    # a accepts; b hears about a's sources, owned by a's occupant JID
    await a.send(room, fake_accept(offer_a, f"{room}/aaaa1111", 1000))
    _, added = await b.next("source-add")
    owners = {s.owner for c in added.contents for s in c.sources}
    assert owners == {f"{room}/aaaa1111"}
    assert {s.ssrc for c in added.contents for s in c.sources} == {1000, 1001}
    conf = stack.bridge.conferences[stack.focus.conferences[room].meeting_id]
    assert set(conf.endpoints["aaaa1111"].sources) == {1000, 1001}

    # bad Jingle: unknown sid, accepting twice, someone else's sid, nonsense action, no transport
    async def refused(probe: Probe, ja: jingle.JingleAction) -> IqError:
        with pytest.raises(IqError) as exc:
            await probe.send(room, ja)
        return exc.value
    err = await refused(a, jingle.JingleAction(action="transport-info", sid="nope"))
    assert err.condition == "item-not-found"
    assert err.iq.xml.find(".//{urn:xmpp:jingle:errors:1}unknown-session") is not None
    err = await refused(a, fake_accept(offer_a, f"{room}/aaaa1111", 1000))
    assert err.condition == "unexpected-request"
    err = await refused(a, jingle.JingleAction(action="transport-info", sid=offer_b.sid))  # b's session
    assert err.condition == "item-not-found"
    no_transport = fake_accept(offer_b, f"{room}/bbbb2222", 2000)
    for c in no_transport.contents:
        c.transport = None
    err = await refused(b, no_transport)
    assert err.condition == "bad-request"
    bad = b.c.make_iq_set(ito=f"{room}/focus")
    bad.xml.append(ET.fromstring(f"<jingle xmlns='urn:xmpp:jingle:1' action='dance' sid='{offer_b.sid}'/>"))
    with pytest.raises(IqError) as exc:
        await bad.send(timeout=10)
    assert exc.value.condition == "bad-request"
    # after all that, b's session still works
    await b.send(room, fake_accept(offer_b, f"{room}/bbbb2222", 2000))
    _, added = await a.next("source-add")
    assert {s.ssrc for c in added.contents for s in c.sources} == {2000, 2001}

    # a leaves: b gets source-remove, the bridge forgets a
    a.c.plugin["xep_0045"].leave_muc(JID(room), "aaaa1111")
    _, removed = await b.next("source-remove")
    assert {s.ssrc for c in removed.contents for s in c.sources} == {1000, 1001}
    await until(lambda: "aaaa1111" not in conf.endpoints, 10, "the bridge to forget aaaa1111")


async def test_conference_iq_errors(stack, clients):
    a = await guest(stack, clients)
    for room, condition in (("x@elsewhere.localhost", "not-acceptable"), ("noroom", "bad-request")):
        iq = a.c.make_iq_set(ito="focus.localhost")
        iq.xml.append(ET.fromstring(f"<conference xmlns='http://jitsi.org/protocol/focus' room='{room}'/>"))
        with pytest.raises(IqError) as exc:
            await iq.send(timeout=10)
        assert exc.value.condition == condition


async def test_client_of_neither_contract_gets_an_error_and_no_session(stack, clients):
    """A client that tells Jingle RTP but not SSRC rewriting (lib-jitsi-meet in its older mode)
    would show black tiles: its conference request is refused with a reason, and if it joins the
    room anyway it gets no offer while a client that tells no features gets one."""
    room = f"oldmode@{ROOMS}"
    old, ours = await guest(stack, clients), await guest(stack, clients)
    old.c.register_plugin("xep_0030")
    for feature in ("urn:xmpp:jingle:1", "urn:xmpp:jingle:apps:rtp:1", "http://jitsi.org/source-name"):
        old.c.plugin["xep_0030"].add_feature(feature)
    # its conference request (lib-jitsi-meet's carries visitors-version): Jicofo's reservation error
    iq = old.c.make_iq_set(ito="focus.localhost")
    iq.xml.append(ET.fromstring(etree.tostring(focus_iq.request_element(
        focus_iq.ConferenceRequest(room, properties={"visitors-version": "1"})))))
    with pytest.raises(IqError) as exc:
        await iq.send(timeout=10)
    assert "needs SSRC rewriting" in exc.value.text
    assert exc.value.iq.xml.find("{jabber:client}error/{http://jitsi.org/protocol/focus}reservation-error") is not None
    assert room not in stack.focus.conferences
    # our kind of client (no such property, no features) is served as before
    assert (await conference(ours, room)).get("ready") == "true"
    # the old client joins the room anyway, with caps: it is asked for its features and refused
    pres = old.c.make_presence(pto=f"{room}/old")
    ET.SubElement(pres.xml, "{http://jabber.org/protocol/muc}x")
    ET.SubElement(pres.xml, "{http://jabber.org/protocol/caps}c", hash="sha-1", node="", ver="")
    pres.send()
    conf = stack.focus.conferences[room]
    await until(lambda: "old" in conf.participants and conf.participants["old"].state == "refused", 10,
                "the focus to refuse the old client")
    await ours.c.plugin["xep_0045"].join_muc_wait(JID(room), "ours", timeout=10)
    frm, offer = await ours.next("session-initiate")
    assert frm == JID(f"{room}/focus") and offer.contents
    assert old.jingle.empty() and conf.participants["old"].state == "refused"
    meeting = stack.bridge.conferences[conf.meeting_id]
    assert set(meeting.endpoints) == {"ours"}


async def test_moderation_first_participant_owns_mutes_and_start_muted(tmp_path, clients):
    s = Stack(make_config(server__data_dir=str(tmp_path / "data"), focus__start_audio_muted=1))
    await s.start()
    try:
        room = f"mod@{ROOMS}"
        a, b = await guest(s, clients), await guest(s, clients)
        await conference(a, room)
        promoted = asyncio.get_running_loop().create_future()
        a.c.add_event_handler("groupchat_presence", lambda p: (
            p["from"].resource == "first111" and p["muc"]["role"] == "moderator" and not promoted.done()
            and promoted.set_result(True)))
        await a.c.plugin["xep_0045"].join_muc_wait(JID(room), "first111", timeout=10)
        await asyncio.wait_for(promoted, 10)  # auto-owner: the first one in runs the meeting
        await conference(b, room)
        await b.c.plugin["xep_0045"].join_muc_wait(JID(room), "second22", timeout=10)
        _, offer_a = await a.next("session-initiate")
        _, offer_b = await b.next("session-initiate")
        assert offer_a.start_muted is None
        assert offer_b.start_muted == (True, False)  # audio muted after the first participant
        muted = asyncio.get_running_loop().create_future()
        b.c.register_handler(Callback("mute", MatchXPath("{jabber:client}iq/{http://jitsi.org/jitmeet/audio}mute"),
                                      lambda iq: (iq.reply(clear=True).send(), muted.done() or muted.set_result(iq))))
        iq = a.c.make_iq_set(ito=f"{room}/focus")
        ET.SubElement(iq.xml, "{http://jitsi.org/jitmeet/audio}mute", jid=f"{room}/second22").text = "true"
        await iq.send(timeout=10)
        order = await asyncio.wait_for(muted, 10)
        assert order["from"] == JID(f"{room}/focus")
        # a participant who is not a moderator may not mute others
        iq = b.c.make_iq_set(ito=f"{room}/focus")
        ET.SubElement(iq.xml, "{http://jitsi.org/jitmeet/audio}mute", jid=f"{room}/first111").text = "true"
        with pytest.raises(IqError) as exc:
            await iq.send(timeout=10)
        assert exc.value.condition == "forbidden"
        # the owner leaves: the meeting keeps a moderator, the one who has been there longest
        took_over = asyncio.get_running_loop().create_future()
        b.c.add_event_handler("groupchat_presence", lambda p: (
            p["from"].resource == "second22" and p["muc"]["role"] == "moderator" and not took_over.done()
            and took_over.set_result(True)))
        a.c.plugin["xep_0045"].leave_muc(JID(room), "first111")
        await asyncio.wait_for(took_over, 10)
    finally:
        await s.stop()
