"""One participant's presence on the bridge: its transport, what it sends, what it receives."""
from __future__ import annotations

import json
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any, Callable

from xmpp_plugins.conference.model import Media, Source, SourceGroup

from . import rtp
from .slots import CACHE_SIZE, Slot, random_ssrc

if TYPE_CHECKING:
    from .conference import Conference
    from .transport import EndpointTransport

log = logging.getLogger(__name__)

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


class StreamStats:
    """What an RTCP receiver report needs about one incoming stream (RFC 3550 A.3), cheaply."""

    __slots__ = ("received", "base_seq", "max_seq", "cycles", "expected_prior", "received_prior", "started")

    def __init__(self) -> None:
        self.received = 0
        self.base_seq = 0
        self.max_seq = 0
        self.cycles = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.started = False

    def update(self, seq: int) -> None:
        if not self.started:
            self.started = True
            self.base_seq = self.max_seq = seq
        else:
            d = rtp.seq_delta(seq, self.max_seq)
            if d > 0:
                if seq < self.max_seq:
                    self.cycles += 1 << 16
                self.max_seq = seq
        self.received += 1

    def report(self, ssrc: int) -> "rtp.ReportBlock":
        extended = self.cycles + self.max_seq
        expected = extended - self.base_seq + 1
        lost = max(0, expected - self.received)
        exp_int = expected - self.expected_prior
        rec_int = self.received - self.received_prior
        self.expected_prior, self.received_prior = expected, self.received
        lost_int = exp_int - rec_int
        fraction = (lost_int << 8) // exp_int if exp_int > 0 and lost_int > 0 else 0
        return rtp.ReportBlock(ssrc=ssrc, fraction_lost=min(fraction, 255), cumulative_lost=min(lost, 0x7FFFFF),
                               highest_seq=extended & 0xFFFFFFFF, jitter=0, lsr=0, dlsr=0)


class Endpoint:
    def __init__(self, conference: "Conference", endpoint_id: str, stats_id: str = "") -> None:
        self.conference = conference
        self.id = endpoint_id
        self.stats_id = stats_id
        self.transport: "EndpointTransport | None" = None
        self.ws_password = secrets.token_urlsafe(16)
        self.created = time.monotonic()
        self.media: list[Media] = []
        self.sources: dict[int, Source] = {}
        self.groups: list[SourceGroup] = []
        # SSRCs whose packets are forwarded (primary streams; RTX and extra simulcast layers are not)
        self.forwarded: dict[int, Source] = {}
        self.stream_stats: dict[int, StreamStats] = {}
        # recent packets of each video source, kept once per sender (not per receiver) for NACKs
        self.video_cache: dict[int, list[tuple[int, bytes] | None]] = {}
        self.audio_level_ext: int | None = None
        self.audio_slots: list[Slot] = []
        self.video_slots: list[Slot] = []
        self.slot_by_out: dict[int, Slot] = {}
        self.last_n: int = -1  # what the receiver asked for (-1: as many as we have slots)
        self.channel_send: Callable[[str], Any] | None = None  # the bridge channel (WebSocket or SCTP)
        self.sctp_port: int | None = None  # set when the focus asked for a data channel (COLIBRI2 <sctp/>)
        self.expired = False
        self.packets_dropped = 0
        self.sent_ideal_height: int | None = None  # last SenderVideoConstraints we sent

    # ---- set-up ----------------------------------------------------------------------------
    def make_slots(self, audio: int, video: int, taken: set[int]) -> None:
        self.audio_slots = [Slot("audio", i, random_ssrc(taken)) for i in range(audio)]
        self.video_slots = [Slot("video", i, random_ssrc(taken)) for i in range(video)]
        self.slot_by_out = {s.out_ssrc: s for s in self.audio_slots + self.video_slots}

    def slot_sources(self) -> list[Source]:
        """The slots as sources for the Jingle offer to this participant."""
        return [Source(ssrc=s.out_ssrc, kind=s.kind, owner="jvb", name=s.name, cname="jvb",
                       msid=f"jvb-{s.kind}-{s.index} jvb-{s.kind}-{s.index}-track")
                for s in self.audio_slots + self.video_slots]

    def set_media(self, media: list[Media]) -> None:
        self.media = media
        self.audio_level_ext = None
        for m in media:
            if m.kind == "audio":
                for ext in m.header_extensions:
                    if ext.uri == AUDIO_LEVEL_URI:
                        self.audio_level_ext = ext.id

    def set_sources(self, sources: list[Source], groups: list[SourceGroup]) -> None:
        self.sources = {s.ssrc: s for s in sources}
        self.groups = groups
        secondary: set[int] = set()
        for g in groups:
            if g.semantics == "FID" and len(g.ssrcs) > 1:
                secondary.update(g.ssrcs[1:])  # RTX: not forwarded, NACKs are answered from our cache
            elif g.semantics == "SIM" and len(g.ssrcs) > 1:
                secondary.update(g.ssrcs[1:])  # simulcast: we forward the first (lowest) layer
        self.forwarded = {ssrc: s for ssrc, s in self.sources.items() if ssrc not in secondary}
        for ssrc, src in self.forwarded.items():
            self.stream_stats.setdefault(ssrc, StreamStats())
            if src.kind == "video":
                self.video_cache.setdefault(ssrc, [None] * CACHE_SIZE)
        for ssrc in list(self.video_cache):
            if ssrc not in self.forwarded:
                del self.video_cache[ssrc]
        for ssrc in list(self.stream_stats):
            if ssrc not in self.forwarded:
                del self.stream_stats[ssrc]

    def wanted_video(self) -> int:
        n = len(self.video_slots)
        return n if self.last_n < 0 else min(n, self.last_n)

    # ---- bridge channel --------------------------------------------------------------------
    def send_channel(self, message: dict[str, Any]) -> None:
        if self.channel_send is None:
            return
        try:
            self.channel_send(json.dumps(message))
        except Exception:
            log.debug("bridge channel to %s failed", self.id, exc_info=True)

    def sources_map(self) -> None:
        """Tell the receiver who is in each of its slots (Jitsi's Audio/VideoSourcesMap)."""
        for kind, slots in (("audio", self.audio_slots), ("video", self.video_slots)):
            mapped = [{"source": s.name, "owner": s.owner or None, "ssrc": s.out_ssrc, "slot": s.index}
                      for s in slots]
            self.send_channel({"colibriClass": "AudioSourcesMap" if kind == "audio" else "VideoSourcesMap",
                               "mappedSources": mapped})

    def stats(self) -> dict[str, Any]:
        t = self.transport
        return {"id": self.id, "stats_id": self.stats_id,
                "transport": t.state if t is not None else "none",
                "sources": sorted(self.forwarded), "dropped": self.packets_dropped,
                **({k: v for k, v in t.stats.items()} if t is not None else {})}
