"""Synthetic media for test participants (the library's own test-pattern sources)."""
from jitsi_py.participant.media import TestPatternTrack, ToneTrack

__all__ = ["ToneTrack", "TestPatternTrack"]
