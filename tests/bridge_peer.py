"""An aiortc participant set up against a Bridge object the way the focus would do it."""
from __future__ import annotations

import asyncio

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VideoStreamTrack

from bridge.bridge import Bridge
from media_tracks import ToneTrack
from jitsi_protocols import colibri2
from jitsi_protocols.model import Content
from jitsi_protocols.sdp import build_offer, default_media, parse_answer


class Peer:
    def __init__(self, bridge: Bridge, meeting_id: str, ep_id: str, amplitude: float = 0.3) -> None:
        self.bridge = bridge
        self.meeting_id = meeting_id
        self.id = ep_id
        self.amplitude = amplitude
        # max-bundle: with aiortc's default (balanced) policy a second m-section of a kind keeps a
        # transport of its own that bundling then discards, and that slot never receives
        self.pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.tracks: list = []
        self.pc.on("track", self.tracks.append)

    async def join(self) -> None:
        media = default_media()
        res = await self.bridge.handle(colibri2.ConferenceModify(
            meeting_id=self.meeting_id, name=f"{self.meeting_id}@conference.localhost", create=True,
            endpoints=[colibri2.Endpoint(id=self.id, create=True, media=media)]))
        mine = res.endpoints[0]
        self.slots = mine.sources
        contents = [Content("audio", "audio", media[0], [s for s in mine.sources if s.kind == "audio"]),
                    Content("video", "video", media[1], [s for s in mine.sources if s.kind == "video"])]
        offer = build_offer(contents, mine.transport)
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        self.pc.addTrack(ToneTrack(amplitude=self.amplitude))
        self.pc.addTrack(VideoStreamTrack())
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        answer = parse_answer(self.pc.localDescription.sdp, owner=self.id)
        for s in answer.sources:  # named as COLIBRI2 names them when the answer does not
            s.name = s.name or f"{self.id}-{s.kind[0]}0"
        self.sources = answer.sources
        self.groups = answer.groups
        await self.bridge.handle(colibri2.ConferenceModify(meeting_id=self.meeting_id, endpoints=[
            colibri2.Endpoint(id=self.id, transport=answer.transport, media=media, sources_given=True,
                              sources=answer.sources, groups=answer.groups)]))

    async def frames(self, kind: str, count: int, n_tracks: int, timeout: float = 20.0) -> None:
        """Decoded frames from `n_tracks` different remote tracks of this kind."""
        tracks = [t for t in self.tracks if t.kind == kind]

        async def from_track(track) -> int:
            got = 0
            while got < count:
                await track.recv()
                got += 1
            return got

        async def any_n() -> None:
            pending = {asyncio.ensure_future(from_track(t)) for t in tracks}
            done_ok = 0
            try:
                while done_ok < n_tracks:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    done_ok += sum(1 for d in done if d.exception() is None)
                    if not pending and done_ok < n_tracks:
                        raise AssertionError(f"only {done_ok} {kind} tracks delivered frames")
            finally:
                for p in pending:
                    p.cancel()
        await asyncio.wait_for(any_n(), timeout)

    async def close(self) -> None:
        await self.pc.close()
