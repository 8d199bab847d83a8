"""Fuzzing the conference protocols: Jingle, COLIBRI2 and the focus's conference IQ to models
(jitsi_protocols/), and SDP answers to models. Element trees are generated from the
shapes the parsers expect, with attributes missing, garbage or out of range and unexpected
children; the only way out is StanzaError (for SDP: ValueError), never IndexError, TypeError or
a model with values the rest of the stack cannot use. Budgets: tests/fuzzing.py."""
from __future__ import annotations

import functools

import pytest

from hypothesis import example, given
from hypothesis import strategies as st
from lxml import etree

from fuzzing import attr_value, budget, jids, numbers, present, watchdog, xml_text
from jitsi_protocols import colibri2, focus_iq, jingle, sdp
from jitsi_protocols.model import Candidate, Content, Fingerprint, IceTransport, Source, SourceGroup
from jitsi_protocols.xml import (COLIBRI, DTLS, HDREXT, ICE_UDP, JITMEET, RTCP_FB, RTP, SCTP, SSMA,
                                         parse_candidate)
from jitsi_base.errors import StanzaError

J, C2, FOCUS = jingle.NS, colibri2.NS, focus_iq.NS
GROUPING, START_MUTED = jingle.GROUPING, jingle.START_MUTED
BOOL = ["true", "false", "1", "0", "TRUE", "yes"]
SOURCE_NAMES = ["alice-a0", "alice-v0", "bob-v1"]

