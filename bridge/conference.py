"""One conference on the bridge: who sends what to whom, decided at change time, not per packet.

`routes` maps every forwarded sender SSRC to the (receiver transport, slot) pairs that get it. It
is rebuilt when endpoints, sources, last-N or the speaker ranking change; the per-packet path is
then one dict lookup, a silence check for audio, and one rewrite + encrypt + send per receiver.
A packet never goes back to its sender, nor outside its conference.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable

from . import rtp
from .endpoint import Endpoint
from .slots import CACHE_SIZE, Slot
from .speaker import SILENCE, SpeakerDetector

if TYPE_CHECKING:
    from .bridge import Bridge

log = logging.getLogger(__name__)

PLI_INTERVAL = 0.3  # at most one keyframe request per source this often
IDEAL_HEIGHT = 720  # what we ask of a sender someone receives (no simulcast layers yet)


class Conference:
    def __init__(self, bridge: "Bridge", meeting_id: str, name: str = "", focus: str = "") -> None:
        self.bridge = bridge
        self.meeting_id = meeting_id
        self.name = name
        self.focus = focus  # who created it: told when an endpoint expires
        self.endpoints: dict[str, Endpoint] = {}
        self.speaker = SpeakerDetector()
        # sender SSRC -> [(receiver's send_rtp, slot, receiver's send_rtcp)]
        self.routes: dict[int, list[tuple[Callable[[bytes], None], Slot, Callable[[bytes], None]]]] = {}
        self.owner_of: dict[int, Endpoint] = {}  # sender SSRC -> endpoint
        self._last_pli: dict[int, float] = {}
        self.created = time.monotonic()
        self.packets_forwarded = 0
        self.silence_dropped = 0
        self.unknown_dropped = 0

    # ---- membership --------------------------------------------------------------------------
    def add(self, ep: Endpoint) -> None:
        self.endpoints[ep.id] = ep
        self.speaker.add(ep.id)

    def remove(self, ep: Endpoint) -> None:
        if self.endpoints.get(ep.id) is ep:
            del self.endpoints[ep.id]
            self.speaker.remove(ep.id)
            ep.expired = True
            self.reassign()

    # ---- the hot path ------------------------------------------------------------------------
    def on_rtp(self, sender: Endpoint, data: bytes) -> None:
        if len(data) < 12:
            sender.packets_dropped += 1
            return
        ssrc = rtp.rtp_ssrc(data)
        src = sender.forwarded.get(ssrc)
        if src is None:
            if ssrc not in sender.sources:  # RTX and upper simulcast layers are known, just not relayed
                self.unknown_dropped += 1
            sender.packets_dropped += 1
            return
        seq = rtp.rtp_seq(data)
        stats = sender.stream_stats.get(ssrc)
        if stats is not None:
            stats.update(seq)
        cache = sender.video_cache.get(ssrc)
        if cache is not None:
            cache[seq % CACHE_SIZE] = (seq, data)
        if src.kind == "audio" and sender.audio_level_ext is not None:
            level = rtp.audio_level(data, sender.audio_level_ext)
            if level is not None:
                self.speaker.level(sender.id, level[1])
                if level[1] >= SILENCE:
                    self.silence_dropped += 1
                    return
        routes = self.routes.get(ssrc)
        if not routes:
            return
        for send, slot, _ in routes:
            send(slot.rewrite(data))
        self.packets_forwarded += len(routes)

    def on_rtcp(self, sender: Endpoint, data: bytes) -> None:
        for pt, fmt, off, length in rtp.iter_rtcp(data):
            if pt == 206 and fmt in (1, 4):  # PLI, FIR: the receiver wants a keyframe
                media = rtp.rtcp_media_ssrc(data, off) if fmt == 1 else self._fir_ssrc(data, off, length)
                slot = sender.slot_by_out.get(media) if media is not None else None
                if slot is not None and slot.source is not None:
                    self.request_keyframe(slot.source)
            elif pt == 205 and fmt == 1:  # NACK: resend from the source's cache, as the slot sent it
                media = rtp.rtcp_media_ssrc(data, off)
                slot = sender.slot_by_out.get(media) if media is not None else None
                owner = self.owner_of.get(slot.source) if slot is not None and slot.source is not None else None
                cache = owner.video_cache.get(slot.source) if owner is not None else None  # type: ignore[union-attr]
                if cache is not None and sender.transport is not None:
                    for seq in rtp.parse_nack(data, off, length):
                        in_seq = slot.source_seq(seq)  # type: ignore[union-attr]
                        entry = cache[in_seq % CACHE_SIZE]
                        if entry is not None and entry[0] == in_seq:
                            sender.transport.send_rtp(slot.rewrite(entry[1]))  # type: ignore[union-attr]
            elif pt == 200:  # SR: forward it to whoever receives that stream, re-addressed
                ssrc = int.from_bytes(data[off + 4:off + 8], "big") if off + 8 <= len(data) else None
                for _, slot, send_rtcp in self.routes.get(ssrc, ()) if ssrc is not None else ():
                    sr = slot.sender_report(data[off:off + length])
                    if sr is not None:
                        send_rtcp(sr)

    @staticmethod
    def _fir_ssrc(data: bytes, off: int, length: int) -> int | None:
        if length >= 20 and off + 16 <= len(data):
            return int.from_bytes(data[off + 12:off + 16], "big")
        return None

    def request_keyframe(self, source_ssrc: int) -> None:
        owner = self.owner_of.get(source_ssrc)
        if owner is None or owner.transport is None or owner.transport.state != "connected":
            return  # a sender that is not connected yet starts with a keyframe anyway
        now = time.monotonic()
        if now - self._last_pli.get(source_ssrc, 0.0) < PLI_INTERVAL:
            return
        self._last_pli[source_ssrc] = now
        owner.transport.send_rtcp(rtp.build_pli(self.bridge.feedback_ssrc_video, source_ssrc))

    def connected(self, ep: Endpoint) -> None:
        """A transport came up: route to it, and get it keyframes for the video it will show."""
        self.reassign()
        for slot in ep.video_slots:
            if slot.source is not None:
                self.request_keyframe(slot.source)

    # ---- decisions ---------------------------------------------------------------------------
    def reassign(self) -> None:
        """Fill every receiver's slots from the speaker ranking, keeping stable what can be."""
        order = {ep_id: i for i, ep_id in enumerate(self.speaker.ranking)}
        ranked = sorted(self.endpoints.values(), key=lambda e: order.get(e.id, len(order)))
        audio = [(s.ssrc, ep) for ep in ranked for s in ep.forwarded.values() if s.kind == "audio"]
        video = [(s.ssrc, ep) for ep in ranked for s in ep.forwarded.values() if s.kind == "video"]
        self.owner_of = {ssrc: ep for ep in self.endpoints.values() for ssrc in ep.sources}
        routes: dict[int, list[tuple[Callable[[bytes], None], Slot, Callable[[bytes], None]]]] = {}
        new_video_sources: set[int] = set()
        for recv in self.endpoints.values():
            if recv.transport is None:
                continue
            changed = self._fill(recv.audio_slots, [a for a in audio if a[1] is not recv], len(recv.audio_slots))
            changed_v = self._fill(recv.video_slots, [v for v in video if v[1] is not recv], recv.wanted_video())
            send, send_rtcp = recv.transport.send_rtp, recv.transport.send_rtcp
            for slot in recv.audio_slots + recv.video_slots:
                if slot.source is not None:
                    routes.setdefault(slot.source, []).append((send, slot, send_rtcp))
            for slot in changed_v:
                if slot.source is not None:
                    new_video_sources.add(slot.source)
            if changed or changed_v:
                recv.sources_map()
        self.routes = routes
        for ssrc in new_video_sources:
            self.request_keyframe(ssrc)
        self._sender_constraints()

    def _sender_constraints(self) -> None:
        """Tell each sender whether anyone receives its video, so nobody uploads video in vain."""
        wanted = {slot.owner for recv in self.endpoints.values() for slot in recv.video_slots if slot.owner}
        for ep in self.endpoints.values():
            height = IDEAL_HEIGHT if ep.id in wanted else 0
            if ep.sent_ideal_height != height:
                ep.sent_ideal_height = height
                ep.send_channel({"colibriClass": "SenderVideoConstraints",
                                 "videoConstraints": {"idealHeight": height}})

    @staticmethod
    def _fill(slots: list[Slot], candidates: list[tuple[int, Endpoint]], wanted: int) -> list[Slot]:
        chosen = candidates[:wanted]
        chosen_ssrcs = {ssrc for ssrc, _ in chosen}
        changed: list[Slot] = []
        for slot in slots:  # drop what is no longer chosen
            if slot.source is not None and (slot.source not in chosen_ssrcs or slot.index >= wanted):
                slot.assign(None)
                changed.append(slot)
        held = {slot.source for slot in slots if slot.source is not None}
        free = [slot for slot in slots if slot.source is None and slot.index < wanted]
        for ssrc, ep in chosen:
            if ssrc in held:
                continue
            if not free:
                break
            slot = free.pop(0)
            slot.assign(ssrc, ep.id)
            if slot not in changed:
                changed.append(slot)
        return changed

    def tick(self) -> None:
        """Periodic: speaker ranking (and the layout that follows it)."""
        before = list(self.speaker.ranking)
        if self.speaker.tick():
            dominant = self.speaker.dominant
            for ep in self.endpoints.values():
                ep.send_channel({"colibriClass": "DominantSpeakerEndpointChangeEvent",
                                 "dominantSpeakerEndpoint": dominant, "previousSpeakers": self.speaker.ranking[1:4]})
        if self.speaker.ranking != before:
            self.reassign()

    def stats(self) -> dict:
        return {"meeting_id": self.meeting_id, "name": self.name, "endpoints": len(self.endpoints),
                "packets_forwarded": self.packets_forwarded, "silence_dropped": self.silence_dropped,
                "unknown_dropped": self.unknown_dropped, "dominant_speaker": self.speaker.dominant}
