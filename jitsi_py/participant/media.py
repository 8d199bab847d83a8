"""Media a participant sends and records: a tone, a test pattern, a file; and slot relays.

The bridge drops audio whose RFC 6464 level says "silence", so a synthetic audio track must be
audible: `ToneTrack` is a sine at a chosen amplitude. `TestPatternTrack` is a moving colour bar
that changes every frame (a frozen picture would still be "video", but a test could not tell
it from a stuck decoder).

`SlotTrack` is what the participant hands out for a receive slot: aiortc decodes into an
unbounded queue per receive track, so the participant drains every slot itself and relays the
frames to any number of `SlotTrack` subscribers, each with a small bounded queue. A recording
subscriber also re-stamps time so a file stays playable across gaps (the bridge drops silent
audio), owner changes and a new PeerConnection after a bridge move.
"""
from __future__ import annotations

import asyncio
import fractions
import math
import time
from typing import Callable, Iterator

import numpy as np
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack, VideoStreamTrack
from av import AudioFrame, VideoFrame

RATE = 48000
SAMPLES = 960  # 20 ms of audio per frame


class ToneTrack(AudioStreamTrack):
    """A sine tone (mono, 48 kHz, 20 ms frames); amplitude 0 is digital silence."""

    def __init__(self, freq: float = 440.0, amplitude: float = 0.3) -> None:
        super().__init__()
        self.freq = freq
        self.amplitude = amplitude
        self._n = 0

    async def recv(self) -> AudioFrame:
        await super().recv()  # paces at real time (20 ms per frame)
        t = (np.arange(SAMPLES) + self._n) / RATE
        samples = (self.amplitude * 32767 * np.sin(2 * math.pi * self.freq * t)).astype(np.int16)
        out = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        out.sample_rate = RATE
        out.pts = self._n  # in samples: the base class counts at 8 kHz
        out.time_base = fractions.Fraction(1, RATE)
        self._n += SAMPLES
        return out


_BARS = np.array([[255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0],
                  [255, 0, 255], [255, 0, 0], [0, 0, 255], [16, 16, 16]], dtype=np.uint8)


