"""A Python conference participant (guest sign-in, MUC, Jingle with our focus, aiortc media).

    from jitsi_py.participant import Participant, ToneTrack, TestPatternTrack

    p = Participant("127.0.0.1", 5222, "myroom", cafile="data/tls/localhost.crt",
                    audio=ToneTrack(), video=TestPatternTrack())
    await p.join()
    await p.wait_frames("othernick", "video")
    await p.leave()
"""
from .client import Event, Participant, ParticipantError
from .media import FileMedia, SlotTrack, SourceFeed, TestPatternTrack, ToneTrack, open_media

__all__ = ["Participant", "ParticipantError", "Event", "ToneTrack", "TestPatternTrack", "SlotTrack", "SourceFeed",
           "FileMedia", "open_media"]
