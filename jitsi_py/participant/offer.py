"""The focus's offer read the way a WebRTC peer needs it, and our answer written back as Jingle.

Pure functions: a `session-initiate` lists the bridge's receive slots and (for clients that
want them) the other participants' sources, but only the slots become SDP m-sections for aiortc;
the answer aiortc gives becomes the `session-accept`. Kept apart so that both directions can be
tested without a connection or a PeerConnection.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from jitsi_base.errors import StanzaError
from jitsi_protocols.jingle import JingleAction
from jitsi_protocols.model import Content, IceTransport, Media, Source
from jitsi_protocols.sdp import build_offer, parse_answer


def nick_of(owner: str) -> str:
    """`room@conference.example/nick` -> `nick` (a bare endpoint id stays as it is)."""
    return owner.split("/", 1)[1] if "/" in owner else owner


@dataclass
class OfferPlan:
    """What a session-initiate means for a WebRTC participant (see `plan_offer`)."""

    contents: list[Content]  # audio and video, with only the bridge's slot sources
    transport: IceTransport
    sdp: str  # the SDP offer for aiortc
    mid_slot: dict[str, tuple[str, int]]  # m-section mid -> (kind, slot index)
    ssrc_slot: dict[tuple[str, int], int]  # (kind, slot ssrc) -> slot index
    others: dict[str, list[Source]]  # other participants' sources the focus listed (by nick)
    data: Content | None = None  # the offered data channel content (SCTP over the same transport)


def plan_offer(ja: JingleAction, own_nick: str = "") -> OfferPlan:
    """Split a session-initiate into slot sources (one m-section each) and other participants'.

    The focus lists the slots (owned by the bridge, with msid) and, for clients that want them,
    every other participant's sources (owner `room/nick`, no msid); only slots become SDP.
    """
    transport = next((c.transport for c in ja.contents if c.transport is not None), None)
    if transport is None:
        raise StanzaError("bad-request", "session-initiate without a transport")
    contents: list[Content] = []
    others: dict[str, list[Source]] = {}
    data: Content | None = None
    for c in ja.contents:
        if c.kind == "application" and data is None:
            t = c.transport or transport
            data = Content(c.name, "application", transport=t)
            continue
        if c.kind not in ("audio", "video") or c.media is None:
            continue
        slots = []
        for src in c.sources:
            if "/" in src.owner and nick_of(src.owner) != own_nick:
                others.setdefault(nick_of(src.owner), []).append(src)
            else:
                slots.append(src)
        ssrcs = {src.ssrc for src in slots}
        contents.append(Content(c.name, c.kind, c.media, slots, [g for g in c.groups if set(g.ssrcs) & ssrcs],
                                c.senders, c.transport))
    if not contents:
        raise StanzaError("bad-request", "session-initiate without audio or video")
    mid_slot: dict[str, tuple[str, int]] = {}
    ssrc_slot: dict[tuple[str, int], int] = {}
    for c in contents:  # the order build_offer lays out m-sections in
        remote = [src for src in c.sources if src.msid] or c.sources
        for i in range(max(1, len(remote))):
            mid_slot[c.name if i == 0 else f"{c.name}{i}"] = (c.kind, i)
            if i < len(remote):
                ssrc_slot[(c.kind, remote[i].ssrc)] = i
    sdp_transport = transport
    if data is not None:  # build_offer takes the SCTP port from the transport
        sdp_transport = dataclasses.replace(transport, sctp_port=(data.transport.sctp_port if data.transport
                                                                   else None) or 5000)
    sdp = build_offer(contents + ([data] if data is not None else []), sdp_transport)
    return OfferPlan(contents, transport, sdp, mid_slot, ssrc_slot, others, data)


def _answered_data(answer_sdp: str) -> int | None:
    """The SCTP port of an answer's accepted m=application section (None: no data channel)."""
    port: int | None = None
    in_app = False
    for line in answer_sdp.splitlines():
        line = line.strip()
        if line.startswith("m="):
            bits = line[2:].split()
            in_app = bits[0] == "application" and len(bits) > 1 and bits[1] != "0"
            if in_app:
                port = 5000
        elif in_app and line.startswith("a=sctp-port:"):
            try:
                port = int(line.split(":", 1)[1])
            except ValueError:
                pass
    return port


def session_accept(offer: JingleAction, contents: list[Content], answer_sdp: str, occupant_jid: str,
                   nick: str, data: Content | None = None) -> JingleAction:
    """The session-accept for `offer`: per content the offered codecs, our own sources of that
    kind (named `<nick>-a0` / `<nick>-v0`, owned by our occupant JID) and the answer's transport;
    plus the data content (`data`, the offered one) if the answer accepted it."""
    answer = parse_answer(answer_sdp, owner=occupant_jid)
    out = []
    for c in contents:
        mine = [src for src in answer.sources if src.kind == c.kind]
        for src in mine:
            src.name = f"{nick}-{c.kind[0]}0"
        ssrcs = {src.ssrc for src in mine}
        groups = [g for g in answer.groups if g.ssrcs and set(g.ssrcs) <= ssrcs]
        assert c.media is not None
        media = Media(c.kind, list(c.media.payload_types), list(c.media.header_extensions))
        out.append(Content(c.name, c.kind, media, mine, groups, "both", answer.transport))
    sctp_port = _answered_data(answer_sdp) if data is not None else None
    if data is not None and sctp_port is not None:
        out.append(Content(data.name, "application",
                           transport=dataclasses.replace(answer.transport, sctp_port=sctp_port)))
    return JingleAction("session-accept", offer.sid, initiator=offer.initiator, responder=occupant_jid,
                        contents=out, bundle=[c.name for c in out], bridge_session=offer.bridge_session)

