"""Recording every receive slot into one file, as the other participants' media arrives.

Its own part because it is optional and heavy (aiortc's MediaRecorder, PyAV muxing) and only
subscribes to the slots like any other consumer: its tracks restamp frames from one origin so
that audio and video stay in step in the file even while a slot is silent.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from .core import ParticipantCore, ParticipantError
from .media import SlotTrack

log = logging.getLogger(__name__)


class Recording(ParticipantCore):
    """Owns the recorder and its slot tracks."""

    _mid_slot: dict[str, tuple[str, int]]

    def _init_recording(self) -> None:
        self._recorder: Any = None
        self._recorder_tracks: list[SlotTrack] = []

    async def record(self, path: str) -> None:
        """Record every receive slot (audio and video) into `path` (.mkv, .mp4 ...) until leave()."""
        from aiortc.contrib.media import MediaRecorder

        if self._recorder is not None:
            raise ParticipantError("already recording")
        keys = sorted(set(self._mid_slot.values()), key=lambda k: (k[0] != "audio", k[1]))
        if not keys:
            raise ParticipantError("record() needs a media session: call it after join()")
        try:
            recorder = MediaRecorder(path)
        except Exception as exc:  # av: unknown format, unwritable path
            raise ParticipantError(f"cannot record to {path}: {exc}") from None
        origin = time.monotonic()
        for key in keys:
            track = self._subscribe(key, maxsize=300, restamp=True, origin=origin)
            self._recorder_tracks.append(track)
            recorder.addTrack(track)
        self._recorder = recorder
        await recorder.start()

    async def stop_recording(self) -> None:
        recorder, self._recorder = self._recorder, None
        tracks, self._recorder_tracks = self._recorder_tracks, []
        if recorder is None:
            return
        try:
            await recorder.stop()
        except Exception:
            log.exception("%s: closing the recording failed", self.nick)
        for t in tracks:
            t.stop()

