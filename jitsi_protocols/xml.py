"""XML <-> model for the pieces Jingle and COLIBRI2 share: ICE-UDP transports (XEP-0176 with
XEP-0320 fingerprints), RTP payload types and header extensions (XEP-0167, XEP-0294), and sources
(XEP-0339 with Jitsi's `ssrc-info owner`).

Bad input raises `StanzaError(bad-request)` naming what is wrong, so a malformed offer or update
is answered with an error and never reaches the core half-parsed.
"""
from __future__ import annotations

import re

from lxml import etree

from jitsi_base import ns
from jitsi_base.errors import StanzaError
from .model import Candidate, Fingerprint, HeaderExtension, IceTransport, PayloadType, Source, SourceGroup

ICE_UDP = ns.JINGLE_ICE_UDP
DTLS = ns.JINGLE_DTLS
RTP = ns.JINGLE_RTP
RTCP_FB = ns.JINGLE_RTCP_FB
HDREXT = ns.JINGLE_HDREXT
SSMA = ns.JINGLE_SSMA
JITMEET = ns.JITMEET
COLIBRI = ns.COLIBRI
SCTP = ns.JINGLE_SCTP


def q(ns: str, name: str) -> str:
    return "{%s}%s" % (ns, name)


_INTEGER = re.compile(r"-?[0-9]{1,20}")
U16, U32 = 2 ** 16 - 1, 2 ** 32 - 1


def _int(el: etree._Element, attr: str, what: str, default: int | None = None, lo: int = 0, hi: int = U32) -> int:
    """An integer attribute in lo..hi. ASCII digits only: int() would also take ' 7', '1_0' or
    Arabic-Indic digits, which no peer of ours sends and which would not survive a round trip."""
    value = el.get(attr)
    if value is None:
        if default is not None:
            return default
        raise StanzaError("bad-request", f"{what}: missing '{attr}'")
    if not _INTEGER.fullmatch(value):
        raise StanzaError("bad-request", f"{what}: '{attr}' is not a number: {value[:40]!r}")
    number = int(value)
    if not lo <= number <= hi:
        raise StanzaError("bad-request", f"{what}: '{attr}' {number} is out of range ({lo}..{hi})")
    return number


def _req(el: etree._Element, attr: str, what: str) -> str:
    value = el.get(attr)
    if not value:
        raise StanzaError("bad-request", f"{what}: missing '{attr}'")
    return value


# ---- ICE-UDP ---------------------------------------------------------------------------------
def parse_transport(el: etree._Element) -> IceTransport:
    if el.tag != q(ICE_UDP, "transport"):
        raise StanzaError("bad-request", "Expected an ICE-UDP transport")
    t = IceTransport(ufrag=el.get("ufrag", ""), pwd=el.get("pwd", ""))
    for fp in el.iterfind(q(DTLS, "fingerprint")):
        t.fingerprints.append(Fingerprint(hash=_req(fp, "hash", "fingerprint"), value=(fp.text or "").strip(),
                                          setup=fp.get("setup", "actpass")))
    for c in el.iterfind(q(ICE_UDP, "candidate")):
        t.candidates.append(parse_candidate(c))
    ws = el.find(q(COLIBRI, "web-socket"))
    if ws is not None:
        t.websocket_url = ws.get("url")
    sctp = el.find(q(SCTP, "sctpmap"))
    if sctp is not None:
        t.sctp_port = _int(sctp, "number", "sctpmap", 5000, hi=U16)
    return t


def parse_candidate(c: etree._Element) -> Candidate:
    what = "candidate"
    return Candidate(
        foundation=_req(c, "foundation", what), component=_int(c, "component", what, lo=1, hi=256),
        protocol=c.get("protocol", "udp").lower(), priority=_int(c, "priority", what),
        ip=_req(c, "ip", what), port=_int(c, "port", what, hi=U16), type=c.get("type", "host"),
        generation=_int(c, "generation", what, 0), id=c.get("id", ""),
        rel_addr=c.get("rel-addr"), rel_port=_int(c, "rel-port", what, hi=U16) if c.get("rel-port") else None,
        tcptype=c.get("tcptype"))


