"""One participant's presence on the bridge: its transport, what it sends, what it receives."""
from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from jitsi_base import ns
from jitsi_protocols.model import Media, Source, SourceGroup

from . import rtp
from .bwe import Estimator
from .simulcast import UNLIMITED
from .slots import ALL_PAYLOAD_TYPES, CACHE_SIZE, Slot, random_ssrc
from .twcc import TCC_URI, ArrivalLog, SendLog

if TYPE_CHECKING:
    from .conference import Conference
    from .relay import Relay
    from .transport import EndpointTransport

log = logging.getLogger(__name__)

TCC_STALE = 5.0  # s without transport-cc feedback after which a receiver's REMB counts again


class StreamStats:
    """What an RTCP receiver report needs about one incoming stream (RFC 3550 A.3), cheaply."""

    __slots__ = ("received", "base_seq", "max_seq", "cycles", "expected_prior", "received_prior", "started",
                 "octets", "octets_prior", "bitrate")

    def __init__(self) -> None:
        self.received = 0
        self.base_seq = 0
        self.max_seq = 0
        self.cycles = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.started = False
        self.octets = 0  # bytes received (whole packets), for the bitrate
        self.octets_prior = 0
        self.bitrate: float | None = None  # bits/s over the last measurement (None: not yet)

    def measure(self, seconds: float) -> None:
        self.bitrate = (self.octets - self.octets_prior) * 8 / seconds
        self.octets_prior = self.octets

    def update(self, seq: int, size: int) -> int:
        """Count a packet; how far it is ahead of the newest before it (1: the next one, more:
        packets are missing in between, 0 or less: late or repeated)."""
        d = 1
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
        self.octets += size
        return d

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
        # set for an endpoint of another bridge whose packets arrive over a relay (relay.py):
        # it sends, but has no slots and no transport of its own
        self.relay: "Relay | None" = None
        self.ws_password = secrets.token_urlsafe(16)
        self.created = time.monotonic()
        self.media: list[Media] = []
        self.sources: dict[int, Source] = {}
        self.groups: list[SourceGroup] = []
        # SSRCs whose packets are forwarded: every simulcast layer, not RTX
        self.forwarded: dict[int, Source] = {}
        self.rtx_of: dict[int, int] = {}  # RTX SSRC -> the SSRC it repairs (FID groups)
        self.rtx_pts: dict[int, int] = {}  # RTX payload type -> the payload type it repairs
        # one entry per logical source (a simulcast source is its first, lowest, layer's SSRC):
        # what fills receivers' slots
        self.logical: dict[int, Source] = {}
        self.layers: dict[int, tuple[int, int]] = {}  # layer SSRC -> (logical source, layer index)
        self.simulcast: dict[int, tuple[int, ...]] = {}  # logical source -> layer SSRCs, lowest first
        self.vp8_pts: frozenset[int] = ALL_PAYLOAD_TYPES  # video payload types that are VP8
        self.stream_stats: dict[int, StreamStats] = {}
        # recent packets of each video source, kept once per sender (not per receiver) for NACKs
        self.video_cache: dict[int, list[tuple[int, bytes] | None]] = {}
        self.audio_level_ext: int | None = None
        self.audio_slots: list[Slot] = []
        self.video_slots: list[Slot] = []
        self.slot_by_out: dict[int, Slot] = {}
        self.last_n: int = -1  # what the receiver asked for (-1: as many as we have slots)
        self.channel_send: Callable[[str], Any] | None = None  # the bridge channel (WebSocket or SCTP)
        self.channel_close: Callable[[], Any] | None = None  # ends it (a coroutine for a WebSocket)
        self.sctp_port: int | None = None  # set when the focus asked for a data channel (COLIBRI2 <sctp/>)
        # Jitsi's contract (COLIBRI2 capability ssrc-rewriting): the receiver knows no slots from
        # its offer and learns each slot from the source maps, as the sender's source
        self.ssrc_rewriting = False
        self._mapped: dict[int, tuple[str, str]] = {}  # slot SSRC -> (owner, source name) announced
        self.expired = False
        self.packets_dropped = 0
        self.sent_ideal_height: int | None = None  # last SenderVideoConstraints we sent
        # as a receiver: ReceiverVideoConstraints (max heights; UNLIMITED if not given) ...
        self.default_max_height = UNLIMITED
        self.max_heights: dict[str, int] = {}  # by source name or endpoint id
        # sources (names, or endpoint ids as older clients send) it wants in its slots before
        # anyone the speaker ranking would pick: on stage first, then selected (pinned)
        self.pinned: tuple[str, ...] = ()
        # ... and its bandwidth estimate: the REMB it sends us, or ours from its transport-cc
        # feedback when it negotiated transport-cc and sends feedback (see simulcast.py)
        self.remb_bps: int | None = None
        self.bwe_limited_until = 0.0
        # transport-cc (twcc.py), set up by set_media when the media has the extension: the id,
        # our numbering of what we send it, its estimate, and the arrivals of what it sends us
        self.tcc_ext: int | None = None
        self.tcc_out: SendLog | None = None
        self.bwe: Estimator | None = None
        self.bwe_history: deque[tuple[float, float]] = deque()  # (time, estimate) over the last seconds
        self.bwe_allocated = (0.0, 0.0)  # (time, estimate) of the last layer choice it caused
        self.arrivals: ArrivalLog | None = None

    # ---- set-up ----------------------------------------------------------------------------
    def make_slots(self, audio: int, video: int, taken: set[int]) -> None:
        self.audio_slots = [Slot("audio", i, random_ssrc(taken)) for i in range(audio)]
        self.video_slots = [Slot("video", i, random_ssrc(taken), random_ssrc(taken)) for i in range(video)]
        self.slot_by_out = {s.out_ssrc: s for s in self.audio_slots + self.video_slots}
        for s in self.audio_slots + self.video_slots:
            s.tcc = self.tcc_out

    def slot_sources(self) -> list[Source]:
        """The slots as sources for the Jingle offer to this participant."""
        return [Source(ssrc=s.out_ssrc, kind=s.kind, owner="jvb", name=s.name, cname="jvb",
                       msid=f"jvb-{s.kind}-{s.index} jvb-{s.kind}-{s.index}-track")
                for s in self.audio_slots + self.video_slots]

    def set_media(self, media: list[Media]) -> None:
        self.media = media
        self.audio_level_ext = None
        vp8 = frozenset(pt.id for m in media if m.kind == "video" for pt in m.payload_types
                        if pt.name.upper() == "VP8")
        has_video = any(m.payload_types for m in media if m.kind == "video")
        self.vp8_pts = vp8 if has_video else ALL_PAYLOAD_TYPES  # unknown: assume VP8
        # RTX payload type -> the payload type it retransmits (RFC 4588 apt)
        self.rtx_pts = {pt.id: apt for m in media for pt in m.payload_types
                        if pt.name.lower() == "rtx" and (apt := _payload_type(pt.parameters.get("apt", ""))) is not None}
        tcc_ext = None
        for m in media:
            for ext in m.header_extensions:
                if m.kind == "audio" and ext.uri == ns.RTP_AUDIO_LEVEL:
                    self.audio_level_ext = ext.id
                elif ext.uri == TCC_URI:
                    tcc_ext = ext.id
        self.set_tcc(tcc_ext)

    def set_tcc(self, ext_id: int | None) -> None:
        """Transport-cc on (with this one-byte extension id) or off. What we already have is
        kept when the id stays (a COLIBRI2 update repeats the media)."""
        if ext_id == self.tcc_ext:
            return
        self.tcc_ext = ext_id
        self.tcc_out = SendLog(ext_id) if ext_id is not None else None
        self.bwe = Estimator() if ext_id is not None else None
        self.bwe_history.clear()
        # what a relayed endpoint sends is acknowledged by its own bridge, not by us
        self.arrivals = ArrivalLog() if ext_id is not None and self.relay is None else None
        for s in self.audio_slots + self.video_slots:
            s.tcc = self.tcc_out

    def set_sources(self, sources: list[Source], groups: list[SourceGroup]) -> None:
        self.sources = {s.ssrc: s for s in sources}
        self.groups = groups
        self.rtx_of = {}
        for g in groups:
            if g.semantics == "FID" and len(g.ssrcs) == 2:
                # RTX: unwrapped into the stream it repairs (Conference.on_rtp); receivers get
                # retransmissions from our cache on the media SSRC
                self.rtx_of[g.ssrcs[1]] = g.ssrcs[0]
        self.forwarded = {ssrc: s for ssrc, s in self.sources.items() if ssrc not in self.rtx_of}
        self.layers = {}
        self.simulcast = {}
        for g in groups:
            layers = tuple(ssrc for ssrc in g.ssrcs if ssrc in self.forwarded)
            if g.semantics == "SIM" and len(layers) > 1 and not any(ssrc in self.layers for ssrc in layers):
                self.simulcast[layers[0]] = layers
                for i, ssrc in enumerate(layers):
                    self.layers[ssrc] = (layers[0], i)
        self.logical = {ssrc: s for ssrc, s in self.forwarded.items()
                        if ssrc not in self.layers or ssrc in self.simulcast}
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

    def set_receiver_constraints(self, message: dict[str, Any]) -> bool:
        """Jitsi's ReceiverVideoConstraints: `defaultConstraints` and per-source `constraints`
        (keyed by source name, or endpoint id as older clients do), each {"maxHeight": H}; a
        negative height is no limit, 0 no video. A part the message leaves out is kept. True if
        anything changed."""
        before = (self.default_max_height, dict(self.max_heights), self.pinned)
        default = message.get("defaultConstraints")
        if isinstance(default, dict):
            h = _height(default.get("maxHeight"))
            if h is not None:
                self.default_max_height = h
        per_source = message.get("constraints")
        if isinstance(per_source, dict):
            self.max_heights = {}
            for key, c in per_source.items():
                h = _height(c.get("maxHeight")) if isinstance(c, dict) else None
                if isinstance(key, str) and h is not None:
                    self.max_heights[key] = h
        pinned: list[str] = []
        for key in ("onStageSources", "onStageEndpoints", "selectedSources", "selectedEndpoints"):
            value = message.get(key)
            if isinstance(value, list):
                pinned += [v for v in value if isinstance(v, str) and v and v not in pinned]
        if any(k in message for k in ("onStageSources", "onStageEndpoints", "selectedSources",
                                      "selectedEndpoints")):
            self.pinned = tuple(pinned[:64])
        return before != (self.default_max_height, self.max_heights, self.pinned)

    def max_height(self, source: Source | None, owner: str) -> int:
        """What this receiver wants of a source at most (pixels of height, UNLIMITED, or 0)."""
        if self.max_heights:
            if source is not None and source.name in self.max_heights:
                return self.max_heights[source.name]
            if owner in self.max_heights:
                return self.max_heights[owner]
        return self.default_max_height

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

    def close_channel(self) -> None:
        """The endpoint is gone: end its bridge channel too (a WebSocket left open would also
        hold up the HTTP server's shutdown)."""
        close, self.channel_close, self.channel_send = self.channel_close, None, None
        if close is None:
            return
        try:
            result = close()
            if asyncio.iscoroutine(result):
                asyncio.ensure_future(result)
        except Exception:
            log.debug("closing the bridge channel of %s failed", self.id, exc_info=True)

    def sources_map(self, full: bool = False) -> None:
        """Tell the receiver who is in each of its slots (Jitsi's Audio/VideoSourcesMap).

        Our own clients know the slots from their offer and get every slot, empty ones included,
        named by slot (`jvb-v0`). An SSRC-rewriting (Jitsi) client knows no slot until a map
        names it: it gets occupied slots only, named by the sender's source, when a slot is
        first used or changes hands (`full`: all occupied ones, for a new bridge channel)."""
        if self.ssrc_rewriting:
            self._jitsi_sources_map(full)
            return
        for kind, slots in (("audio", self.audio_slots), ("video", self.video_slots)):
            mapped = [{"source": s.name, "owner": s.owner or None, "ssrc": s.out_ssrc, "slot": s.index}
                      for s in slots]
            self.send_channel({"colibriClass": "AudioSourcesMap" if kind == "audio" else "VideoSourcesMap",
                               "mappedSources": mapped})

    def _jitsi_sources_map(self, full: bool) -> None:
        if self.channel_send is None:
            self._mapped.clear()  # nothing reached it: all of it goes out once a channel opens
            return
        endpoints = self.conference.endpoints
        if full:
            self._mapped.clear()
        else:  # the library forgets a participant's tracks when it leaves: one back is news
            for ssrc in [ssrc for ssrc, (owner, _) in self._mapped.items() if owner not in endpoints]:
                del self._mapped[ssrc]
        for kind, slots in (("audio", self.audio_slots), ("video", self.video_slots)):
            mapped = []
            for s in slots:
                if s.source is None or not s.owner:
                    continue
                owner = endpoints.get(s.owner)
                src = (owner.logical.get(s.source) or owner.sources.get(s.source)) if owner is not None else None
                name = src.name if src is not None and src.name else f"{s.owner}-{kind[0]}0"
                if self._mapped.get(s.out_ssrc) == (s.owner, name):
                    continue
                self._mapped[s.out_ssrc] = (s.owner, name)
                entry: dict[str, Any] = {"source": name, "owner": s.owner, "ssrc": s.out_ssrc}
                if kind == "video":
                    entry["rtx"] = s.rtx_ssrc
                    entry["videoType"] = "DESKTOP" if src is not None and src.video_type == "desktop" else "CAMERA"
                mapped.append(entry)
            if mapped:
                self.send_channel({"colibriClass": "AudioSourcesMap" if kind == "audio" else "VideoSourcesMap",
                                   "mappedSources": mapped})

    def cached(self, ssrc: int, seq: int) -> bytes | None:
        """A recent packet of one of our video streams, as it arrived; None if it is gone."""
        cache = self.video_cache.get(ssrc)
        entry = cache[seq % CACHE_SIZE] if cache is not None else None
        return entry[1] if entry is not None and entry[0] == seq else None

    def bitrate(self, ssrc: int) -> float | None:
        """Measured bits/s of one of our streams, None if not measured yet."""
        st = self.stream_stats.get(ssrc)
        return st.bitrate if st is not None else None

    @property
    def feedback_transport(self) -> "EndpointTransport | None":
        """Where RTCP about this endpoint's streams goes: its transport, or its relay's."""
        return self.transport if self.relay is None else self.relay.transport

    def bwe_source(self, now: float | None = None) -> str | None:
        """Where this receiver's bandwidth estimate comes from: "transport-cc" (our estimator,
        fed by its feedback, recent), "remb" (its own REMB), or None (no estimate: no limit)."""
        now = time.monotonic() if now is None else now
        bwe = self.bwe
        if bwe is not None and bwe.feedbacks and now - bwe.last_feedback < TCC_STALE:
            return "transport-cc"
        return "remb" if self.remb_bps is not None else None

    def bwe_bps(self, now: float | None = None) -> float | None:
        source = self.bwe_source(now)
        if source == "transport-cc":
            assert self.bwe is not None
            return self.bwe.estimate
        return float(self.remb_bps) if source == "remb" and self.remb_bps is not None else None

    def stats(self) -> dict[str, Any]:
        t = self.transport
        if self.relay is not None:
            return {"id": self.id, "relay": self.relay.id, "sources": sorted(self.forwarded)}
        bwe = self.bwe_bps()
        return {"id": self.id, "stats_id": self.stats_id,
                "transport": t.state if t is not None else "none",
                "sources": sorted(self.forwarded), "dropped": self.packets_dropped,
                "bwe_bps": round(bwe) if bwe is not None else None, "bwe_source": self.bwe_source(),
                **({k: v for k, v in t.stats.items()} if t is not None else {})}


def _payload_type(value: str) -> int | None:
    """An RTP payload type (0..127) as an SDP/Jingle parameter gives it, else None."""
    return int(value) if value.isascii() and value.isdigit() and int(value) <= 127 else None


def _height(value: Any) -> int | None:
    """A maxHeight from a participant's message; None for anything that is not a finite number
    (JSON as Python reads it has NaN and Infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):  # (an int may be too big for a float)
        return None
    return UNLIMITED if value < 0 else min(int(value), UNLIMITED)