# (namespace, tag) -> ({attribute: values the parser expects}, [possible children], has text)
SPEC: dict[tuple[str, str], tuple[dict[str, list[str]], list[tuple[str, str]], bool]] = {
    (J, "jingle"): ({"action": list(jingle.ACTIONS), "sid": ["s1"], "initiator": ["focus@auth.localhost/focus"],
                     "responder": ["room@conference.localhost/alice"]},
                    [(J, "content"), (GROUPING, "group"), (FOCUS, "bridge-session"), (J, "reason"),
                     (FOCUS, "ice-state"), (START_MUTED, "startmuted")], False),
    (J, "content"): ({"name": ["audio", "video", "data"], "creator": ["initiator"], "senders": ["both", "none"]},
                     [(RTP, "description"), (ICE_UDP, "transport")], False),
    (RTP, "description"): ({"media": ["audio", "video"]},
                           [(RTP, "payload-type"), (HDREXT, "rtp-hdrext"), (SSMA, "source"), (SSMA, "ssrc-group"),
                            (RTP, "rtcp-mux")], False),
    (RTP, "payload-type"): ({"id": ["111", "100", "96"], "name": ["opus", "VP8", "rtx"], "clockrate": ["48000"],
                             "channels": ["2"]}, [(RTP, "parameter"), (RTCP_FB, "rtcp-fb")], False),
    (RTP, "parameter"): ({"name": ["apt", "minptime", "useinbandfec"], "value": ["100", "10", "1"]}, [], False),
    (RTP, "rtcp-mux"): ({}, [], False),
    (RTCP_FB, "rtcp-fb"): ({"type": ["nack", "ccm", "transport-cc"], "subtype": ["pli", "fir"]}, [], False),
    (HDREXT, "rtp-hdrext"): ({"id": ["1", "3", "5"], "uri": ["urn:ietf:params:rtp-hdrext:ssrc-audio-level"]},
                             [], False),
    (SSMA, "source"): ({"ssrc": ["1", "4096", "4294967295"], "name": SOURCE_NAMES, "videoType": ["camera"]},
                       [(SSMA, "parameter"), (JITMEET, "ssrc-info")], False),
    (SSMA, "parameter"): ({"name": ["msid", "cname"], "value": ["s t", "c"]}, [], False),
    (JITMEET, "ssrc-info"): ({"owner": ["room@conference.localhost/alice"]}, [], False),
    (SSMA, "ssrc-group"): ({"semantics": ["SIM", "FID"]}, [(SSMA, "source")], False),
    (ICE_UDP, "transport"): ({"ufrag": ["u1"], "pwd": ["p" * 22]},
                             [(DTLS, "fingerprint"), (ICE_UDP, "candidate"), (COLIBRI, "web-socket"), (SCTP, "sctpmap"),
                              (ICE_UDP, "rtcp-mux")], False),
    (ICE_UDP, "rtcp-mux"): ({}, [], False),
    (DTLS, "fingerprint"): ({"hash": ["sha-256"], "setup": ["actpass", "active", "passive"]}, [], True),
    (ICE_UDP, "candidate"): ({"foundation": ["1"], "component": ["1", "2"], "protocol": ["udp", "tcp"],
                              "priority": ["2130706431"], "ip": ["127.0.0.1", "::1"], "port": ["10000"],
                              "type": ["host", "srflx"], "generation": ["0"], "id": ["c1"],
                              "rel-addr": ["10.0.0.1"], "rel-port": ["9"], "tcptype": ["passive"]}, [], False),
    (COLIBRI, "web-socket"): ({"url": ["wss://localhost/colibri-ws/jvb1/c/e?pwd=x"]}, [], False),
    (SCTP, "sctpmap"): ({"number": ["5000"]}, [], False),
    (GROUPING, "group"): ({"semantics": ["BUNDLE"]}, [(GROUPING, "content")], False),
    (GROUPING, "content"): ({"name": ["audio", "video"]}, [], False),
    (FOCUS, "bridge-session"): ({"id": ["b1"]}, [], False),
    (J, "reason"): ({}, [(J, "success"), (J, "text"), (J, "gone")], False),
    (J, "success"): ({}, [], False),
    (J, "gone"): ({}, [], False),
    (J, "text"): ({}, [], True),
    (FOCUS, "ice-state"): ({}, [], True),
    (START_MUTED, "startmuted"): ({"audio": BOOL, "video": BOOL}, [], False),
    # COLIBRI2
    (C2, "conference-modify"): ({"meeting-id": ["m1"], "name": ["room@conference.localhost"], "create": BOOL,
                                 "expire": BOOL}, [(C2, "endpoint"), (C2, "relay")], False),
    (C2, "conference-modified"): ({"meeting-id": ["m1"], "name": ["room@conference.localhost"]},
                                  [(C2, "endpoint"), (C2, "relay"), (C2, "sources")], False),
    (C2, "endpoint"): ({"id": ["alice", "bob", "x" * 65], "create": BOOL, "expire": BOOL, "stats-id": ["Al"]},
                       [(C2, "media"), (C2, "transport"), (C2, "sources")], False),
    (C2, "media"): ({"type": ["audio", "video"]}, [(RTP, "payload-type"), (HDREXT, "rtp-hdrext")], False),
    (C2, "transport"): ({"ice-controlling": BOOL}, [(ICE_UDP, "transport"), (C2, "sctp")], False),
    (C2, "sctp"): ({}, [], False),
    (C2, "sources"): ({}, [(C2, "media-source")], False),
    (C2, "media-source"): ({"type": ["audio", "video"], "id": SOURCE_NAMES}, [(SSMA, "source"), (SSMA, "ssrc-group")],
                           False),
    (C2, "relay"): ({"id": ["jvb2"], "create": BOOL, "expire": BOOL}, [(C2, "transport"), (C2, "endpoint")], False),
    # the focus's conference IQ
    (FOCUS, "conference"): ({"room": ["room@conference.localhost"], "machine-uid": ["m"]}, [(FOCUS, "property")],
                            False),
    (FOCUS, "property"): ({"name": ["startAudioMuted", "rtcstatsEnabled"], "value": ["1", "true"]}, [], False),
}
STRAY = [("urn:example", "stray"), (J, "jingle"), (SSMA, "source")]  # children where none belongs


@functools.lru_cache(maxsize=None)
def tree(key: tuple[str, str], depth: int = 5) -> st.SearchStrategy[etree._Element]:
    attrs, children, has_text = SPEC.get(key, ({}, [], False))
    kids: st.SearchStrategy = st.nothing()
    if depth > 0 and children:
        kids = st.one_of([tree(c, depth - 1) for c in children]
                         + [st.sampled_from(STRAY).map(lambda k: etree.Element("{%s}%s" % k))])

    @st.composite
    def build(draw) -> etree._Element:
        el = etree.Element("{%s}%s" % key, nsmap={None: key[0]})
        for name, good in attrs.items():
            if draw(present()):
                el.set(name, draw(attr_value(good)))
        if draw(st.integers(0, 9)) == 0:
            el.set(draw(st.sampled_from(["foo", "id", "ssrc", "type"])), draw(attr_value([])))
        if has_text:
            el.text = draw(xml_text)
        for child in draw(st.lists(kids, min_size=1 if depth > 2 else 0, max_size=3)) if depth > 0 and children else ():
            el.append(child)
        return el
    return build()


