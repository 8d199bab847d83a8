"""XEP-0045 multi-user chat: where every conference lives.

- `plugin.py`   the MUC as a plugin of our own server (the default)
- `external.py` the same service as an XEP-0114 component of another server (`jitsi-py muc`)
- `service.py`  the domain (conference.<domain>): its rooms, who may create them, reserved nicks
- `room.py`     one room: occupants, affiliations, settings, history, and every rule about them
- `forms.py`    XEP-0004 forms for room configuration and room info (the only place with field names)
"""
from .forms import RoomConfig
from .room import Occupant, Room
from .service import MucService

__all__ = ["MucService", "Room", "Occupant", "RoomConfig"]
