"""Synthetic media for test participants: a tone at a chosen loudness and aiortc's test video."""
from __future__ import annotations

import fractions
import math

import numpy as np
from aiortc.mediastreams import AudioStreamTrack
from av import AudioFrame

RATE = 48000
SAMPLES = 960  # 20 ms


class ToneTrack(AudioStreamTrack):
    """A sine tone; amplitude 0 is digital silence (which the bridge must not relay)."""

    def __init__(self, freq: float = 440.0, amplitude: float = 0.3) -> None:
        super().__init__()
        self.freq = freq
        self.amplitude = amplitude
        self._n = 0

    async def recv(self) -> AudioFrame:
        frame = await super().recv()  # paces at real time and stamps pts
        t = (np.arange(SAMPLES) + self._n) / RATE
        self._n += SAMPLES
        samples = (self.amplitude * 32767 * np.sin(2 * math.pi * self.freq * t)).astype(np.int16)
        out = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        out.sample_rate = RATE
        out.pts = frame.pts
        out.time_base = fractions.Fraction(1, RATE)
        return out
