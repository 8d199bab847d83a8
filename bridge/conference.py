"""One conference on the bridge: who sends what to whom, decided at change time, not per packet.

`routes` maps every forwarded sender SSRC to the (receiver transport, slot) pairs that get it. It
is rebuilt when endpoints, sources, last-N or the speaker ranking change; the per-packet path is
then one dict lookup, a silence check for audio, and one rewrite + encrypt + send per receiver.
A packet never goes back to its sender, nor outside its conference.

Simulcast (see simulcast.py): `routes` is keyed by every layer SSRC, and a layer's entries are
the slots whose current layer it is (the slot's `fwd`) or whose pending target it is (the slot's
`watch`, which waits for a keyframe); a layer nobody needs has no entry, so its packets cost one
lookup. A slot's switch, and any change of targets, re-routes just that source.

Cascading (see relay.py): endpoints of other bridges are in `endpoints` too, as relayed
endpoints (ranked, never receivers); each relay is one more entry in the routes of the local
sources it carries, passing packets unchanged.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Callable

from . import rtp, simulcast, twcc
from .endpoint import Endpoint
from .relay import PASS, PassThrough, Relay, parse_wanted
from .slots import CACHE_SIZE, LayerRoute, Slot
from .speaker import SILENCE, SpeakerDetector

if TYPE_CHECKING:
    from .bridge import Bridge

log = logging.getLogger(__name__)

PLI_INTERVAL = 0.3  # at most one keyframe request per source this often
IDEAL_HEIGHT = 720  # what we ask of a sender someone receives without a lower constraint
MEASURE_INTERVAL = 1.0  # seconds between bitrate measurements of incoming streams (and layer choices)
KEYFRAME_RETRY = 1.0  # a layer switch still waiting for its keyframe asks again this often
NACK_MAX_GAP = 64  # packets missing at once that we ask a sender to resend (more: a keyframe)
NACK_RETRY = 0.1  # s after which what is still missing is asked for once more
EPOCH = time.monotonic()  # arrival times in transport-cc feedback count microseconds from here
_U16_unpack_from = rtp._U16.unpack_from
_monotonic = time.monotonic


class Conference:
    def __init__(self, bridge: "Bridge", meeting_id: str, name: str = "", focus: str = "") -> None:
        self.bridge = bridge
        self.meeting_id = meeting_id
        self.name = name
        self.focus = focus  # who created it: told when an endpoint expires
        self.endpoints: dict[str, Endpoint] = {}
        self.speaker = SpeakerDetector()
        # sender SSRC -> [(receiver's send_rtp, slot (or a simulcast slot's LayerRoute), receiver's send_rtcp)]
        self.routes: dict[int, list[tuple[Callable[[bytes], None], Slot | LayerRoute | PassThrough, Callable[[bytes], None]]]] = {}
        # simulcast source -> [(receiver's send_rtp, slot, receiver's send_rtcp)] for every slot holding it
        self.layered: dict[int, list[tuple[Callable[[bytes], None], Slot, Callable[[bytes], None]]]] = {}
        self.owner_of: dict[int, Endpoint] = {}  # sender SSRC -> endpoint
        self.relays: dict[str, Relay] = {}  # by the id of the bridge at the other end
        self._order: dict[str, int] = {}  # see _rank_order
        self._order_version = -1
        # local sender SSRC -> the relays' route entries (merged into `routes`)
        self._relay_routes: dict[int, list[tuple[Callable[[bytes], None], PassThrough, Callable[[bytes], None]]]] = {}
        self._last_pli: dict[int, float] = {}
        self.created = time.monotonic()
        self._measured = self.created
        self.packets_forwarded = 0
        self.silence_dropped = 0
        self.unknown_dropped = 0
        self.padding_dropped = 0
        self.nacks_sent = 0  # to senders, for video lost on the way to us
        self.rtx_received = 0  # retransmissions that came on an RTX stream, unwrapped
        self.empty_since: float | None = None  # since when no local endpoint is left (Bridge.expire_silent)

    # ---- membership --------------------------------------------------------------------------
    def add(self, ep: Endpoint) -> None:
        self.endpoints[ep.id] = ep
        self.speaker.add(ep.id)

    def remove(self, ep: Endpoint) -> None:
        if self._drop(ep):
            self.reassign()

    def _drop(self, ep: Endpoint) -> bool:
        """Take `ep` out of the conference (no reassignment); False if it was not in it."""
        if self.endpoints.get(ep.id) is not ep:
            return False
        del self.endpoints[ep.id]
        self.speaker.remove(ep.id)
        ep.expired = True
        return True

    # ---- the hot path ------------------------------------------------------------------------
    def on_rtp(self, sender: Endpoint, data: bytes) -> None:
        if len(data) < 12:
            sender.packets_dropped += 1
            return
        tcc = None
        if sender.tcc_ext is not None:  # every packet that arrives counts for its feedback
            tcc_at = twcc.find_transport_seq(data, sender.tcc_ext)
            if tcc_at >= 0:
                now = _monotonic()
                arrivals = sender.arrivals
                if arrivals is not None:  # none for a relayed endpoint
                    arrivals.add(_U16_unpack_from(data, tcc_at)[0], int((now - EPOCH) * 1e6))
                tcc = (tcc_at, now, len(data))  # for every receiver's copy (twcc.SendLog.stamp)
        if data[0] & 0x20 and rtp.padding_only(data):
            self.padding_dropped += 1  # a probe of the sender's link (counted above for its feedback)
            return
        ssrc = rtp.rtp_ssrc(data)
        src = sender.forwarded.get(ssrc)
        if src is None:
            repaired = sender.rtx_of.get(ssrc)
            apt = sender.rtx_pts.get(data[1] & 0x7F) if repaired is not None else None
            unwrapped = rtp.unwrap_rtx(data, repaired, apt) if repaired is not None and apt is not None else None
            if unwrapped is None:
                if ssrc not in sender.sources:
                    self.unknown_dropped += 1
                sender.packets_dropped += 1
                return
            # a retransmission (an answer to our NACK): from here on, the packet it repairs
            data, ssrc = unwrapped, repaired
            src = sender.forwarded.get(ssrc)
            if src is None:
                sender.packets_dropped += 1
                return
            self.rtx_received += 1
        seq = rtp.rtp_seq(data)
        stats = sender.stream_stats.get(ssrc)
        if stats is not None:
            ahead = stats.update(seq, len(data))
            if ahead > 1 and src.kind == "video":
                self._missing(sender, ssrc, seq, ahead - 1)
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
            out = slot.rewrite(data, tcc)
            if out is not None:  # a simulcast slot drops what is not (yet) its layer
                send(out)
        self.packets_forwarded += len(routes)

    def _missing(self, sender: Endpoint, ssrc: int, seq: int, gap: int) -> None:
        """Video packets went missing on the way from the sender: ask it to resend them (RFC
        4585 generic NACK; browsers resend from their history) before any receiver notices, and
        once more a little later for those still missing. A larger gap asks for a keyframe."""
        if gap > NACK_MAX_GAP:
            self.request_keyframe(ssrc)
            return
        lost = [(seq - k) & 0xFFFF for k in range(gap, 0, -1)]
        self._nack(sender, ssrc, lost)
        asyncio.get_running_loop().call_later(NACK_RETRY, self._nack, sender, ssrc, lost, True)

    def _nack(self, sender: Endpoint, ssrc: int, lost: list[int], retry: bool = False) -> None:
        if sender.expired:
            return
        if retry:  # only what has not arrived since
            lost = [s for s in lost if sender.cached(ssrc, s) is None]
        transport = sender.feedback_transport
        if not lost or transport is None or transport.state != "connected":
            return
        transport.send_rtcp(rtp.build_nack(self.bridge.feedback_ssrc_video, ssrc, lost))
        self.nacks_sent += 1

    def on_rtcp(self, sender: Endpoint, data: bytes) -> None:
        for pt, fmt, off, length in rtp.iter_rtcp(data):
            if pt == 206 and fmt in (1, 4):  # PLI, FIR: the receiver wants a keyframe
                media = self._keyframe_target(data, fmt, off, length)
                slot = sender.slot_by_out.get(media) if media is not None else None
                if slot is not None and slot.source is not None:
                    ssrc = self._keyframe_ssrc(slot)
                    if ssrc is not None:
                        self.request_keyframe(ssrc)
            elif pt == 205 and fmt == 1:  # NACK: resend from the source's cache, as the slot sent it
                media = rtp.rtcp_media_ssrc(data, off)
                slot = sender.slot_by_out.get(media) if media is not None else None
                if slot is None or slot.source is None or sender.transport is None:
                    continue
                # a simulcast slot resends from its current layer, as it sent it
                ssrc = slot.layer_ssrc if slot.layers is not None else slot.source
                owner = self.owner_of.get(ssrc) if ssrc is not None else None
                if owner is not None and ssrc is not None:
                    rewrite = slot.rewrite_layer if slot.layers is not None else slot.rewrite
                    for seq in rtp.parse_nack(data, off, length):
                        packet = owner.cached(ssrc, slot.source_seq(seq))
                        if packet is not None:
                            # a resent packet is a new transport packet: it gets our next number
                            at = twcc.find_transport_seq(packet, sender.tcc_ext) \
                                if sender.tcc_ext is not None else -1
                            tcc = (at, time.monotonic(), len(packet)) if at >= 0 else None
                            out = rewrite(packet, tcc)
                            if out is not None:
                                sender.transport.send_rtp(out)
            elif pt == 205 and fmt == 15:  # transport-cc feedback: our estimate of its link
                fb = twcc.parse_feedback(data, off, length)
                if fb is not None and sender.bwe is not None and sender.tcc_out is not None:
                    now = time.monotonic()
                    sender.bwe.on_feedback(sender.tcc_out.packets(fb), now)
                    if simulcast.on_bwe(sender, now) and self.layered:
                        self._allocate(sender, now)
            elif pt == 206 and fmt == 15:  # REMB: the receiver's bandwidth estimate
                remb = rtp.parse_remb(data, off, length)
                if remb is not None and self.layered \
                        and simulcast.on_remb(sender, remb[0], time.monotonic(), self.owner_of):
                    self._allocate(sender)
            elif pt == 200:
                self._forward_sr(data, off, length)

    def _forward_sr(self, data: bytes, off: int, length: int) -> None:
        """A sender report goes to whoever receives that stream, re-addressed."""
        ssrc = int.from_bytes(data[off + 4:off + 8], "big") if off + 8 <= len(data) else None
        for _, slot, send_rtcp in self.routes.get(ssrc, ()) if ssrc is not None else ():
            sr = slot.sender_report(data[off:off + length])
            if sr is not None:
                send_rtcp(sr)

    # ---- relays (cascading) --------------------------------------------------------------------
    def add_relay(self, relay: Relay) -> None:
        self.relays[relay.id] = relay

    def remove_relay(self, relay: Relay) -> None:
        """The relay and every endpoint that lived behind it leave the conference."""
        if self.relays.get(relay.id) is relay:
            del self.relays[relay.id]
        relay.expired = True
        for ep_id in list(relay.endpoints):
            ep = self.endpoints.get(ep_id)
            if ep is not None and ep.relay is relay:
                self._drop(ep)
        relay.endpoints.clear()
        self.reassign()

    def relay_connected(self, relay: Relay) -> None:
        self.reassign()
        relay.send_wanted(self.wanted_from(relay), force=True)

    def on_relay_rtp(self, relay: Relay, data: bytes) -> None:
        """A packet of an endpoint behind the relay: from here on it is that endpoint's."""
        if len(data) < 12:
            return
        owner = self.owner_of.get(rtp.rtp_ssrc(data))
        if owner is None or owner.relay is not relay:
            self.unknown_dropped += 1
            return
        self.on_rtp(owner, data)

    def on_relay_rtcp(self, relay: Relay, data: bytes) -> None:
        """RTCP from the other bridge: about our senders' original SSRCs (PLI, FIR, NACK), its
        senders' reports, and the list of our video sources it wants."""
        for pt, fmt, off, length in rtp.iter_rtcp(data):
            if pt == 206 and fmt in (1, 4):
                media = self._keyframe_target(data, fmt, off, length)
                owner = self.owner_of.get(media) if media is not None else None
                if owner is not None and owner.relay is None and media is not None:
                    self.request_keyframe(media)
            elif pt == 205 and fmt == 1:
                media = rtp.rtcp_media_ssrc(data, off)
                owner = self.owner_of.get(media) if media is not None else None
                if owner is not None and owner.relay is None and media is not None:
                    for seq in rtp.parse_nack(data, off, length):
                        packet = owner.cached(media, seq)
                        if packet is not None:
                            relay.transport.send_rtp(packet)
            elif pt == 200:
                self._forward_sr(data, off, length)
            elif pt == 204:
                wanted = parse_wanted(data, off, length)
                if wanted is not None and wanted != relay.wanted:
                    added = wanted - relay.wanted
                    relay.wanted = wanted
                    self.reassign()
                    for ssrc in added:  # the other side's receivers start with a keyframe
                        owner = self.owner_of.get(ssrc)
                        if owner is not None and owner.relay is None:
                            for layer in owner.simulcast.get(ssrc, (ssrc,)):
                                self.request_keyframe(layer)

    def _relay_routing(self) -> dict[int, list]:
        """Which local sources each relay carries: all audio (silence never gets this far),
        and the video sources the other side asked for, every simulcast layer of them."""
        routes: dict[int, list] = {}
        for relay in self.relays.values():
            t = relay.transport
            if t is None:
                continue
            entry = (t.send_rtp, PASS, t.send_rtcp)
            for ep in self.endpoints.values():
                if ep.relay is not None:
                    continue
                for ssrc, src in ep.logical.items():
                    if src.kind == "audio":
                        routes.setdefault(ssrc, []).append(entry)
                    elif ssrc in relay.wanted:
                        for layer in ep.simulcast.get(ssrc, (ssrc,)):
                            routes.setdefault(layer, []).append(entry)
        return routes

    def wanted_from(self, relay: Relay) -> frozenset[int]:
        """The video sources behind `relay` that our receivers' slots hold."""
        wanted = set()
        for recv in self.endpoints.values():
            if recv.transport is None:
                continue
            for slot in recv.video_slots:
                if slot.source is not None:
                    owner = self.owner_of.get(slot.source)
                    if owner is not None and owner.relay is relay:
                        wanted.add(slot.source)
        return frozenset(wanted)

    @classmethod
    def _keyframe_target(cls, data: bytes, fmt: int, off: int, length: int) -> int | None:
        """The SSRC a PLI (fmt 1, in its header) or FIR (fmt 4, in its FCI) asks a keyframe of."""
        return rtp.rtcp_media_ssrc(data, off) if fmt == 1 else cls._fir_ssrc(data, off, length)

    @staticmethod
    def _fir_ssrc(data: bytes, off: int, length: int) -> int | None:
        if length >= 20 and off + 16 <= len(data):
            return int.from_bytes(data[off + 12:off + 16], "big")
        return None

    @staticmethod
    def _keyframe_ssrc(slot: Slot) -> int | None:
        """Whose keyframe a slot needs: its source's, or for simulcast the layer it waits for
        (else the one it forwards)."""
        if slot.layers is None:
            return slot.source
        return slot.pending or slot.layer_ssrc

    def request_keyframe(self, source_ssrc: int) -> None:
        owner = self.owner_of.get(source_ssrc)
        transport = owner.feedback_transport if owner is not None else None
        if transport is None or transport.state != "connected":
            return  # a sender that is not connected yet starts with a keyframe anyway
        now = time.monotonic()
        if now - self._last_pli.get(source_ssrc, 0.0) < PLI_INTERVAL:
            return
        self._last_pli[source_ssrc] = now
        # a relayed sender's bridge asks the sender in turn (relay.py)
        transport.send_rtcp(rtp.build_pli(self.bridge.feedback_ssrc_video, source_ssrc))

    def connected(self, ep: Endpoint) -> None:
        """A transport came up: route to it, and get it keyframes for the video it will show."""
        self.reassign()
        for slot in ep.video_slots:
            ssrc = self._keyframe_ssrc(slot)
            if ssrc is not None:
                self.request_keyframe(ssrc)

    # ---- decisions ---------------------------------------------------------------------------
    def reassign(self) -> None:
        """Fill every receiver's slots from the speaker ranking, keeping stable what can be."""
        order = self._rank_order()
        ranked = sorted(self.endpoints.values(), key=lambda e: order.get(e.id, len(order)))
        audio = [(s.ssrc, ep) for ep in ranked for s in ep.logical.values() if s.kind == "audio"]
        video = [(s.ssrc, ep) for ep in ranked for s in ep.logical.values() if s.kind == "video"]
        self.owner_of = {ssrc: ep for ep in self.endpoints.values() for ssrc in ep.sources}
        routes: dict[int, list[tuple[Callable[[bytes], None], Slot | LayerRoute | PassThrough, Callable[[bytes], None]]]] = {}
        layered: dict[int, list[tuple[Callable[[bytes], None], Slot, Callable[[bytes], None]]]] = {}
        new_video_sources: set[int] = set()
        retargeted: list[Slot] = []  # simulcast slots whose target layer changed
        now = time.monotonic()
        for recv in self.endpoints.values():
            if recv.transport is None:
                continue
            changed = self._fill(recv.audio_slots, [a for a in audio if a[1] is not recv], len(recv.audio_slots))
            candidates = [v for v in video if v[1] is not recv]
            if recv.pinned:
                candidates = self._pinned_first(candidates, recv.pinned)
            changed_v = self._fill(recv.video_slots, candidates, recv.wanted_video())
            send, send_rtcp = recv.transport.send_rtp, recv.transport.send_rtcp
            for slot in recv.video_slots:
                owner = self.owner_of.get(slot.source) if slot.source is not None else None
                if owner is None or slot.source is None:
                    slot.set_layers(None)
                else:
                    slot.set_layers(owner.simulcast.get(slot.source), owner.vp8_pts)
                slot.on_switch = self._switched
            if any(slot.layers is not None for slot in recv.video_slots):
                simulcast.allocate(recv, self._by_rank(recv), self.owner_of, now, retargeted.append)
            for slot in recv.audio_slots + recv.video_slots:
                if slot.source is None:
                    continue
                if slot.layers is None:
                    routes.setdefault(slot.source, []).append((send, slot, send_rtcp))
                else:
                    layered.setdefault(slot.source, []).append((send, slot, send_rtcp))
                    self._route_layers(routes, slot, send, send_rtcp)
            for slot in changed_v:
                if slot.source is not None and slot.layers is None:
                    new_video_sources.add(slot.source)
            if changed or changed_v:
                recv.sources_map()
        relay_routes = self._relay_routing() if self.relays else {}
        for ssrc, entries in relay_routes.items():
            routes.setdefault(ssrc, []).extend(entries)
        self._relay_routes = relay_routes
        self.routes = routes
        self.layered = layered
        for relay in self.relays.values():
            relay.send_wanted(self.wanted_from(relay))
        for ssrc in new_video_sources:
            self.request_keyframe(ssrc)
        for slot in retargeted:  # a simulcast slot with a new source gets a target too
            if slot.pending is not None:
                self.request_keyframe(slot.pending)
        self._sender_constraints()

    # ---- simulcast -----------------------------------------------------------------------------
    @staticmethod
    def _route_layers(routes: dict, slot: Slot, send: Callable[[bytes], None],
                      send_rtcp: Callable[[bytes], None]) -> None:
        layers = slot.layers
        assert layers is not None
        if slot.layer >= 0:
            routes.setdefault(layers[slot.layer], []).append((send, slot.fwd, send_rtcp))
        if slot.target >= 0 and slot.target != slot.layer:
            routes.setdefault(layers[slot.target], []).append((send, slot.watch, send_rtcp))

    def _reroute(self, source: int) -> None:
        """Rebuild the routes of one simulcast source's layers (new lists: on_rtp may be
        iterating over the old ones)."""
        owner = self.owner_of.get(source)
        layers = owner.simulcast.get(source, ()) if owner is not None else ()
        fresh: dict[int, list] = {}
        for send, slot, send_rtcp in self.layered.get(source, ()):
            if slot.source == source and slot.layers is not None:
                self._route_layers(fresh, slot, send, send_rtcp)
        for ssrc in layers:
            if ssrc in self._relay_routes:
                fresh.setdefault(ssrc, []).extend(self._relay_routes[ssrc])
            if ssrc in fresh:
                self.routes[ssrc] = fresh[ssrc]
            else:
                self.routes.pop(ssrc, None)

    def _switched(self, slot: Slot) -> None:
        """A slot switched layers (at a keyframe, from on_rtp)."""
        if slot.source is not None:
            self._reroute(slot.source)

    def _rank_order(self) -> dict[str, int]:
        """Endpoint id -> place in the speaker ranking; built once per ranking change, not once
        per receiver (that was O(N^2) per decision in a large conference)."""
        if self._order_version != self.speaker.version:
            self._order = {ep_id: i for i, ep_id in enumerate(self.speaker.ranking)}
            self._order_version = self.speaker.version
        return self._order

    def _by_rank(self, recv: Endpoint) -> list[Slot]:
        """The receiver's video slots, most important first: pinned, then by speaker rank."""
        order = self._rank_order()
        pinned = set(recv.pinned)

        def key(s: Slot) -> tuple[int, int]:
            owner = self.owner_of.get(s.source) if s.source is not None else None
            src = owner.logical.get(s.source) if owner is not None and s.source is not None else None
            first = bool(pinned) and (s.owner in pinned or (src is not None and src.name in pinned))
            return (0 if first else 1, order.get(s.owner, len(order)))
        return sorted(recv.video_slots, key=key)

    def _allocate(self, recv: Endpoint, now: float | None = None) -> None:
        """Choose the target layers of one receiver again; re-route and ask for keyframes."""
        changed: list[Slot] = []
        simulcast.allocate(recv, self._by_rank(recv), self.owner_of, time.monotonic() if now is None else now,
                           changed.append)
        for source in {slot.source for slot in changed if slot.source is not None}:
            self._reroute(source)
        for slot in changed:
            if slot.pending is not None:
                self.request_keyframe(slot.pending)

    def constraints_changed(self, recv: Endpoint) -> None:
        """The receiver sent new ReceiverVideoConstraints."""
        self._allocate(recv)
        self._sender_constraints()

    def measure(self, now: float | None = None) -> None:
        """Bitrates of incoming streams over the last interval; then choose layers again (a
        layer that stopped arriving is left, one that came back may be taken), and ask again
        for keyframes that switches are still waiting for."""
        now = time.monotonic() if now is None else now
        seconds = now - self._measured
        if seconds <= 0:
            return
        self._measured = now
        for ep in self.endpoints.values():
            for st in ep.stream_stats.values():
                st.measure(seconds)
        if not self.layered:
            return  # nobody receives a simulcast source
        for recv in self.endpoints.values():
            if recv.transport is None:
                continue
            self._allocate(recv, now)
            for slot in recv.video_slots:
                pending = slot.pending
                if pending is not None and now - self._last_pli.get(pending, 0.0) >= KEYFRAME_RETRY:
                    self.request_keyframe(pending)

    def _sender_constraints(self) -> None:
        """Tell each sender whether anyone receives its video, so nobody uploads video in vain."""
        wanted: dict[str, int] = {}
        for recv in self.endpoints.values():
            for slot in recv.video_slots:
                if slot.owner and slot.source is not None:
                    owner = self.owner_of.get(slot.source)
                    h = recv.max_height(owner.sources.get(slot.source) if owner else None, slot.owner)
                    wanted[slot.owner] = max(wanted.get(slot.owner, 0), min(h, IDEAL_HEIGHT))
        for relay in self.relays.values():  # the other bridge's receivers: their own constraints stay there
            for ssrc in relay.wanted:
                owner = self.owner_of.get(ssrc)
                if owner is not None:
                    wanted[owner.id] = IDEAL_HEIGHT
        for ep in self.endpoints.values():
            if ep.relay is not None:
                continue  # its own bridge tells it
            height = wanted.get(ep.id, 0)
            if ep.sent_ideal_height != height:
                ep.sent_ideal_height = height
                ep.send_channel({"colibriClass": "SenderVideoConstraints",
                                 "videoConstraints": {"idealHeight": height}})

    @staticmethod
    def _pinned_first(candidates: list[tuple[int, Endpoint]], pinned: tuple[str, ...]) -> list[tuple[int, Endpoint]]:
        """The receiver's on-stage and selected sources (by source name or endpoint id) first,
        in its order, then the rest in speaker order."""
        rank = {key: i for i, key in enumerate(pinned)}
        first = []
        for ssrc, ep in candidates:
            src = ep.logical.get(ssrc)
            i = rank.get(src.name if src is not None else "", rank.get(ep.id))
            if i is not None:
                first.append((i, ssrc, ep))
        if not first:
            return candidates
        first.sort(key=lambda t: t[0])
        chosen = {ssrc for _, ssrc, _ in first}
        return [(ssrc, ep) for _, ssrc, ep in first] + [c for c in candidates if c[0] not in chosen]

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
        """Periodic: speaker ranking (and the layout that follows it), bitrates and layers."""
        now = time.monotonic()
        if now - self._measured >= MEASURE_INTERVAL:
            self.measure(now)
        before = list(self.speaker.ranking)
        if self.speaker.tick():
            dominant = self.speaker.dominant
            for ep in self.endpoints.values():
                ep.send_channel({"colibriClass": "DominantSpeakerEndpointChangeEvent",
                                 "dominantSpeakerEndpoint": dominant, "previousSpeakers": self.speaker.ranking[1:4]})
        if self.speaker.ranking != before:
            self.reassign()

    def local_endpoints(self) -> int:
        return sum(1 for ep in self.endpoints.values() if ep.relay is None)

    def stats(self) -> dict:
        return {"meeting_id": self.meeting_id, "name": self.name, "endpoints": self.local_endpoints(),
                "relayed_endpoints": len(self.endpoints) - self.local_endpoints(),
                "relays": [r.stats() for r in self.relays.values()],
                "packets_forwarded": self.packets_forwarded, "silence_dropped": self.silence_dropped,
                "unknown_dropped": self.unknown_dropped, "padding_dropped": self.padding_dropped,
                "nacks_sent": self.nacks_sent, "rtx_received": self.rtx_received, "dominant_speaker": self.speaker.dominant}