class TestPatternTrack(VideoStreamTrack):
    """Colour bars scrolling sideways with a white bar moving down: every frame differs."""

    __test__ = False  # not a pytest test class

    def __init__(self, width: int = 640, height: int = 360) -> None:
        super().__init__()
        self.width = width - width % 2
        self.height = height - height % 2
        cols = (np.arange(self.width) * len(_BARS)) // self.width
        self._row = _BARS[cols]  # (width, 3)
        self._count = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        shift = (self._count * 4) % self.width
        img = np.broadcast_to(np.roll(self._row, shift, axis=0), (self.height, self.width, 3)).copy()
        bar = (self._count * 3) % self.height
        img[bar:bar + max(2, self.height // 40)] = 255
        self._count += 1
        frame = VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        return frame


class FileMedia:
    """A media file (or device URL) as tracks: `.audio` / `.video` (None when it has no such stream).

    aiortc's MediaPlayer plays a file once (its own looping does not survive PyAV's end of file);
    with `loop=True` the file is reopened when it ends and timestamps carry on, so a participant
    keeps sending for as long as it stays. `stop()` ends both tracks and the decoder thread.
    """

    def __init__(self, path: str, loop: bool = True) -> None:
        self.path = path
        self.loop = loop
        self._generation = 0
        self._player = self._open()
        self.audio = _FileTrack(self, "audio") if self._player.audio is not None else None
        self.video = _FileTrack(self, "video") if self._player.video is not None else None
        self._stopped = False

    def _open(self):  # type: ignore[no-untyped-def]
        from aiortc.contrib.media import MediaPlayer
        return MediaPlayer(self.path)

    def _current(self, kind: str) -> tuple[int, MediaStreamTrack | None]:
        return self._generation, getattr(self._player, kind)

    def _restart(self, generation: int) -> bool:
        """The file ended (for the track that saw generation `generation`): open it again."""
        if self._stopped or not self.loop:
            return False
        if generation == self._generation:
            old = self._player
            try:
                self._player = self._open()
            except Exception:
                return False
            self._generation += 1
            for track in (old.audio, old.video):
                if track is not None:
                    track.stop()
        return True

    def stop(self) -> None:
        self._stopped = True
        for track in (self.audio, self.video):
            if track is not None:
                track.stop()
        for track in (self._player.audio, self._player.video):
            if track is not None:
                track.stop()


class _FileTrack(MediaStreamTrack):
    def __init__(self, media: FileMedia, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._media = media
        self._generation = 0
        self._offset = 0  # added to the pts of the current pass through the file
        self._next = 0  # the pts right after the last frame given out

    async def recv(self):  # type: ignore[no-untyped-def]
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            generation, track = self._media._current(self.kind)
            if track is None:
                raise MediaStreamError
            if generation != self._generation:  # a new pass: continue the timeline
                self._generation, self._offset = generation, self._next
            try:
                frame = await track.recv()
            except MediaStreamError:
                if not self._media._restart(generation):
                    self.stop()
                    raise
                continue
            if frame.pts is not None:
                frame.pts += self._offset
                step = frame.samples if self.kind == "audio" else max(1, int(1 / 30 / frame.time_base))
                self._next = max(self._next, frame.pts + step)
            return frame


def open_media(path: str, loop: bool = True) -> FileMedia:
    """A media file's tracks for sending (`.audio`, `.video`), looped by default."""
    return FileMedia(path, loop=loop)


class SourceFeed(MediaStreamTrack):
    """What one PeerConnection sends: the frames of `source`.

    aiortc stops a sender's track when its PeerConnection closes; a participant moved to
    another bridge gets a new PeerConnection and must keep its tone, pattern or file going,
    so each PeerConnection gets a feed of its own and only the feed is stopped.
    """

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = source.kind
        self.source = source
        self._flowing = asyncio.Event()
        self._flowing.set()

    def pause(self, paused: bool) -> None:
        """Hold frames back (nobody receives our video): the encoder then has nothing to do."""
        if paused:
            self._flowing.clear()
        else:
            self._flowing.set()

    async def recv(self):  # type: ignore[no-untyped-def]
        if self.readyState != "live" or self.source.readyState != "live":
            raise MediaStreamError
        if not self._flowing.is_set():
            while not self._flowing.is_set():  # keep draining the source so it stays current
                await asyncio.wait([asyncio.ensure_future(self._flowing.wait())], timeout=0.5)
        return await self.source.recv()


class SlotTrack(MediaStreamTrack):
    """The decoded frames of one receive slot, for one consumer.

    `restamp=True` (recording) rewrites pts onto a wall clock shared by all tracks of one
    recording (`origin`), keeps them increasing, and fills audio gaps with silence.
    """

    def __init__(self, kind: str, slot: int, *, maxsize: int = 60, restamp: bool = False,
                 origin: float | None = None, on_stop: Callable[["SlotTrack"], None] | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.slot = slot
        self._queue: asyncio.Queue = asyncio.Queue(maxsize)
        self._restamp = restamp
        self._origin = origin if origin is not None else time.monotonic()
        self._on_stop = on_stop
        self._offset: int | None = None  # out pts = in pts + offset
        self._next: int | None = None  # audio: the pts the next frame should have
        self._last: int | None = None  # video: the last pts given out
        self._size: tuple[int, int] | None = None
        self._pending: Iterator | None = None  # restamped frames still to give out

    def push(self, frame) -> None:  # type: ignore[no-untyped-def]
        if self.readyState != "live":
            return
        if self._queue.full():  # a slow consumer loses the oldest frames, never memory
            self._queue.get_nowait()
        self._queue.put_nowait(frame)

    async def recv(self):  # type: ignore[no-untyped-def]
        if self.readyState != "live":
            raise MediaStreamError
        if self._pending is not None:
            frame = next(self._pending, None)
            if frame is not None:
                return frame
            self._pending = None
        frame = await self._queue.get()
        if frame is None:
            raise MediaStreamError
        if not self._restamp:
            return frame
        self._pending = self._restamped(frame)
        return next(self._pending)

    def stop(self) -> None:
        if self.readyState == "live":
            super().stop()
            if self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(None)
            if self._on_stop is not None:
                self._on_stop(self)

    # ---- recording time --------------------------------------------------------------------
    def _wall(self, time_base: fractions.Fraction) -> int:
        return int((time.monotonic() - self._origin) / time_base)

    def _restamped(self, frame) -> Iterator:  # type: ignore[no-untyped-def]
        tb = frame.time_base or fractions.Fraction(1, RATE if self.kind == "audio" else 90000)
        pts = frame.pts if frame.pts is not None else self._wall(tb)
        wall = self._wall(tb)
        if self._offset is None or abs(pts + self._offset - wall) > 2 / tb:
            # the first frame, a new sender in the slot, a new PeerConnection: onto the wall clock
            self._offset = wall - pts
        out = pts + self._offset
        if self.kind == "audio":
            return self._audio(frame, out, tb)
        if self._last is not None and out <= self._last:
            out = self._last + 1
        self._last = out
        if self._size is None:
            self._size = (frame.width, frame.height)
        elif (frame.width, frame.height) != self._size:  # one stream, one size
            frame = frame.reformat(width=self._size[0], height=self._size[1])
        frame.pts = out
        frame.time_base = tb
        return iter([frame])

    def _audio(self, frame, out: int, tb: fractions.Fraction) -> Iterator:  # type: ignore[no-untyped-def]
        if self._next is not None:
            gap = out - self._next
            if gap * tb >= fractions.Fraction(1, 100) and frame.format.name == "s16" and not frame.format.is_planar:
                # the bridge dropped silence here: write it back (in chunks of at most a second),
                # so the file keeps time with the video
                channels = len(frame.layout.channels)
                at = self._next
                while at < out:
                    n = min(out - at, frame.sample_rate)
                    silence = AudioFrame.from_ndarray(np.zeros((1, n * channels), dtype=np.int16),
                                                      format="s16", layout=frame.layout.name)
                    silence.sample_rate = frame.sample_rate
                    silence.pts = at
                    silence.time_base = tb
                    at += n
                    yield silence
            else:
                out = self._next  # an overlap or jitter: continue where the stream left off
        frame.pts = out
        frame.time_base = tb
        self._next = out + frame.samples
        yield frame
