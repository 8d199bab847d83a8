"""COLIBRI2 and the shared Jingle pieces: parse(serialize(x)) == x, and bad input is a clear error."""
from __future__ import annotations

import pytest
from lxml import etree

from jitsi_protocols import colibri2
from jitsi_protocols.model import (Candidate, Fingerprint, HeaderExtension, IceTransport, Media,
                                           PayloadType, Source, SourceGroup)
from jitsi_base.errors import StanzaError


def transport() -> IceTransport:
    return IceTransport(ufrag="u1", pwd="p" * 22,
                        fingerprints=[Fingerprint("sha-256", "AB:CD:EF", "actpass")],
                        candidates=[Candidate("1", 1, "udp", 2130706431, "127.0.0.1", 10000, "host", id="c1")],
                        websocket_url="ws://127.0.0.1:8080/colibri-ws/jvb1/c/e?pwd=x")


def test_conference_modify_round_trip():
    req = colibri2.ConferenceModify(meeting_id="m-1", name="room@conference.localhost", create=True, endpoints=[
        colibri2.Endpoint(id="ep1", create=True, stats_id="Shanna", sctp=True, capabilities=["ssrc-rewriting"], media=[
            Media("audio", [PayloadType(111, "opus", 48000, 2, {"useinbandfec": "1"}, [("transport-cc", "")])],
                  [HeaderExtension(1, "urn:ietf:params:rtp-hdrext:ssrc-audio-level")]),
            Media("video", [PayloadType(100, "VP8", 90000, 1, {}, [("nack", "pli"), ("ccm", "fir")]),
                            PayloadType(96, "rtx", 90000, 1, {"apt": "100"})])]),
        colibri2.Endpoint(id="ep2", transport=transport(), sources_given=True,
                          sources=[Source(11, "video", owner="ep2", name="ep2-v0", msid="s t", cname="c"),
                                   Source(12, "video", owner="ep2", name="ep2-v0", msid="s t", cname="c"),
                                   Source(21, "audio", owner="ep2", name="ep2-a0", cname="c")],
                          groups=[SourceGroup("FID", [11, 12])]),
        colibri2.Endpoint(id="ep3", expire=True)])
    xml = etree.tostring(colibri2.modify_element(req))
    back = colibri2.parse_modify(etree.fromstring(xml))
    assert back.endpoints[1].transport == req.endpoints[1].transport
    assert back == req


def test_conference_modified_round_trip():
    res = colibri2.ConferenceModified(meeting_id="m-1", endpoints=[
        colibri2.Endpoint(id="ep1", transport=transport(), sctp=True,
                          sources=[Source(1001, "audio", owner="ep1", name="jvb-a-slot0"),
                                   Source(2001, "video", owner="ep1", name="jvb-v-slot0")])],
        feedback_sources=[Source(1, "audio", owner="jvb", name="jvb-a0"), Source(2, "video", owner="jvb", name="jvb-v0")])
    back = colibri2.parse_modified(etree.fromstring(etree.tostring(colibri2.modified_element(res))))
    assert back.endpoints[0].transport == res.endpoints[0].transport
    assert [s.ssrc for s in back.endpoints[0].sources] == [1001, 2001]
    assert [(s.ssrc, s.name) for s in back.feedback_sources] == [(1, "jvb-a0"), (2, "jvb-v0")]


def test_relay_round_trip():
    """Cascading: relays in a request (with the endpoints behind them) and in the answer."""
    req = colibri2.ConferenceModify(meeting_id="m-1", relays=[
        colibri2.Relay(id="jvb2", create=True, ice_controlling=False, transport=transport(), endpoints=[
            colibri2.Endpoint(id="far1", media=[Media("audio", [PayloadType(111, "opus", 48000, 2)])],
                              sources_given=True, sources=[Source(31, "audio", owner="far1", name="far1-a0")]),
            colibri2.Endpoint(id="far2", expire=True)]),
        colibri2.Relay(id="jvb3", expire=True)])
    back = colibri2.parse_modify(etree.fromstring(etree.tostring(colibri2.modify_element(req))))
    assert back.relays[0].transport == req.relays[0].transport
    assert back == req
    res = colibri2.ConferenceModified(meeting_id="m-1", relays=[colibri2.Relay(id="jvb2", transport=transport())])
    back_res = colibri2.parse_modified(etree.fromstring(etree.tostring(colibri2.modified_element(res))))
    assert back_res.relays[0].id == "jvb2" and back_res.relays[0].transport == res.relays[0].transport