def reserialize(el: etree._Element) -> etree._Element:
    """As the element would arrive: serialised and parsed again (the focus and bridge see wire XML)."""
    return etree.fromstring(etree.tostring(el))


def check_model_values(sources: list[Source], candidates: list[Candidate]) -> None:
    """What a parsed model may hold: what the bridge and SDP can use as it is."""
    for s in sources:
        assert 0 < s.ssrc < 2 ** 32 and s.kind in ("audio", "video")
    for c in candidates:
        assert 0 <= c.port <= 65535 and c.component >= 1 and 0 <= c.priority < 2 ** 32
        assert c.rel_port is None or 0 <= c.rel_port <= 65535


def transports_and_sources_of(contents: list[Content]) -> tuple[list[Source], list[Candidate]]:
    sources = [s for c in contents for s in c.sources]
    cands = [cand for c in contents if c.transport is not None for cand in c.transport.candidates]
    return sources, cands


def stanza_error(exc: StanzaError) -> None:
    assert exc.condition in ("bad-request", "not-acceptable"), exc
    assert exc.text  # names what is wrong
    exc.to_element()


# ---- Jingle ----------------------------------------------------------------------------------------
@budget(200)
@given(el=tree((J, "jingle")))
@example(el=etree.fromstring(
    "<jingle xmlns='urn:xmpp:jingle:1' action='session-accept' sid='s'><content name='a'>"
    "<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'><candidate foundation='1' component='1' "
    "priority='1' ip='1.2.3.4' port='9' rel-port='\u00b2'/></transport></content></jingle>"))
def test_jingle(el):
    with watchdog():
        try:
            ja = jingle.parse_jingle(reserialize(el))
        except StanzaError as exc:
            stanza_error(exc)
            return
        check_model_values(*transports_and_sources_of(ja.contents))
        again = jingle.parse_jingle(reserialize(jingle.jingle_element(ja)))  # what we send back parses
        assert again.action == ja.action and len(again.contents) == len(ja.contents)


# ---- COLIBRI2 --------------------------------------------------------------------------------------
def _colibri_values(endpoints: list[colibri2.Endpoint], relays: list[colibri2.Relay]) -> None:
    for ep in endpoints + [e for r in relays for e in r.endpoints]:
        check_model_values(ep.sources, ep.transport.candidates if ep.transport else [])
        assert 0 < len(ep.id) <= 64


@budget(150)
@given(el=tree((C2, "conference-modify")))
def test_colibri2_modify(el):
    with watchdog():
        try:
            req = colibri2.parse_modify(reserialize(el))
        except StanzaError as exc:
            stanza_error(exc)
            return
        _colibri_values(req.endpoints, req.relays)
        again = colibri2.parse_modify(reserialize(colibri2.modify_element(req)))
        assert again.meeting_id == req.meeting_id and len(again.endpoints) == len(req.endpoints)


@budget(80)
@given(el=tree((C2, "conference-modified")))
def test_colibri2_modified(el):
    with watchdog():
        try:
            res = colibri2.parse_modified(reserialize(el))
        except StanzaError as exc:
            stanza_error(exc)
            return
        _colibri_values(res.endpoints, res.relays)
        check_model_values(res.feedback_sources, [])


# ---- the conference IQ -----------------------------------------------------------------------------
@budget(100)
@given(el=tree((FOCUS, "conference")), muc=st.sampled_from([None, "conference.localhost"]))
@example(el=etree.Element("{%s}conference" % FOCUS, room="a@b@c"), muc=None)
def test_conference_request(el, muc):
    with watchdog():
        try:
            req = focus_iq.parse_request(reserialize(el), muc)
        except StanzaError as exc:
            stanza_error(exc)
            return
        assert "@" in req.room and "/" not in req.room
        focus_iq.parse_request(reserialize(focus_iq.request_element(req)), muc)


