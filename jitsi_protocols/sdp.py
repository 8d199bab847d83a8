"""SDP from and to our session model, for participants built on WebRTC stacks (aiortc, browsers).

The bridge sends each participant a fixed set of *slot* SSRCs per kind. WebRTC's Unified Plan
(and aiortc) decode exactly one stream per m-section, so the offer gets one m-section per remote
source: the first section of each kind also carries what the participant sends (sendrecv), the
others only receive. Everything is bundled on the one transport the bridge allocated.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from jitsi_base import ns

from .model import Candidate, Content, Fingerprint, IceTransport, Media, PayloadType, Source, SourceGroup


def _candidate_line(c: Candidate) -> str:
    line = (f"a=candidate:{c.foundation} {c.component} {c.protocol.upper()} {c.priority} {c.ip} {c.port} "
            f"typ {c.type}")
    if c.rel_addr:
        line += f" raddr {c.rel_addr} rport {c.rel_port or 0}"
    if c.tcptype:
        line += f" tcptype {c.tcptype}"
    return line


_NUMBER = re.compile(r"[0-9]{1,10}")
U16, U32 = 2 ** 16 - 1, 2 ** 32 - 1


def _number(text: str, what: str, lo: int = 0, hi: int = U32) -> int:
    """A decimal number in lo..hi, else ValueError naming the field (the parsers' one error)."""
    if not _NUMBER.fullmatch(text) or not lo <= int(text) <= hi:
        raise ValueError(f"{what}: {text[:40]!r} is not a number in {lo}..{hi}")
    return int(text)


def parse_candidate_sdp(text: str) -> Candidate:
    """`candidate:...` (with or without `a=`), as SDP and trickle ICE carry it. ValueError if
    it is not one."""
    text = text.strip()
    if text.startswith("a="):
        text = text[2:]
    if text.startswith("candidate:"):
        text = text[len("candidate:"):]
    bits = text.split()
    if len(bits) < 8 or bits[6] != "typ":
        raise ValueError(f"not an ICE candidate: {text[:80]!r}")
    c = Candidate(foundation=bits[0], component=_number(bits[1], "candidate component", 1, 256),
                  protocol=bits[2].lower(), priority=_number(bits[3], "candidate priority"),
                  ip=bits[4], port=_number(bits[5], "candidate port", 0, U16), type=bits[7])
    rest = bits[8:]
    for key, value in zip(rest[::2], rest[1::2]):
        if key == "raddr":
            c.rel_addr = value
        elif key == "rport":
            c.rel_port = _number(value, "candidate rport", 0, U16)
        elif key == "tcptype":
            c.tcptype = value
        elif key == "generation":
            c.generation = _number(value, "candidate generation")
    return c


def _media_lines(media: Media) -> list[str]:
    lines: list[str] = []
    for pt in media.payload_types:
        enc = f"{pt.name}/{pt.clockrate}" + (f"/{pt.channels}" if pt.channels > 1 else "")
        lines.append(f"a=rtpmap:{pt.id} {enc}")
        if pt.parameters:
            lines.append(f"a=fmtp:{pt.id} " + ";".join(f"{k}={v}" for k, v in pt.parameters.items()))
        for typ, sub in pt.rtcp_fb:
            lines.append(f"a=rtcp-fb:{pt.id} {typ}" + (f" {sub}" if sub else ""))
    for ext in media.header_extensions:
        lines.append(f"a=extmap:{ext.id} {ext.uri}")
    return lines


def _source_lines(src: Source) -> list[str]:
    out = [f"a=ssrc:{src.ssrc} cname:{src.cname or src.owner or 'jvb'}"]
    if src.msid:
        out.append(f"a=ssrc:{src.ssrc} msid:{src.msid}")
    return out


def build_offer(contents: list[Content], transport: IceTransport, session_id: int = 1) -> str:
    """An SDP offer for a participant from what the focus sent it (see the module docstring)."""
    sections: list[tuple[str, list[str]]] = []
    for content in contents:
        if content.kind == "application":
            sections.append((content.name, [
                "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0",
                f"a=mid:{content.name}", f"a=sctp-port:{transport.sctp_port or 5000}"]))
            continue
        assert content.media is not None
        fmts = " ".join(str(pt.id) for pt in content.media.payload_types)
        remote = [s for s in content.sources if s.msid] or content.sources
        count = max(1, len(remote))
        for i in range(count):
            mid = content.name if i == 0 else f"{content.name}{i}"
            lines = [f"m={content.kind} 9 UDP/TLS/RTP/SAVPF {fmts}", "c=IN IP4 0.0.0.0", f"a=mid:{mid}",
                     "a=rtcp-mux"]
            if i < len(remote):
                src = remote[i]
                direction = "sendrecv" if i == 0 and content.senders == "both" else "sendonly"
                lines.append(f"a={direction}")
                if src.msid:
                    lines.append(f"a=msid:{src.msid}")
                lines += _source_lines(src)
                for g in content.groups:
                    if src.ssrc in g.ssrcs:
                        lines.append(f"a=ssrc-group:{g.semantics} " + " ".join(map(str, g.ssrcs)))
                        for other in g.ssrcs[1:]:
                            lines.append(f"a=ssrc:{other} cname:{src.cname or src.owner or 'jvb'}")
            else:
                lines.append("a=recvonly" if content.senders == "both" else "a=inactive")
            lines += _media_lines(content.media)
            sections.append((mid, lines))
    head = ["v=0", f"o=- {session_id} 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
            "a=group:BUNDLE " + " ".join(mid for mid, _ in sections), "a=msid-semantic: WMS *"]
    body: list[str] = []
    for _mid, lines in sections:
        body += lines
        body += [f"a=ice-ufrag:{transport.ufrag}", f"a=ice-pwd:{transport.pwd}"]
        for fp in transport.fingerprints:
            body += [f"a=fingerprint:{fp.hash} {fp.value}", f"a=setup:{fp.setup}"]
        body += [_candidate_line(c) for c in transport.candidates]
        body.append("a=end-of-candidates")
    return "\r\n".join(head + body) + "\r\n"


@dataclass
class Answer:
    """What an answer tells the bridge: the participant's transport and the streams it sends."""

    transport: IceTransport
    sources: list[Source] = field(default_factory=list)
    groups: list[SourceGroup] = field(default_factory=list)


_SSRC = re.compile(r"^a=ssrc:([0-9]+) (\w[\w-]*):?(.*)$")


def parse_answer(sdp: str, owner: str = "") -> Answer:
    """The participant's answer; ValueError naming the line for one we cannot use."""
    ufrag = pwd = ""
    fps: list[Fingerprint] = []
    cands: list[Candidate] = []
    sources: dict[int, Source] = {}
    groups: list[SourceGroup] = []
    kind = ""
    direction = ""
    msid = ""
    seen_fp: set[str] = set()
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
            direction = ""
            msid = ""
        elif line.startswith("a=ice-ufrag:") and not ufrag:
            ufrag = line.split(":", 1)[1]
        elif line.startswith("a=ice-pwd:") and not pwd:
            pwd = line.split(":", 1)[1]
        elif line.startswith("a=fingerprint:"):
            algo, _, value = line.split(":", 1)[1].partition(" ")
            if not value.strip():
                raise ValueError(f"fingerprint without a hash function and value: {line[:80]!r}")
            if value not in seen_fp:
                seen_fp.add(value)
                fps.append(Fingerprint(algo.lower(), value.strip(), "active"))
        elif line.startswith("a=setup:"):
            for fp in fps:
                fp.setup = line.split(":", 1)[1]
        elif line.startswith("a=candidate:"):
            c = parse_candidate_sdp(line)
            if c.component == 1 and all((c.ip, c.port) != (o.ip, o.port) for o in cands):
                cands.append(c)
        elif line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
            direction = line[2:]
        elif line.startswith("a=msid:"):
            msid = line[len("a=msid:"):]
        elif line.startswith("a=ssrc-group:") and kind in ("audio", "video"):
            semantics, *ssrcs = line[len("a=ssrc-group:"):].split() or [""]
            if not ssrcs:
                raise ValueError(f"ssrc-group without SSRCs: {line[:80]!r}")
            groups.append(SourceGroup(semantics, [_number(s, "ssrc-group SSRC", 1) for s in ssrcs]))
        elif line.startswith("a=ssrc:") and kind in ("audio", "video") and direction in ("sendrecv", "sendonly"):
            m = _SSRC.match(line)
            if m:
                ssrc = _number(m.group(1), "ssrc", 1)
                src = sources.setdefault(ssrc, Source(ssrc=ssrc, kind=kind, owner=owner, msid=msid))
                if m.group(2) == "cname":
                    src.cname = m.group(3)
                elif m.group(2) == "msid":
                    src.msid = m.group(3)
    transport = IceTransport(ufrag=ufrag, pwd=pwd, fingerprints=fps, candidates=cands)
    # groups of what is sent (aiortc lists an RTX group in its receive-only sections too)
    groups = [g for g in groups if all(ssrc in sources for ssrc in g.ssrcs)]
    return Answer(transport=transport, sources=list(sources.values()), groups=groups)


def default_media() -> list[Media]:
    """What the focus offers: opus and VP8 with Jitsi's payload types; the audio level (the
    bridge drops silence and picks speakers by it) and abs-send-time extensions; transport-cc
    (the transport-wide sequence number, id 5 in both kinds, and the `transport-cc` rtcp-fb):
    the bridge numbers what it sends each receiver and estimates its bandwidth from the
    receiver's feedback, and sends each sender feedback for what it receives (a browser that
    negotiated transport-cc sets its sending rate from that feedback, no longer from REMB,
    which the bridge keeps sending for the others). The id must be the same for everyone: the
    bridge reuses the sender's extension slot in the copy it sends a receiver. RTX (96 for
    VP8, Jitsi's numbers): senders answer the bridge's NACKs on their RTX streams (and pad
    there), which the bridge unwraps into the stream repaired; towards receivers the bridge
    resends on the media SSRC from its cache, which receivers accept with or without RTX."""
    from .model import HeaderExtension
    tcc = HeaderExtension(5, "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01")
    audio = Media("audio", [PayloadType(111, "opus", 48000, 2, {"minptime": "10", "useinbandfec": "1"},
                                        [("transport-cc", "")])], [])
    video = Media("video", [PayloadType(100, "VP8", 90000, 1, {},
                                        [("nack", ""), ("nack", "pli"), ("ccm", "fir"), ("goog-remb", ""),
                                         ("transport-cc", "")]),
                            PayloadType(96, "rtx", 90000, 1, {"apt": "100"})], [])
    audio.header_extensions.append(HeaderExtension(1, ns.RTP_AUDIO_LEVEL))
    audio.header_extensions.append(HeaderExtension(tcc.id, tcc.uri))
    video.header_extensions.append(HeaderExtension(3, "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"))
    video.header_extensions.append(HeaderExtension(tcc.id, tcc.uri))
    return [audio, video]
