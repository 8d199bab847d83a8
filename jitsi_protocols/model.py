"""Typed media-session objects: what Jingle, COLIBRI2 and SDP all describe in their own syntax.

The focus, the bridge and the Python participant work on these; each wire format has one module
that converts to and from them, so no core code reads XML or SDP text.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Candidate:
    """An ICE candidate (RFC 8445), as in Jingle ICE-UDP (XEP-0176) and SDP a=candidate."""

    foundation: str
    component: int
    protocol: str  # "udp"
    priority: int
    ip: str
    port: int
    type: str  # host | srflx | prflx | relay
    generation: int = 0
    id: str = ""
    rel_addr: str | None = None
    rel_port: int | None = None
    tcptype: str | None = None


@dataclass
class Fingerprint:
    hash: str  # "sha-256"
    value: str  # "8F:1A:..."
    setup: str = "actpass"  # actpass | active | passive


@dataclass
class IceTransport:
    """One bundled transport: ICE credentials, candidates, DTLS fingerprints."""

    ufrag: str
    pwd: str
    fingerprints: list[Fingerprint] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    rtcp_mux: bool = True
    websocket_url: str | None = None  # the bridge channel (Jitsi's colibri-ws)
    sctp_port: int | None = None


@dataclass
class PayloadType:
    id: int
    name: str
    clockrate: int
    channels: int = 1
    parameters: dict[str, str] = field(default_factory=dict)
    rtcp_fb: list[tuple[str, str]] = field(default_factory=list)  # (type, subtype or "")


@dataclass
class HeaderExtension:
    id: int
    uri: str


@dataclass
class Source:
    """One RTP stream a participant sends: its SSRC and who owns it."""

    ssrc: int
    kind: str  # audio | video
    owner: str = ""  # endpoint id (the MUC nick)
    name: str = ""  # e.g. "<endpoint>-v0"
    msid: str = ""
    cname: str = ""
    video_type: str = ""  # camera | desktop


@dataclass
class SourceGroup:
    semantics: str  # FID | SIM
    ssrcs: list[int] = field(default_factory=list)


@dataclass
class Media:
    """One kind of media an endpoint negotiates (audio or video)."""

    kind: str
    payload_types: list[PayloadType] = field(default_factory=list)
    header_extensions: list[HeaderExtension] = field(default_factory=list)


@dataclass
class Content:
    """One Jingle content (audio, video or data) with everything SDP needs for it."""

    name: str  # "audio" | "video" | "data"
    kind: str  # "audio" | "video" | "application"
    media: Media | None = None
    sources: list[Source] = field(default_factory=list)
    groups: list[SourceGroup] = field(default_factory=list)
    senders: str = "both"
    transport: IceTransport | None = None