# ---- SDP -------------------------------------------------------------------------------------------
def _offer() -> str:
    t = IceTransport(ufrag="u1", pwd="p" * 22, fingerprints=[Fingerprint("sha-256", "AB:CD", "actpass")],
                     candidates=[Candidate("1", 1, "udp", 2130706431, "127.0.0.1", 10000, "host", rel_addr="1.2.3.4",
                                           rel_port=9, tcptype="passive")])
    media = sdp.default_media()
    contents = [Content("audio", "audio", media[0], [Source(11, "audio", "a", msid="m a", cname="c")]),
                Content("video", "video", media[1], [Source(21, "video", "a", msid="m v", cname="c"),
                                                      Source(22, "video", "a", msid="m v", cname="c")],
                        groups=[SourceGroup("FID", [21, 22])]),
                Content("data", "application")]
    return sdp.build_offer(contents, t).replace("a=recvonly", "a=sendrecv")


OFFER_LINES = _offer().split("\r\n")
SDP_TEMPLATES = ["a=ssrc:{n} cname:{t}", "a=ssrc:{n} msid:{t}", "a=ssrc:{n} {t}", "a=ssrc-group:{t} {n} {n}",
                 "a=ssrc-group:FID {n} {n}", "a=candidate:{t} {n} udp {n} {t} {n} typ host",
                 "a=candidate:1 1 udp 1 1.2.3.4 {n} typ host raddr {t} rport {n} generation {n}",
                 "candidate:{t}", "a=fingerprint:{t}", "a=fingerprint:sha-256 {t}", "a=setup:{t}", "m={t}",
                 "m=video {n} UDP/TLS/RTP/SAVPF {n}", "a=msid:{t}", "a=ice-ufrag:{t}", "a=ice-pwd:{t}",
                 "a=sendrecv", "a=sendonly", "{t}"]


@st.composite
def sdp_text(draw) -> str:
    lines = list(OFFER_LINES)
    for _ in range(draw(st.integers(0, 6))):
        pos = draw(st.integers(0, len(lines)))
        op = draw(st.integers(0, 2))
        if op == 0:
            line = draw(st.sampled_from(SDP_TEMPLATES))
            while "{n}" in line or "{t}" in line:
                line = line.replace("{n}", draw(numbers), 1) if "{n}" in line else line
                line = line.replace("{t}", draw(st.one_of(xml_text, jids, numbers)), 1) if "{t}" in line else line
            lines.insert(pos, line)
        elif op == 1 and pos < len(lines):
            del lines[pos]
        elif pos < len(lines):
            cut = draw(st.integers(0, len(lines[pos])))
            lines[pos] = lines[pos][:cut] + draw(st.one_of(xml_text, numbers)) + lines[pos][cut:]
    return draw(st.sampled_from(["\r\n", "\n", "\r"])).join(lines)


@budget(300)
@given(text=st.one_of(sdp_text(), st.text(max_size=300)), owner=st.sampled_from(["", "alice"]))
@example(text="a=fingerprint:sha-256", owner="")  # was an unpacking ValueError that named nothing
@example(text="m=audio 9 x 0\r\na=sendonly\r\na=ssrc:99999999999 cname:x", owner="")  # ssrc past 32 bits
@example(text="a=ssrc-group:", owner="")
def test_sdp_answer(text, owner):
    with watchdog():
        try:
            answer = sdp.parse_answer(text, owner)
        except ValueError as exc:
            assert str(exc)
            return
        check_model_values(answer.sources, answer.transport.candidates)
        for g in answer.groups:
            assert all(0 < s < 2 ** 32 for s in g.ssrcs)


@budget(150)
@given(text=st.one_of(st.sampled_from(SDP_TEMPLATES[5:8]).flatmap(
    lambda t: st.tuples(*[st.one_of(numbers, xml_text)] * 8).map(
        lambda v: t.replace("{n}", v[0], 1).replace("{n}", v[1], 1).replace("{n}", v[2], 1).replace("{n}", v[3], 1)
        .replace("{t}", v[4], 1).replace("{t}", v[5], 1).replace("{n}", v[6], 1).replace("{n}", v[7], 1))),
    st.text(max_size=120)))
def test_sdp_candidate(text):
    with watchdog():
        try:
            c = sdp.parse_candidate_sdp(text)
        except ValueError as exc:
            assert str(exc)
            return
        check_model_values([], [c])


def test_out_of_range_names_the_attribute():
    bad = etree.fromstring("<candidate xmlns='urn:xmpp:jingle:transports:ice-udp:1' foundation='1' component='1' "
                           "priority='1' ip='1.2.3.4' port='99999'/>")
    with pytest.raises(StanzaError) as err:
        parse_candidate(bad)
    assert err.value.condition == "bad-request" and "'port' 99999 is out of range (0..65535)" in err.value.text
