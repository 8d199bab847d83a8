"""XEP-0045 multi-user chat: where every conference lives (see `room.py` and `service.py`)."""
from .forms import RoomConfig
from .room import Occupant, Room
from .service import MucService

__all__ = ["MucService", "Room", "Occupant", "RoomConfig"]
