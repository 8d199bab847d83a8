"""The focus's section of the config file ([focus]) and its checks."""
from __future__ import annotations

from dataclasses import dataclass

from jitsi_base.config import Problems


@dataclass
class FocusSection:
    enabled: bool = True
    # Participants needed before media sessions start (Jitsi's min-participants).
    min_participants: int = 2
    # Seconds to wait for a bridge's COLIBRI2 answer before counting the bridge as failed.
    colibri_timeout: float = 10.0
    # Participants after the first N join with their microphone / camera muted (0: never).
    start_audio_muted: int = 0
    start_video_muted: int = 0
    # Cascading: a conference whose bridges all hold this many of its participants (0: no
    # limit), or report at least this stress level, continues on one more bridge.
    max_bridge_participants: int = 0
    max_bridge_stress: float = 0.8
    # Conference requests one client may make per minute (a flood of rooms is refused).
    conference_requests_per_minute: int = 30
    # Seconds the focus stays in a room nobody has joined (or everybody left) before leaving it.
    empty_room_timeout: float = 30.0
    # Most rooms the focus holds open at once for requests nobody has joined yet.
    max_waiting_rooms: int = 200
    # For a separately run focus (`python -m jicofo_py`): c2s address and account
    # (focus@auth.<domain>), and the component port and secret for focus.<domain>.
    xmpp_host: str = "127.0.0.1"
    xmpp_port: int = 5222
    password: str = ""
    component_host: str = "127.0.0.1"
    component_port: int = 5347
    component_secret: str = ""


def check(f: FocusSection, problems: Problems) -> None:
    if f.min_participants < 1:
        problems.append(("focus.min_participants", f"{f.min_participants} is too low (allowed: 1 or more)"))
    if f.colibri_timeout <= 0:
        problems.append(("focus.colibri_timeout", "must be more than 0 seconds"))
    if f.max_bridge_participants < 0:
        problems.append(("focus.max_bridge_participants", "must be 0 (no limit) or more"))
    if f.conference_requests_per_minute < 1:
        problems.append(("focus.conference_requests_per_minute", "must be 1 or more"))
    if f.empty_room_timeout <= 0:
        problems.append(("focus.empty_room_timeout", "must be more than 0 seconds"))
    if f.max_waiting_rooms < 1:
        problems.append(("focus.max_waiting_rooms", "must be 1 or more"))
    if not 0 < f.max_bridge_stress:
        problems.append(("focus.max_bridge_stress", "must be more than 0 (1.0: a bridge's full capacity)"))
    for key in ("xmpp_port", "component_port"):
        if not 0 < getattr(f, key) <= 65535:
            problems.append((f"focus.{key}", f"{getattr(f, key)} is out of range (allowed: 1..65535)"))
