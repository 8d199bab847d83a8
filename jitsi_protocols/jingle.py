"""Jingle (XEP-0166/0167/0176, with Jitsi's extensions) to and from `Content` models.

One `JingleAction` per `<jingle/>` element: the focus builds `session-initiate`, `source-add`,
`source-remove`, `session-terminate`; participants answer with `session-accept`,
`transport-info`, `source-add`/`source-remove`. Parsing validates as it goes and raises
`StanzaError(bad-request)` for anything a session cannot use.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from jitsi_base import ns
from jitsi_base.errors import StanzaError
from .model import Content, Media
from .xml import (HDREXT, ICE_UDP, RTP, SCTP, SSMA, group_element, hdrext_element, parse_group, parse_hdrext,
                  parse_payload_type, parse_source, parse_transport, payload_type_element, q, source_element,
                  transport_element)

NS = ns.JINGLE
ERRORS = ns.JINGLE_ERRORS
GROUPING = ns.JINGLE_GROUPING
FOCUS = ns.JITSI_FOCUS
START_MUTED = ns.JITSI_START_MUTED

ACTIONS = ("session-initiate", "session-accept", "session-terminate", "session-info", "transport-info",
           "transport-replace", "transport-accept", "transport-reject", "content-modify",
           "source-add", "source-remove", "addsource", "removesource")


@dataclass
class JingleAction:
    action: str
    sid: str
    initiator: str = ""
    responder: str = ""
    contents: list[Content] = field(default_factory=list)
    bundle: list[str] = field(default_factory=list)
    bridge_session: str = ""
    reason: str = ""  # session-terminate: success, gone, failed-transport...
    reason_text: str = ""
    ice_state: str = ""  # session-info from Jitsi clients: <ice-state>failed</ice-state>
    start_muted: tuple[bool, bool] | None = None  # (audio, video): join muted (the focus's policy)


def unknown_session() -> StanzaError:
    app = etree.Element(q(ERRORS, "unknown-session"), nsmap={None: ERRORS})
    return StanzaError("item-not-found", "Unknown Jingle session", app_condition=app)


def _parse_content(el: etree._Element) -> Content:
    name = el.get("name", "")
    if not name:
        raise StanzaError("bad-request", "content without a name")
    desc = el.find(q(RTP, "description"))
    tr = el.find(q(ICE_UDP, "transport"))
    kind = "application"
    media = None
    content = Content(name=name, kind=kind, senders=el.get("senders", "both"))
    if desc is not None:
        kind = desc.get("media", "")
        if kind not in ("audio", "video"):
            raise StanzaError("bad-request", f"description media {kind!r} (allowed: audio, video)")
        content.kind = kind
        media = Media(kind)
        for pt in desc.iterfind(q(RTP, "payload-type")):
            media.payload_types.append(parse_payload_type(pt))
        for ext in desc.iterfind(q(HDREXT, "rtp-hdrext")):
            media.header_extensions.append(parse_hdrext(ext))
        content.media = media
        for s in desc.iterfind(q(SSMA, "source")):
            content.sources.append(parse_source(s, kind))
        for g in desc.iterfind(q(SSMA, "ssrc-group")):
            content.groups.append(parse_group(g))
    if tr is not None:
        content.transport = parse_transport(tr)
    return content


def parse_jingle(el: etree._Element) -> JingleAction:
    if el.tag != q(NS, "jingle"):
        raise StanzaError("bad-request", "Expected <jingle xmlns='urn:xmpp:jingle:1'/>")
    action = el.get("action", "")
    if action not in ACTIONS:
        raise StanzaError("bad-request", f"Unknown Jingle action {action!r}")
    sid = el.get("sid", "")
    if not sid:
        raise StanzaError("bad-request", "Jingle without a sid")
    ja = JingleAction(action=action, sid=sid, initiator=el.get("initiator", ""), responder=el.get("responder", ""))
    for c in el.iterfind(q(NS, "content")):
        ja.contents.append(_parse_content(c))
    group = el.find(q(GROUPING, "group"))
    if group is not None:
        ja.bundle = [c.get("name", "") for c in group.iterfind(q(GROUPING, "content"))]
    bs = el.find(q(FOCUS, "bridge-session"))
    if bs is not None:
        ja.bridge_session = bs.get("id", "")
    reason = el.find(q(NS, "reason"))
    if reason is not None:
        for child in reason:
            if isinstance(child.tag, str) and etree.QName(child).localname != "text":
                ja.reason = etree.QName(child).localname
        ja.reason_text = reason.findtext(q(NS, "text")) or ""
    ice = el.find(q(FOCUS, "ice-state"))
    if ice is not None:
        ja.ice_state = (ice.text or "").strip()
    sm = el.find(q(START_MUTED, "startmuted"))
    if sm is not None:
        ja.start_muted = (sm.get("audio") == "true", sm.get("video") == "true")
    return ja


def _content_element(c: Content) -> etree._Element:
    el = etree.Element(q(NS, "content"), creator="initiator", name=c.name, senders=c.senders)
    if c.media is not None or c.sources:
        desc = etree.SubElement(el, q(RTP, "description"), nsmap={None: RTP}, media=c.kind)
        if c.media is not None:
            for pt in c.media.payload_types:
                desc.append(payload_type_element(pt))
            for ext in c.media.header_extensions:
                desc.append(hdrext_element(ext))
        if c.kind in ("audio", "video"):
            etree.SubElement(desc, q(RTP, "rtcp-mux"))
        for s in c.sources:
            desc.append(source_element(s))
        for g in c.groups:
            desc.append(group_element(g))
    if c.transport is not None:
        el.append(transport_element(c.transport))
    return el


def jingle_element(ja: JingleAction) -> etree._Element:
    el = etree.Element(q(NS, "jingle"), nsmap={None: NS}, action=ja.action, sid=ja.sid)
    if ja.initiator:
        el.set("initiator", ja.initiator)
    if ja.responder:
        el.set("responder", ja.responder)
    for c in ja.contents:
        el.append(_content_element(c))
    if ja.bundle:
        g = etree.SubElement(el, q(GROUPING, "group"), nsmap={None: GROUPING}, semantics="BUNDLE")
        for name in ja.bundle:
            etree.SubElement(g, q(GROUPING, "content"), name=name)
    if ja.bridge_session:
        etree.SubElement(el, q(FOCUS, "bridge-session"), nsmap={None: FOCUS}, id=ja.bridge_session)
    if ja.reason:
        r = etree.SubElement(el, q(NS, "reason"))
        etree.SubElement(r, q(NS, ja.reason))
        if ja.reason_text:
            etree.SubElement(r, q(NS, "text")).text = ja.reason_text
    if ja.ice_state:
        etree.SubElement(el, q(FOCUS, "ice-state"), nsmap={None: FOCUS}).text = ja.ice_state
    if ja.start_muted is not None:
        etree.SubElement(el, q(START_MUTED, "startmuted"), nsmap={None: START_MUTED},
                         audio="true" if ja.start_muted[0] else "false", video="true" if ja.start_muted[1] else "false")
    return el


__all__ = ["JingleAction", "parse_jingle", "jingle_element", "unknown_session", "NS", "SCTP", "SSMA"]
