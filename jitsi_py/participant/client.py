"""A conference participant in Python: XMPP guest, MUC occupant, Jingle answerer, aiortc peer.

It joins the way a browser does with our focus (see docs and the module docstrings of
`jitsi_protocols`):

1. signs in as a guest (SASL ANONYMOUS after STARTTLS), asks the server for STUN/TURN and
   credentials (XEP-0215; unless `ice_servers` is given) and asks `focus.<domain>` for the room
   with the `conference` IQ, retrying while the focus is not (yet) there;
2. joins the MUC room with its nick, display name and mute state in presence;
3. answers the focus's Jingle `session-initiate` (the bridge's transport and this participant's
   receive *slots*) with an SDP offer/answer through aiortc and a `session-accept` carrying the
   participant's own sources and transport;
4. opens the bridge channel to learn who fills each slot, who is the dominant speaker, and to
   exchange endpoint messages: a WebRTC data channel over the media transport when the offer has
   a data content (as Jitsi clients do), else, or if that does not open within
   `DATA_CHANNEL_TIMEOUT`, the bridge's WebSocket (colibri-ws);
5. keeps track of the other participants' sources (`source-add` / `source-remove`), and takes a
   new `session-initiate` after a `session-terminate` when the focus moves it to another bridge;
6. when the XMPP connection drops after it joined (the server restarted), closes media and does
   1-3 again with backoff until `reconnect_timeout`, then takes the focus's new session.

Jingle (and nothing else that steers media) is taken only from the room's `focus` occupant whose
real JID, as the room shows it in presence, is the focus account the conference IQ named: any
guest can send an IQ to our occupant JID, and a guest could sit in a room under the nick `focus`.

The received media of each slot is drained all the time (aiortc would otherwise queue decoded
frames without bound) and relayed to `SlotTrack` subscribers: `track_for()`, `wait_frames()`
and `record()`.

This module is the front: `Participant` is put together from one part per concern (see the
package docstring for the map) and does here only what spans them all, joining and leaving.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from aiortc import RTCIceServer
from aiortc.mediastreams import MediaStreamTrack

from jitsi_protocols.jingle import JingleAction

from .channel import BridgeChannel
from .core import Event, ParticipantError, Refused
from .focus import Focus
from .offer import OfferPlan, plan_offer, session_accept
from .recording import Recording
from .room import Room
from .session import MediaSession
from .signalling import Signalling
from .slots import Slots

log = logging.getLogger(__name__)

__all__ = ["Participant", "ParticipantError", "Refused", "Event", "OfferPlan", "plan_offer", "session_accept"]


class Participant(Signalling, Room, Focus, MediaSession, BridgeChannel, Slots, Recording):
    """One conference participant; its parts share one state (see `core.ParticipantCore`)."""

    def __init__(self, host: str, port: int, room: str, *, domain: str = "localhost", nick: str | None = None,
                 display_name: str = "", cafile: str | None = None, verify: bool = True,
                 audio: MediaStreamTrack | None = None, video: MediaStreamTrack | None = None,
                 ice_servers: list[RTCIceServer] | None = None, focus: str | None = None,
                 muc_domain: str | None = None, reconnect_timeout: float = 300.0,
                 user: str | None = None, password: str = "", token: str | None = None,
                 guest_domain: str | None = None, turn_transport: str = "udp", relay_only: bool = False) -> None:
        self.host, self.port = host, int(port)
        self.domain = domain.lower()
        # `[auth]` sign-in: a registered user (password), a JWT (OAUTHBEARER), or a guest
        # (ANONYMOUS) on `guest_domain`, by default the domain itself or else guest.<domain>
        self.user, self.password, self.token = user, password, token
        self.guest_domains = [guest_domain.lower()] if guest_domain else [self.domain, f"guest.{self.domain}"]
        if "@" in room:
            self.room_jid = room.lower()
        else:
            self.room_jid = f"{room.lower()}@{muc_domain or 'conference.' + self.domain}"
        self.room = self.room_jid.split("@", 1)[0]
        self._nick_given = nick is not None
        self.nick = nick or secrets.token_hex(4)
        self.display_name = display_name
        self.cafile, self.verify = cafile, verify
        self.audio, self.video = audio, video
        # None: ask our server (XEP-0215) for its STUN/TURN and their credentials at each
        # sign-in; without them, no STUN: the bridge learns our address from the checks
        self.ask_ice_servers = ice_servers is None
        self.ice_servers = ice_servers if ice_servers is not None else []
        # the TURN transport tried (aiortc uses one TURN server): udp, tcp or tls
        if turn_transport not in ("udp", "tcp", "tls"):
            raise ValueError(f"turn_transport must be udp, tcp or tls, not {turn_transport!r}")
        self.turn_transport = turn_transport
        # only relayed candidates (ICE policy "relay"): media goes through TURN or not at all
        self.relay_only = relay_only
        self.focus_service = focus or f"focus.{self.domain}"
        # after a lost connection, keep trying this long (s) before failing; 0: fail at once
        self.reconnect_timeout = float(reconnect_timeout)
        self._init_core()
        self._init_signalling()
        self._init_room()
        self._init_focus()
        self._init_session()
        self._init_channel()
        self._init_slots()
        self._init_recording()

    # ---- joining -----------------------------------------------------------------------------
    async def join(self, timeout: float = 30.0) -> None:
        """Sign in, ask the focus, join the room; return once media flows (ICE+DTLS connected)."""
        if self._joined or self._left:
            raise ParticipantError("join() can be called once per Participant")
        self._joined = True
        try:
            async with asyncio.timeout(timeout):
                self._step = f"connecting to {self.host}:{self.port}"
                await self._connect()
                self._step = f"asking {self.domain} for STUN/TURN servers"
                await self._discover_ice_servers()
                self._step = f"asking {self.focus_service} for {self.room_jid}"
                await self._request_conference()
                self._step = f"joining {self.room_jid}"
                await self._join_muc()
                self._step = ("waiting for the focus to offer a media session (it starts once enough "
                              "participants are in the room)")
                await self._until(lambda: self.session is not None, None, "session-initiate")
                self._step = "connecting media to the bridge"
                await self._until(lambda: self.pc is not None and self.pc.connectionState == "connected",
                                  None, "media connection")
        except TimeoutError:
            await self._shutdown()
            raise ParticipantError(f"timed out after {timeout:g} s while {self._step}") from None
        except BaseException:
            await self._shutdown()
            raise
        self._established = True
        self._emit(Event("joined", self.nick, text=self.room_jid))

    # ---- leaving -----------------------------------------------------------------------------
    async def leave(self) -> None:
        """Terminate the session, leave the room, close media and the connection (idempotent)."""
        if self._left:
            return
        self._left = True
        c = self.client
        if c is not None and c.transport is not None:
            if self.sid:
                await self._send_jingle(JingleAction("session-terminate", self.sid, initiator=self.focus_occupant,
                                                     responder=self.occupant_jid, reason="success"),
                                        quiet=True, timeout=3.0)
            if self._in_room:
                self._presence("unavailable").send()
                self._in_room = False
        self.sid = None
        await self._shutdown()

    async def _shutdown(self) -> None:
        self._left = True
        await self.stop_recording()
        if self._session_task is not None and not self._session_task.done():
            self._session_task.cancel()
        await self._close_session()
        self._stop_relays()
        await self._close_http()
        await self._disconnect()
        for t in list(self._tasks):
            if t is not asyncio.current_task():
                t.cancel()
        self._notify()

    async def __aenter__(self) -> "Participant":
        await self.join()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.leave()
