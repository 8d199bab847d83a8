"""COLIBRI2 (`jitsi:colibri2`): how the focus asks a bridge for conferences and endpoints.

Only our focus and our bridges speak it, but it follows Jitsi's shape (`conference-modify` /
`conference-modified`, see ../shared/research/jitsi-protocol.md section 6) so the two stay
recognisable to anyone who knows Jitsi. One extension: each endpoint in the response lists the
bridge's *slot* sources for that endpoint (`<sources>` inside `<endpoint>`): the SSRCs the bridge
sends it, whatever participant currently fills each slot.

Cascading (one conference on several bridges) uses `<relay id='other-bridge'>`, as Jitsi does:
the focus creates a relay on each of two bridges (one `ice-controlling`), hands each the other's
transport, and lists inside a relay the endpoints that live on the bridge at its other end
(`<endpoint>` with `<media>` and `<sources>`; created or updated as given, removed with
`expire`), so the bridge knows whose packets arrive over it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from jitsi_base import ns
from jitsi_base.errors import StanzaError
from .model import IceTransport, Media, Source, SourceGroup
from .xml import (RTP, SSMA, group_element, hdrext_element, parse_group, parse_hdrext, parse_payload_type,
                  parse_source, parse_transport, payload_type_element, q, source_element, transport_element)

NS = ns.COLIBRI2
ICE_UDP = ns.JINGLE_ICE_UDP
HDREXT = ns.JINGLE_HDREXT
MAX_CAPABILITIES = 16  # capabilities one endpoint request may list
# the capability of an endpoint whose client learns who fills its slots from the bridge's source
# maps only (Jitsi's name; the focus sets it for clients with ns.JITSI_SSRC_REWRITING)
SSRC_REWRITING = "ssrc-rewriting"


@dataclass
class Endpoint:
    id: str
    create: bool = False
    expire: bool = False
    stats_id: str = ""
    media: list[Media] = field(default_factory=list)
    transport: IceTransport | None = None  # request: the client's; response: the bridge's
    ice_controlling: bool = True
    sctp: bool = False
    sources: list[Source] = field(default_factory=list)
    groups: list[SourceGroup] = field(default_factory=list)
    # Request: replace the sources (None: leave them as they are).
    sources_given: bool = False
    # Request: what the participant's client supports, as Jicofo tells Jitsi's bridge
    # (`<capability name='ssrc-rewriting'/>`: it learns who fills its slots from the bridge's
    # source maps only, see bridge/endpoint.py)
    capabilities: list[str] = field(default_factory=list)


@dataclass
class Relay:
    """A bridge-to-bridge link of one conference, named by the bridge at its other end."""

    id: str
    create: bool = False
    expire: bool = False
    transport: IceTransport | None = None  # request: the other bridge's; response: ours
    ice_controlling: bool = True
    endpoints: list[Endpoint] = field(default_factory=list)  # request: endpoints at the other end


@dataclass
class ConferenceModify:
    meeting_id: str
    name: str = ""
    create: bool = False
    expire: bool = False
    endpoints: list[Endpoint] = field(default_factory=list)
    relays: list[Relay] = field(default_factory=list)


@dataclass
class ConferenceModified:
    meeting_id: str
    name: str = ""
    endpoints: list[Endpoint] = field(default_factory=list)
    feedback_sources: list[Source] = field(default_factory=list)
    relays: list[Relay] = field(default_factory=list)


def _bool(el: etree._Element, attr: str, default: bool = False) -> bool:
    return el.get(attr, "true" if default else "false").lower() in ("true", "1")


def _parse_transport_of(holder: Endpoint | Relay, tr: etree._Element) -> None:
    """`<transport ice-controlling=...>` around an ICE-UDP transport, of an endpoint or relay."""
    holder.ice_controlling = _bool(tr, "ice-controlling", default=True)
    inner = tr.find(q(ICE_UDP, "transport"))
    if inner is not None:
        holder.transport = parse_transport(inner)


def _parse_sources(parent: etree._Element, ep: Endpoint) -> None:
    sources = parent.find(q(NS, "sources"))
    if sources is None:
        return
    ep.sources_given = True
    for ms in sources.iterfind(q(NS, "media-source")):
        kind = ms.get("type", "")
        if kind not in ("audio", "video"):
            raise StanzaError("bad-request", f"media-source type {kind!r} (allowed: audio, video)")
        name = ms.get("id", "")
        for s in ms.iterfind(q(SSMA, "source")):
            src = parse_source(s, kind)
            src.name = src.name or name
            src.owner = src.owner or ep.id
            ep.sources.append(src)
        for g in ms.iterfind(q(SSMA, "ssrc-group")):
            ep.groups.append(parse_group(g))


def _sources_element(sources: list[Source], groups: list[SourceGroup] = ()) -> etree._Element:  # type: ignore[assignment]
    el = etree.Element(q(NS, "sources"))
    by_name: dict[tuple[str, str], etree._Element] = {}
    for src in sources:
        key = (src.kind, src.name or f"{src.owner}-{src.kind[0]}0")
        ms = by_name.get(key)
        if ms is None:
            ms = etree.SubElement(el, q(NS, "media-source"), type=src.kind, id=key[1])
            by_name[key] = ms
        ms.append(source_element(src, owner_jid=""))
    for g in groups:
        kind_ms = next((m for (k, _), m in by_name.items() if k == "video"), None)
        (kind_ms if kind_ms is not None else el).append(group_element(g))
    return el


def _parse_endpoint(el: etree._Element) -> Endpoint:
    ep_id = el.get("id", "")
    if not ep_id or len(ep_id) > 64:
        raise StanzaError("bad-request", "endpoint needs an id (at most 64 characters)")
    ep = Endpoint(id=ep_id, create=_bool(el, "create"), expire=_bool(el, "expire"), stats_id=el.get("stats-id", ""))
    for m in el.iterfind(q(NS, "media")):
        kind = m.get("type", "")
        if kind not in ("audio", "video"):
            raise StanzaError("bad-request", f"media type {kind!r} (allowed: audio, video)")
        media = Media(kind=kind)
        for pt in m.iterfind(q(RTP, "payload-type")):
            media.payload_types.append(parse_payload_type(pt))
        for ext in m.iterfind(q(HDREXT, "rtp-hdrext")):
            media.header_extensions.append(parse_hdrext(ext))
        ep.media.append(media)
    tr = el.find(q(NS, "transport"))
    if tr is not None:
        _parse_transport_of(ep, tr)
        ep.sctp = tr.find(q(NS, "sctp")) is not None
    for cap in el.iterfind(q(NS, "capability")):
        name = cap.get("name", "")
        if not name or len(name) > 64 or len(ep.capabilities) >= MAX_CAPABILITIES:
            raise StanzaError("bad-request", f"capability needs a name (at most 64 characters, "
                                             f"{MAX_CAPABILITIES} per endpoint)")
        ep.capabilities.append(name)
    _parse_sources(el, ep)
    return ep


def _parse_relay(el: etree._Element) -> Relay:
    relay_id = el.get("id", "")
    if not relay_id or len(relay_id) > 64:
        raise StanzaError("bad-request", "relay needs an id (at most 64 characters)")
    relay = Relay(id=relay_id, create=_bool(el, "create"), expire=_bool(el, "expire"))
    tr = el.find(q(NS, "transport"))
    if tr is not None:
        _parse_transport_of(relay, tr)
    for e in el.iterfind(q(NS, "endpoint")):
        relay.endpoints.append(_parse_endpoint(e))
    return relay


def _relay_element(relay: Relay, request: bool) -> etree._Element:
    el = etree.Element(q(NS, "relay"), id=relay.id)
    if relay.create:
        el.set("create", "true")
    if relay.expire:
        el.set("expire", "true")
    if relay.transport is not None or (request and relay.create):
        tr = etree.SubElement(el, q(NS, "transport"))
        if request:
            tr.set("ice-controlling", "true" if relay.ice_controlling else "false")
        if relay.transport is not None:
            tr.append(transport_element(relay.transport))
    for ep in relay.endpoints:
        el.append(_endpoint_element(ep))
    return el


def parse_modify(el: etree._Element) -> ConferenceModify:
    if el.tag != q(NS, "conference-modify"):
        raise StanzaError("bad-request", "Expected <conference-modify xmlns='jitsi:colibri2'/>")
    meeting_id = el.get("meeting-id", "")
    if not meeting_id:
        raise StanzaError("bad-request", "conference-modify needs a meeting-id")
    req = ConferenceModify(meeting_id=meeting_id, name=el.get("name", ""), create=_bool(el, "create"),
                           expire=_bool(el, "expire"))
    for ep in el.iterfind(q(NS, "endpoint")):
        req.endpoints.append(_parse_endpoint(ep))
    for relay in el.iterfind(q(NS, "relay")):
        req.relays.append(_parse_relay(relay))
    return req


def _endpoint_element(ep: Endpoint) -> etree._Element:
    """An endpoint as the focus asks for it (also inside a relay)."""
    e = etree.Element(q(NS, "endpoint"), id=ep.id)
    if ep.create:
        e.set("create", "true")
    if ep.expire:
        e.set("expire", "true")
    if ep.stats_id:
        e.set("stats-id", ep.stats_id)
    for media in ep.media:
        m = etree.SubElement(e, q(NS, "media"), type=media.kind)
        for pt in media.payload_types:
            m.append(payload_type_element(pt))
        for ext in media.header_extensions:
            m.append(hdrext_element(ext))
    if ep.create or ep.transport is not None:
        tr = etree.SubElement(e, q(NS, "transport"), **{"ice-controlling": "true" if ep.ice_controlling else "false"})
        if ep.transport is not None:
            tr.append(transport_element(ep.transport))
        if ep.sctp:
            etree.SubElement(tr, q(NS, "sctp"))
    for cap in ep.capabilities:
        etree.SubElement(e, q(NS, "capability"), name=cap)
    if ep.sources_given:
        e.append(_sources_element(ep.sources, ep.groups))
    return e


def modify_element(req: ConferenceModify) -> etree._Element:
    el = etree.Element(q(NS, "conference-modify"), nsmap={None: NS}, **{"meeting-id": req.meeting_id})
    if req.name:
        el.set("name", req.name)
    if req.create:
        el.set("create", "true")
    if req.expire:
        el.set("expire", "true")
    for ep in req.endpoints:
        el.append(_endpoint_element(ep))
    for relay in req.relays:
        el.append(_relay_element(relay, request=True))
    return el


def parse_modified(el: etree._Element) -> ConferenceModified:
    if el.tag != q(NS, "conference-modified"):
        raise StanzaError("bad-request", "Expected <conference-modified xmlns='jitsi:colibri2'/>")
    res = ConferenceModified(meeting_id=el.get("meeting-id", ""), name=el.get("name", ""))
    for e in el.iterfind(q(NS, "endpoint")):
        res.endpoints.append(_parse_endpoint(e))
    for r in el.iterfind(q(NS, "relay")):
        res.relays.append(_parse_relay(r))
    holder = Endpoint(id="jvb")
    _parse_sources(el, holder)
    res.feedback_sources = holder.sources
    return res


def modified_element(res: ConferenceModified) -> etree._Element:
    el = etree.Element(q(NS, "conference-modified"), nsmap={None: NS}, **{"meeting-id": res.meeting_id})
    if res.name:
        el.set("name", res.name)
    for ep in res.endpoints:
        e = etree.SubElement(el, q(NS, "endpoint"), id=ep.id)
        if ep.transport is not None:
            tr = etree.SubElement(e, q(NS, "transport"))
            tr.append(transport_element(ep.transport))
            if ep.sctp:
                etree.SubElement(tr, q(NS, "sctp"), port="5000", role="server")
        if ep.sources:
            e.append(_sources_element(ep.sources))
    for relay in res.relays:
        el.append(_relay_element(relay, request=False))
    if res.feedback_sources:
        el.append(_sources_element(res.feedback_sources))
    return el