@pytest.mark.parametrize("xml, text", [
    ("<conference-modify xmlns='jitsi:colibri2' meeting-id='m'><relay/></conference-modify>", "relay needs an id"),
    ("<conference-modify xmlns='jitsi:colibri2'/>", "meeting-id"),
    ("<conference-modify xmlns='jitsi:colibri2' meeting-id='m'><endpoint/></conference-modify>", "id"),
    ("<conference-modify xmlns='jitsi:colibri2' meeting-id='m'><endpoint id='e'><media type='text'/></endpoint></conference-modify>", "text"),
    ("<conference-modify xmlns='jitsi:colibri2' meeting-id='m'><endpoint id='e'><sources><media-source type='video'>"
     "<source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='x'/></media-source></sources></endpoint></conference-modify>", "ssrc"),
    ("<conference-modify xmlns='jitsi:colibri2' meeting-id='m'><endpoint id='e'><sources><media-source type='video'>"
     "<source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='99999999999'/></media-source></sources></endpoint></conference-modify>", "range"),
    ("<conference-modify xmlns='jitsi:colibri2' meeting-id='m'><endpoint id='e'><transport><transport "
     "xmlns='urn:xmpp:jingle:transports:ice-udp:1'><candidate foundation='1' component='1' ip='1.2.3.4' port='p' "
     "priority='1'/></transport></transport></endpoint></conference-modify>", "port"),
    ("<other xmlns='jitsi:colibri2'/>", "conference-modify"),
    ("<conference-modify xmlns='jitsi:colibri2' meeting-id='m'><endpoint id='e'><capability/></endpoint>"
     "</conference-modify>", "capability needs a name"),
    ("<conference-modify xmlns='jitsi:colibri2' meeting-id='m'><endpoint id='e'>" + "<capability name='x'/>" * 17
     + "</endpoint></conference-modify>", "16 per endpoint"),
])
def test_bad_colibri2_is_bad_request(xml, text):
    with pytest.raises(StanzaError) as exc:
        colibri2.parse_modify(etree.fromstring(xml))
    assert exc.value.condition == "bad-request"
    assert text in (exc.value.text or "")


def test_jingle_round_trip_and_errors():
    from jitsi_protocols import jingle
    from jitsi_protocols.model import Content
    from jitsi_protocols.sdp import default_media
    audio, video = default_media()
    ja = jingle.JingleAction(action="session-initiate", sid="s1", initiator="r@conference.localhost/focus",
                             contents=[Content("audio", "audio", audio, [Source(1, "audio", owner="jvb", name="jvb-a0",
                                                                                  msid="m t", cname="jvb")],
                                               transport=transport()),
                                       Content("video", "video", video,
                                               [Source(2, "video", owner="r@conference.localhost/ab12", msid="v t",
                                                       cname="x"), Source(3, "video", owner="r@conference.localhost/ab12")],
                                               [SourceGroup("FID", [2, 3])], transport=transport())],
                             bundle=["audio", "video"], bridge_session="bs-1")
    back = jingle.parse_jingle(etree.fromstring(etree.tostring(jingle.jingle_element(ja))))
    assert back == ja
    term = jingle.JingleAction(action="session-terminate", sid="s1", reason="success", reason_text="bye")
    assert jingle.parse_jingle(etree.fromstring(etree.tostring(jingle.jingle_element(term)))) == term
    for bad in ("<jingle xmlns='urn:xmpp:jingle:1' action='dance' sid='x'/>",
                "<jingle xmlns='urn:xmpp:jingle:1' action='session-accept'/>",
                "<jingle xmlns='urn:xmpp:jingle:1' action='session-accept' sid='x'><content name='a'>"
                "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='smell'/></content></jingle>"):
        with pytest.raises(StanzaError) as exc:
            jingle.parse_jingle(etree.fromstring(bad))
        assert exc.value.condition == "bad-request"


def test_focus_conference_iq():
    from jitsi_protocols import focus_iq
    req = focus_iq.ConferenceRequest(room="myroom@conference.localhost", machine_uid="m", properties={"a": "b"})
    assert focus_iq.parse_request(etree.fromstring(etree.tostring(focus_iq.request_element(req)))) == req
    with pytest.raises(StanzaError) as exc:
        focus_iq.parse_request(etree.fromstring(
            "<conference xmlns='http://jitsi.org/protocol/focus' room='r@elsewhere'/>"), "conference.localhost")
    assert exc.value.condition == "not-acceptable"
    with pytest.raises(StanzaError):
        focus_iq.parse_request(etree.fromstring("<conference xmlns='http://jitsi.org/protocol/focus' room='nonode'/>"))
