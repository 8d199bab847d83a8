"""The media session: one aiortc PeerConnection per session-initiate, answered and torn down.

Its own part because media outlives neither a session nor a connection, while the room does: a
`session-terminate` (the focus moves us to another bridge), a kick or a lost connection close
the PeerConnection and the bridge channel but leave the rest standing. `_media_lock` orders a
new session's set-up after any teardown still running, so a late teardown never closes the
PeerConnection of a session set up meanwhile. Our own tracks go through `SourceFeed`s, so that
closing a PeerConnection never ends the caller's sources.
"""
from __future__ import annotations

import asyncio
import logging

from aiortc import (RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection,
                    RTCSessionDescription)
from aiortc.mediastreams import MediaStreamTrack

from jitsi_protocols.jingle import JingleAction

from .core import Event, ParticipantCore, ParticipantError
from .media import SourceFeed
from .offer import OfferPlan, session_accept

log = logging.getLogger(__name__)


class MediaSession(ParticipantCore):
    """Owns `pc`, the feeds of our own tracks (`_feeds`, by kind) and `_media_lock`."""

    audio: MediaStreamTrack | None
    video: MediaStreamTrack | None
    ice_servers: list[RTCIceServer]
    relay_only: bool
    sid: str | None
    sessions: int
    session: JingleAction | None

    def _init_session(self) -> None:
        self.pc: RTCPeerConnection | None = None
        self._feeds: dict[str, SourceFeed] = {}
        self._media_lock = asyncio.Lock()

    async def _answer(self, ja: JingleAction, plan: OfferPlan) -> JingleAction | None:
        """A new PeerConnection for the offer; returns our session-accept (None: we failed)."""
        await self._close_pc()
        for nick, sources in plan.others.items():
            for src in sources:
                self._add_remote(nick, src)
        contents, offer = plan.contents, plan.sdp
        self._new_slots(plan.mid_slot, plan.ssrc_slot)
        policy = RTCIceTransportPolicy.RELAY if self.relay_only else RTCIceTransportPolicy.ALL
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers, iceTransportPolicy=policy,
                                                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.pc = pc
        pc.on("connectionstatechange", lambda: self._pc_state(pc))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            self._feeds = {}
            for track in (self.audio, self.video):
                if track is not None:
                    feed = SourceFeed(track)  # closing this pc must not end our sources
                    self._feeds[track.kind] = feed
                    pc.addTrack(feed)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            log.exception("%s: cannot answer the offer", self.nick)
            await self._send_jingle(JingleAction("session-terminate", ja.sid, initiator=ja.initiator,
                                                 responder=self.occupant_jid, reason="failed-application",
                                                 reason_text=str(exc)[:200]), quiet=True)
            self._failure = ParticipantError(f"cannot answer the focus's offer: {exc}")
            self._notify()
            return None
        for t in pc.getTransceivers():
            if t.receiver.track is not None:
                self._start_pump(t.mid or "", t.receiver.track)
        return session_accept(ja, contents, pc.localDescription.sdp, self.occupant_jid, self.nick, plan.data)

    def _pc_state(self, pc: RTCPeerConnection) -> None:
        if pc is not self.pc:
            return
        state = pc.connectionState
        log.info("%s: media connection %s", self.nick, state)
        self._emit(Event("connection", self.nick, text=state))
        # "closed" while still ours: aiortc closes a connection whose ICE consent expired or whose
        # DTLS the bridge ended (we close ours only after letting go of it, see _close_pc)
        if state in ("failed", "closed") and self.sid and not self._left:
            # Jitsi clients report it this way; our focus answers with a fresh session
            self._spawn(self._send_jingle(JingleAction("session-info", self.sid, initiator=self.focus_occupant,
                                                       responder=self.occupant_jid, ice_state="failed"),
                                          quiet=True))

    async def wait_session(self, count: int | None = None, timeout: float = 30.0) -> None:
        """Wait for a connected media session (the `count`-th session-initiate, if given)."""
        await self._until(lambda: (count is None or self.sessions >= count) and self.session is not None
                          and self.pc is not None and self.pc.connectionState == "connected", timeout,
                          "a connected media session")

    def selected_pair(self) -> tuple[str, str] | None:
        """(our candidate's type, the bridge's address) of the media path ICE chose, e.g.
        ("relay", "203.0.113.7:10001") through TURN; None before media connects. Reads aioice's
        nominated pair (private; aiortc is pinned and tests/test_turn.py exercises it)."""
        pc = self.pc
        if pc is None:
            return None
        for t in pc.getTransceivers():
            ice = t.receiver.transport.transport
            pair = ice._connection._nominated.get(1)  # aioice's nominated pair of component 1
            if pair is not None:
                return pair.local_candidate.type, f"{pair.remote_addr[0]}:{pair.remote_addr[1]}"
        return None

    async def _close_pc(self) -> None:
        self._stop_pumps()
        pc, self.pc = self.pc, None
        if pc is not None:
            try:
                await pc.close()
            except Exception:
                log.debug("%s: closing the PeerConnection failed", self.nick, exc_info=True)

    async def _close_session(self) -> None:
        """Media down (after a session-terminate or when kicked); the room stays joined."""
        self._cancel_channel()
        async with self._media_lock:  # never the PeerConnection of a session set up meanwhile
            await self._close_channel()
            await self._close_pc()
            self.slot_owner = {}
        self._notify()