def transport_element(t: IceTransport) -> etree._Element:
    el = etree.Element(q(ICE_UDP, "transport"), nsmap={None: ICE_UDP})
    if t.ufrag:
        el.set("ufrag", t.ufrag)
    if t.pwd:
        el.set("pwd", t.pwd)
    for fp in t.fingerprints:
        f = etree.SubElement(el, q(DTLS, "fingerprint"), nsmap={None: DTLS}, hash=fp.hash, setup=fp.setup)
        f.text = fp.value
    for c in t.candidates:
        attrs = {"foundation": c.foundation, "component": str(c.component), "protocol": c.protocol,
                 "priority": str(c.priority), "ip": c.ip, "port": str(c.port), "type": c.type,
                 "generation": str(c.generation), "network": "0", "id": c.id or f"c{c.foundation}{c.port}"}
        if c.rel_addr:
            attrs["rel-addr"] = c.rel_addr
        if c.rel_port is not None:
            attrs["rel-port"] = str(c.rel_port)
        if c.tcptype:
            attrs["tcptype"] = c.tcptype
        etree.SubElement(el, q(ICE_UDP, "candidate"), **attrs)
    if t.rtcp_mux:
        etree.SubElement(el, q(ICE_UDP, "rtcp-mux"))
    if t.websocket_url:
        etree.SubElement(el, q(COLIBRI, "web-socket"), nsmap={None: COLIBRI}, url=t.websocket_url)
    if t.sctp_port is not None:
        etree.SubElement(el, q(SCTP, "sctpmap"), nsmap={None: SCTP}, number=str(t.sctp_port),
                         protocol="webrtc-datachannel", streams="1024")
    return el


# ---- RTP description pieces ----------------------------------------------------------------
def parse_payload_type(el: etree._Element) -> PayloadType:
    what = "payload-type"
    pt = PayloadType(id=_int(el, "id", what, hi=127), name=el.get("name", ""),
                     clockrate=_int(el, "clockrate", what, 0), channels=_int(el, "channels", what, 1, lo=1, hi=255))
    for p in el.iterfind(q(RTP, "parameter")):
        if p.get("name"):
            pt.parameters[p.get("name")] = p.get("value", "")
    for fb in el.iterfind(q(RTCP_FB, "rtcp-fb")):
        pt.rtcp_fb.append((fb.get("type", ""), fb.get("subtype", "")))
    return pt


def payload_type_element(pt: PayloadType) -> etree._Element:
    el = etree.Element(q(RTP, "payload-type"), nsmap={None: RTP}, id=str(pt.id), name=pt.name,
                       clockrate=str(pt.clockrate))
    if pt.channels != 1:
        el.set("channels", str(pt.channels))
    for name, value in pt.parameters.items():
        etree.SubElement(el, q(RTP, "parameter"), name=name, value=value)
    for typ, sub in pt.rtcp_fb:
        fb = etree.SubElement(el, q(RTCP_FB, "rtcp-fb"), nsmap={None: RTCP_FB}, type=typ)
        if sub:
            fb.set("subtype", sub)
    return el


def parse_hdrext(el: etree._Element) -> HeaderExtension:
    return HeaderExtension(id=_int(el, "id", "rtp-hdrext", lo=1, hi=255), uri=_req(el, "uri", "rtp-hdrext"))


def hdrext_element(ext: HeaderExtension) -> etree._Element:
    return etree.Element(q(HDREXT, "rtp-hdrext"), nsmap={None: HDREXT}, id=str(ext.id), uri=ext.uri)


# ---- sources ---------------------------------------------------------------------------------
def parse_source(el: etree._Element, kind: str) -> Source:
    ssrc = _int(el, "ssrc", "source", lo=1)
    src = Source(ssrc=ssrc, kind=kind, name=el.get("name", ""), video_type=el.get("videoType", ""))
    for p in el.iterfind(q(SSMA, "parameter")):
        if p.get("name") == "msid":
            src.msid = p.get("value", "")
        elif p.get("name") == "cname":
            src.cname = p.get("value", "")
    info = el.find(q(JITMEET, "ssrc-info"))
    if info is not None:
        src.owner = info.get("owner", "")
    return src


def source_element(src: Source, owner_jid: str | None = None) -> etree._Element:
    el = etree.Element(q(SSMA, "source"), nsmap={None: SSMA}, ssrc=str(src.ssrc))
    if src.name:
        el.set("name", src.name)
    if src.video_type:
        el.set("videoType", src.video_type)
    if src.cname:
        etree.SubElement(el, q(SSMA, "parameter"), name="cname", value=src.cname)
    if src.msid:
        etree.SubElement(el, q(SSMA, "parameter"), name="msid", value=src.msid)
    owner = owner_jid if owner_jid is not None else src.owner
    if owner:
        etree.SubElement(el, q(JITMEET, "ssrc-info"), nsmap={None: JITMEET}, owner=owner)
    return el


def parse_group(el: etree._Element) -> SourceGroup:
    g = SourceGroup(semantics=_req(el, "semantics", "ssrc-group"))
    for s in el.iterfind(q(SSMA, "source")):
        g.ssrcs.append(_int(s, "ssrc", "ssrc-group source", lo=1))
    if not g.ssrcs:
        raise StanzaError("bad-request", "ssrc-group without sources")
    return g


def group_element(g: SourceGroup) -> etree._Element:
    el = etree.Element(q(SSMA, "ssrc-group"), nsmap={None: SSMA}, semantics=g.semantics)
    for ssrc in g.ssrcs:
        etree.SubElement(el, q(SSMA, "source"), ssrc=str(ssrc))
    return el
