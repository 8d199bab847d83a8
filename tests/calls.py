"""Python participants in calls through a Stack, shared by the end-to-end tests."""
from __future__ import annotations

from jitsi_py.participant.client import Participant
from jitsi_py.participant.media import TestPatternTrack, ToneTrack
from jitsi_py.stack import Stack


def participant(stack: Stack, room: str, nick: str) -> Participant:
    """A participant of `room` sending a tone and a test pattern."""
    host, port = stack.server.c2s_address
    return Participant(host, port, room, cafile=str(stack.cert_path), nick=nick, display_name=nick.title(),
                       audio=ToneTrack(), video=TestPatternTrack())


async def receives_from(p: Participant, *others: Participant) -> None:
    """`p` decodes video and audio of each of `others` (frames counted from now)."""
    for o in others:
        await p.wait_frames(o.nick, "video", 3, timeout=20)
        await p.wait_frames(o.nick, "audio", 3, timeout=20)
