"""A conference participant in Python: XMPP guest, MUC occupant, Jingle answerer, aiortc peer.

It joins the way a browser does with our focus (see docs and the module docstrings of
`jitsi_protocols`):

1. signs in as a guest (SASL ANONYMOUS after STARTTLS) and asks `focus.<domain>` for the room
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
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import secrets
import ssl
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Callable

import aiohttp
import slixmpp
from aiortc import (RTCBundlePolicy, RTCConfiguration, RTCDataChannel, RTCIceServer, RTCPeerConnection,
                    RTCSessionDescription)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from lxml import etree
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath

from jitsi_protocols.slix import reply_error, to_et, to_lxml
from jitsi_protocols import focus_iq, jingle
from jitsi_protocols.jingle import JingleAction
from jitsi_protocols.model import Content, IceTransport, Media, Source
from jitsi_protocols.sdp import build_offer, parse_answer
from jitsi_base.errors import StanzaError

from .media import SlotTrack, SourceFeed

log = logging.getLogger(__name__)

MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"
NICK = "http://jabber.org/protocol/nick"
AUDIO_MUTED = "http://jitsi.org/jitmeet/audio"
VIDEO_MUTED = "http://jitsi.org/jitmeet/video"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

# conference IQ errors worth waiting out: the focus is starting, or busy joining the room
RETRY_CONDITIONS = {"service-unavailable", "remote-server-not-found", "recipient-unavailable",
                    "remote-server-timeout", "internal-server-error", "resource-constraint", "item-not-found"}
# the bridge channel over SCTP, named as Jitsi's clients name it
DATA_CHANNEL_LABEL = "JVB data channel"
DATA_CHANNEL_PROTOCOL = "http://jitsi.org/protocols/colibri"
DATA_CHANNEL_TIMEOUT = 5.0  # s from a connected media session to an open data channel, else colibri-ws
HOST_POLL = 1.0  # s between a waiting guest's conference requests
RECONNECT_ATTEMPT_TIMEOUT = 30.0  # s for one sign-in + conference IQ + room join after a lost connection
HANDLED_ACTIONS = {"session-initiate", "session-terminate", "source-add", "addsource", "source-remove",
                   "removesource", "transport-info", "session-info"}


class ParticipantError(Exception):
    """Joining failed or the conference went away; the message says why, for a person."""


class Refused(ParticipantError):
    """The focus or the room said no (not a transient failure): trying again will not help."""


@dataclass
class Event:
    """What happened, for listeners (the CLI prints these)."""

    type: str  # joined | occupant-joined | occupant-left | source-add | source-remove | media | session-initiate
    # | session-terminate | connection | dominant-speaker | chat | kicked | disconnected (for good)
    # | reconnecting (the connection dropped; trying again) | reconnected (back in the room)
    nick: str = ""
    kind: str = ""
    text: str = ""
    sources: list[Source] | None = None


def _nick_of(owner: str) -> str:
    """`room@conference.example/nick` -> `nick` (a bare endpoint id stays as it is)."""
    return owner.split("/", 1)[1] if "/" in owner else owner


@dataclass
class OfferPlan:
    """What a session-initiate means for a WebRTC participant (see `plan_offer`)."""

    contents: list[Content]  # audio and video, with only the bridge's slot sources
    transport: IceTransport
    sdp: str  # the SDP offer for aiortc
    mid_slot: dict[str, tuple[str, int]]  # m-section mid -> (kind, slot index)
    ssrc_slot: dict[tuple[str, int], int]  # (kind, slot ssrc) -> slot index
    others: dict[str, list[Source]]  # other participants' sources the focus listed (by nick)
    data: Content | None = None  # the offered data channel content (SCTP over the same transport)


def plan_offer(ja: JingleAction, own_nick: str = "") -> OfferPlan:
    """Split a session-initiate into slot sources (one m-section each) and other participants'.

    The focus lists the slots (owned by the bridge, with msid) and, for clients that want them,
    every other participant's sources (owner `room/nick`, no msid); only slots become SDP.
    """
    transport = next((c.transport for c in ja.contents if c.transport is not None), None)
    if transport is None:
        raise StanzaError("bad-request", "session-initiate without a transport")
    contents: list[Content] = []
    others: dict[str, list[Source]] = {}
    data: Content | None = None
    for c in ja.contents:
        if c.kind == "application" and data is None:
            t = c.transport or transport
            data = Content(c.name, "application", transport=t)
            continue
        if c.kind not in ("audio", "video") or c.media is None:
            continue
        slots = []
        for src in c.sources:
            if "/" in src.owner and _nick_of(src.owner) != own_nick:
                others.setdefault(_nick_of(src.owner), []).append(src)
            else:
                slots.append(src)
        ssrcs = {src.ssrc for src in slots}
        contents.append(Content(c.name, c.kind, c.media, slots, [g for g in c.groups if set(g.ssrcs) & ssrcs],
                                c.senders, c.transport))
    if not contents:
        raise StanzaError("bad-request", "session-initiate without audio or video")
    mid_slot: dict[str, tuple[str, int]] = {}
    ssrc_slot: dict[tuple[str, int], int] = {}
    for c in contents:  # the order build_offer lays out m-sections in
        remote = [src for src in c.sources if src.msid] or c.sources
        for i in range(max(1, len(remote))):
            mid_slot[c.name if i == 0 else f"{c.name}{i}"] = (c.kind, i)
            if i < len(remote):
                ssrc_slot[(c.kind, remote[i].ssrc)] = i
    sdp_transport = transport
    if data is not None:  # build_offer takes the SCTP port from the transport
        sdp_transport = dataclasses.replace(transport, sctp_port=(data.transport.sctp_port if data.transport
                                                                   else None) or 5000)
    sdp = build_offer(contents + ([data] if data is not None else []), sdp_transport)
    return OfferPlan(contents, transport, sdp, mid_slot, ssrc_slot, others, data)


def _answered_data(answer_sdp: str) -> int | None:
    """The SCTP port of an answer's accepted m=application section (None: no data channel)."""
    port: int | None = None
    in_app = False
    for line in answer_sdp.splitlines():
        line = line.strip()
        if line.startswith("m="):
            bits = line[2:].split()
            in_app = bits[0] == "application" and len(bits) > 1 and bits[1] != "0"
            if in_app:
                port = 5000
        elif in_app and line.startswith("a=sctp-port:"):
            try:
                port = int(line.split(":", 1)[1])
            except ValueError:
                pass
    return port


def session_accept(offer: JingleAction, contents: list[Content], answer_sdp: str, occupant_jid: str,
                   nick: str, data: Content | None = None) -> JingleAction:
    """The session-accept for `offer`: per content the offered codecs, our own sources of that
    kind (named `<nick>-a0` / `<nick>-v0`, owned by our occupant JID) and the answer's transport;
    plus the data content (`data`, the offered one) if the answer accepted it."""
    answer = parse_answer(answer_sdp, owner=occupant_jid)
    out = []
    for c in contents:
        mine = [src for src in answer.sources if src.kind == c.kind]
        for src in mine:
            src.name = f"{nick}-{c.kind[0]}0"
        ssrcs = {src.ssrc for src in mine}
        groups = [g for g in answer.groups if g.ssrcs and set(g.ssrcs) <= ssrcs]
        assert c.media is not None
        media = Media(c.kind, list(c.media.payload_types), list(c.media.header_extensions))
        out.append(Content(c.name, c.kind, media, mine, groups, "both", answer.transport))
    sctp_port = _answered_data(answer_sdp) if data is not None else None
    if data is not None and sctp_port is not None:
        out.append(Content(data.name, "application",
                           transport=dataclasses.replace(answer.transport, sctp_port=sctp_port)))
    return JingleAction("session-accept", offer.sid, initiator=offer.initiator, responder=occupant_jid,
                        contents=out, bundle=[c.name for c in out], bridge_session=offer.bridge_session)


class Participant:
    def __init__(self, host: str, port: int, room: str, *, domain: str = "localhost", nick: str | None = None,
                 display_name: str = "", cafile: str | None = None, verify: bool = True,
                 audio: MediaStreamTrack | None = None, video: MediaStreamTrack | None = None,
                 ice_servers: list[RTCIceServer] | None = None, focus: str | None = None,
                 muc_domain: str | None = None, reconnect_timeout: float = 300.0,
                 user: str | None = None, password: str = "", token: str | None = None,
                 guest_domain: str | None = None) -> None:
        self.host, self.port = host, int(port)
        self.domain = domain.lower()
        # `[auth]` sign-in: a registered user (password), a JWT (OAUTHBEARER), or a guest
        # (ANONYMOUS) on `guest_domain`, by default the domain itself or else guest.<domain>
        self.user, self.password, self.token = user, password, token
        self.guest_domains = [guest_domain.lower()] if guest_domain else [self.domain, f"guest.{self.domain}"]
        self.waiting_for_host = False  # a guest whose meeting has no host yet
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
        # no STUN by default: the bridge learns our address from the connectivity checks
        self.ice_servers = ice_servers if ice_servers is not None else []
        self.focus_service = focus or f"focus.{self.domain}"
        self.focus_jid = ""  # from the conference IQ answer
        self._focus_real = ""  # the real JID the room shows for its occupant `focus` ("" unknown)
        # after a lost connection, keep trying this long (s) before failing; 0: fail at once
        self.reconnect_timeout = float(reconnect_timeout)
        self.reconnects = 0  # times we got back into the room after a lost connection
        self.reconnecting = False
        self.machine_uid = uuid.uuid4().hex

        # what the focus and the bridge told us
        self.remote_sources: dict[str, list[Source]] = {}
        self.slot_owner: dict[tuple[str, int], str | None] = {}
        self.dominant_speaker: str | None = None
        self.video_wanted = True  # the bridge's SenderVideoConstraints: does anyone receive us
        self._feeds: dict[str, SourceFeed] = {}
        self.occupants: dict[str, str] = {}  # nick -> display name (others, not the focus)
        self.chat: list[tuple[str, str]] = []
        self.endpoint_messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.session: JingleAction | None = None  # the current session-initiate
        self.sid: str | None = None
        self.pc: RTCPeerConnection | None = None
        self.bridge_session = ""
        self.sessions = 0  # session-initiates handled (2+ means the focus moved us)

        self.client: slixmpp.ClientXMPP | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._dc: RTCDataChannel | None = None  # the bridge channel over SCTP, once open
        self._channel_task: asyncio.Task | None = None
        self._session_task: asyncio.Task | None = None
        self._pumps: list[asyncio.Task] = []
        self._mid_slot: dict[str, tuple[str, int]] = {}
        self._ssrc_slot: dict[tuple[str, int], int] = {}
        self._frames: dict[tuple[str, int], int] = {}
        self._announced: dict[tuple[str, int], str | None] = {}
        self._subs: dict[tuple[str, int], list[SlotTrack]] = {}
        self._removed: set[str] = set()
        self._recorder: Any = None
        self._recorder_tracks: list[SlotTrack] = []
        self._waiters: list[asyncio.Future] = []
        self._listeners: list[Callable[[Event], None]] = []
        self._failure: ParticipantError | None = None
        self._in_room = False
        self._joined = False
        self._established = False  # join() succeeded: a lost connection is reconnected from now on
        self._lost: asyncio.Future | None = None  # the current client's connection ended
        self._stale: set[str] = set()  # occupants from before a reconnect not seen again yet
        self._left = False
        self._ended = False  # the focus ended our session for good (success / gone)
        self._tasks: set[asyncio.Task] = set()
        self._media_lock = asyncio.Lock()
        self._step = "starting"

    @property
    def occupant_jid(self) -> str:
        return f"{self.room_jid}/{self.nick}"

    @property
    def focus_occupant(self) -> str:
        return f"{self.room_jid}/focus"

    @property
    def channel_kind(self) -> str | None:
        """The open bridge channel: "sctp" (data channel), "websocket" (colibri-ws) or None."""
        dc = self._dc
        if dc is not None and dc.readyState == "open":
            return "sctp"
        ws = self._ws
        if ws is not None and not ws.closed:
            return "websocket"
        return None

    # ---- listeners and waiting ---------------------------------------------------------------
    def add_listener(self, callback: Callable[[Event], None]) -> None:
        self._listeners.append(callback)

    def _emit(self, event: Event) -> None:
        for cb in list(self._listeners):
            try:
                cb(event)
            except Exception:
                log.exception("participant listener failed")
        self._notify()

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def _until(self, predicate: Callable[[], Any], timeout: float | None, what: str) -> Any:
        """Wait until `predicate()` is true (re-checked after every state change)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self._failure is not None:
                raise self._failure
            value = predicate()
            if value:
                return value
            fut = loop.create_future()
            self._waiters.append(fut)
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"{self.nick}: timed out waiting for {what}")
            try:
                await asyncio.wait_for(fut, remaining)
            except asyncio.TimeoutError:
                raise TimeoutError(f"{self.nick}: timed out waiting for {what}") from None

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("%s: task failed", self.nick, exc_info=t.exception())
        task.add_done_callback(done)
        return task

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

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.cafile)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def _connect(self) -> None:
        if self.user is not None or self.token is not None:
            return await self._connect_as(self.domain)
        first: ParticipantError | None = None
        for i, domain in enumerate(self.guest_domains):  # secure domain: guests live on guest.<domain>
            try:
                return await self._connect_as(domain)
            except ParticipantError as exc:
                if first is None and "refused guest sign-in" in str(exc) and i + 1 < len(self.guest_domains):
                    first = exc
                    self._drop_client()
                    continue
                raise (first or exc) from None

    async def _connect_as(self, domain: str) -> None:
        loop = asyncio.get_running_loop()
        if self.user is not None:
            jid = self.user if "@" in self.user else f"{self.user}@{self.domain}"
            c = slixmpp.ClientXMPP(jid, self.password)
            refused = f"{self.host}:{self.port} refused the sign-in of {jid} (wrong user name or password?)"
        elif self.token is not None:
            from . import token_sasl  # noqa: F401  (registers OAUTHBEARER with slixmpp)
            c = slixmpp.ClientXMPP(domain, "", sasl_mech="OAUTHBEARER")
            c.credentials["access_token"] = self.token
            refused = f"{self.host}:{self.port} refused the token"
        else:
            c = slixmpp.ClientXMPP(domain, "", sasl_mech="ANONYMOUS")
            refused = f"{self.host}:{self.port} refused guest sign-in (SASL ANONYMOUS) for {domain}"
        self.client = c
        c.enable_direct_tls = False
        c.enable_starttls = True
        c.enable_plaintext = False
        c.ssl_context = self._ssl_context()
        c.auto_reconnect = False
        started: asyncio.Future = loop.create_future()
        lost: asyncio.Future = loop.create_future()
        self._lost = lost

        def fail(message: str) -> None:
            if not started.done():
                started.set_exception(ParticipantError(message))

        c.add_event_handler("session_start", lambda _e: started.done() or started.set_result(None))
        c.add_event_handler("connection_failed",
                            lambda e: fail(f"cannot connect to {self.host}:{self.port}: {e}"))
        def tls_failed(e: Any) -> None:
            fail(f"the server's TLS certificate is not trusted ({getattr(e, 'verify_message', '') or e}); pass "
                 "its certificate (cafile / --cafile, --config) or skip the check (verify=False / --insecure)")

        c.add_event_handler("ssl_invalid_chain", tls_failed)
        reasons: list[str] = []
        c.add_event_handler("failed_auth", lambda f: reasons.append(f["text"] or f["condition"]))
        c.add_event_handler("failed_all_auth", lambda _e: fail(
            refused + (f": {reasons[-1]}" if reasons and reasons[-1] else "")))
        c.add_event_handler("stream_error", lambda e: fail(f"the server closed the stream: {e['condition']} {e['text']}"))
        def disconnected(reason: Any) -> None:
            if not lost.done():
                lost.set_result(reason)
            self._on_disconnected(c, reason)

        c.add_event_handler("disconnected", disconnected)
        c.add_event_handler("disconnected", lambda e: tls_failed(e) if isinstance(e, ssl.SSLError) else fail(
            f"{self.host}:{self.port} closed the connection before the session started ({e or 'no reason'})"))
        c.register_handler(CoroutineCallback(
            "jingle", MatchXPath("{jabber:client}iq/{%s}jingle" % jingle.NS), self._on_jingle_iq))
        c.register_handler(Callback("muc-presence", MatchXPath("{jabber:client}presence"), self._on_presence))
        c.register_handler(Callback("muc-message", MatchXPath("{jabber:client}message"), self._on_message))
        c.connect(self.host, self.port)
        try:
            await started
        except BaseException:
            c.cancel_connection_attempt()
            raise
        log.info("%s: signed in as %s", self.nick, c.boundjid)

    def _on_disconnected(self, client: slixmpp.ClientXMPP, reason: Any) -> None:
        if client is not self.client or self._left or self._failure is not None or self.reconnecting:
            return  # an old client, leaving, failed already, or a reconnect attempt (it sees the loss)
        if self._established and not self._ended and self.reconnect_timeout > 0:
            self.reconnecting = True
            self._spawn(self._reconnect(str(reason or "closed")))
            return
        if self._in_room or self._step.startswith(("asking", "joining", "waiting", "connecting media")):
            self._failure = ParticipantError(f"the XMPP connection was lost ({reason or 'closed'})")
            self._emit(Event("disconnected", self.nick, text=str(reason or "")))

    # ---- reconnecting ------------------------------------------------------------------------
    async def _reconnect(self, reason: str) -> None:
        """The connection dropped while we were in the conference (the server restarted, the
        network went away): media down, then sign in, ask the focus and rejoin the room again,
        with backoff (0.5 s doubling to 5 s) until `reconnect_timeout`; the focus then sends a
        new session-initiate as to any newcomer."""
        log.info("%s: the XMPP connection was lost (%s); reconnecting", self.nick, reason)
        self.reconnecting = True
        self._in_room = False
        self.sid = None
        self.session = None
        self.focus_jid = ""
        self._focus_real = ""
        self._stale = set(self.occupants)
        self.remote_sources.clear()  # the new session-initiate lists who sends what now
        self._removed.clear()
        self.dominant_speaker = None
        self._emit(Event("reconnecting", self.nick, text=reason))
        if self._session_task is not None and not self._session_task.done():
            self._session_task.cancel()
        await self._close_session()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reconnect_timeout
        delay = 0.5
        attempt = 0
        last = reason
        while not self._left:
            attempt += 1
            try:
                # one attempt may not hang on a server that accepts and never answers
                async with asyncio.timeout(max(0.1, min(RECONNECT_ATTEMPT_TIMEOUT, deadline - loop.time()))):
                    self._step = f"reconnecting to {self.host}:{self.port}"
                    await self._connect()
                    self._step = f"asking {self.focus_service} for {self.room_jid} again"
                    await self._while_connected(self._request_conference())
                    self._step = f"rejoining {self.room_jid}"
                    await self._while_connected(self._join_muc(any_nick=True))
                break
            except Refused as exc:
                self._give_up(str(exc))
                return
            except (ParticipantError, OSError, TimeoutError) as exc:
                last = str(exc) or "timed out"
                log.info("%s: reconnect attempt %d failed: %s", self.nick, attempt, last)
                self._drop_client()
            if self._left:
                return
            if loop.time() + delay >= deadline:
                self._give_up(f"the connection to the server was lost and not restored within "
                              f"{self.reconnect_timeout:g} s ({last})")
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        if self._left:
            return
        self.reconnecting = False
        self.reconnects += 1
        for nick in self._stale:  # left while we were away
            if self.occupants.pop(nick, None) is not None:
                self._emit(Event("occupant-left", nick))
        self._stale = set()
        self._step = ("waiting for the focus to offer a media session (it starts once enough "
                      "participants are in the room)")
        log.info("%s: back in %s after %d attempt(s)", self.nick, self.room_jid, attempt)
        self._emit(Event("reconnected", self.nick, text=self.room_jid))
        if self.client is not None and self.client.transport is None:  # dropped again meanwhile
            self.reconnecting = True
            self._spawn(self._reconnect("closed"))

    async def _while_connected(self, coro: Any) -> Any:
        """Run `coro` unless the current connection ends first (then ParticipantError): an IQ
        in flight would otherwise wait out its whole timeout on a dead stream."""
        task = asyncio.ensure_future(coro)
        lost = self._lost
        if lost is None:
            return await task
        done, _ = await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise ParticipantError(f"the connection was lost again ({lost.result() or 'closed'})")

    def _drop_client(self) -> None:
        c = self.client
        if c is None:
            return
        c.cancel_connection_attempt()
        if c.transport is not None:
            c.abort()

    def _give_up(self, why: str) -> None:
        self.reconnecting = False
        log.warning("%s: %s", self.nick, why)
        self._drop_client()
        self._failure = ParticipantError(why)
        self._emit(Event("disconnected", self.nick, text=why))

    async def _request_conference(self, attempts: int = 6) -> None:
        assert self.client is not None
        delay = 0.5
        last = ""
        attempt = -1
        while attempt + 1 < attempts:
            attempt += 1
            iq = self.client.make_iq_set(ito=self.focus_service)
            iq.xml.append(to_et(focus_iq.request_element(
                focus_iq.ConferenceRequest(self.room_jid, machine_uid=self.machine_uid))))
            try:
                res = await iq.send(timeout=10)
            except IqTimeout:
                last = "no answer"
            except IqError as exc:
                cond = exc.condition or "undefined-condition"
                last = f"{cond}" + (f": {exc.text}" if exc.text else "")
                if cond == focus_iq.WAIT_CONDITION and self._is_guest():
                    await self._wait_for_host(exc.text or focus_iq.WAITING_FOR_HOST)
                    attempt -= 1  # waiting for the host is not a failed attempt
                    continue
                if cond not in RETRY_CONDITIONS:
                    raise Refused(f"the focus refused {self.room_jid}: {last}") from None
            else:
                el = res.xml.find("{%s}conference" % focus_iq.NS)
                if el is not None and el.get("ready", "false").lower() == "true":
                    self.focus_jid = el.get("focusjid", "")
                    self.waiting_for_host = False
                    log.debug("%s: the conference is ready (focus %s)", self.nick, self.focus_jid or "unnamed")
                    return
                last = "the conference is not ready"
            if attempt + 1 < attempts:
                log.info("%s: conference request %d failed (%s); retrying in %.1f s", self.nick, attempt + 1,
                         last, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise ParticipantError(f"the focus ({self.focus_service}) did not set up {self.room_jid} "
                               f"after {attempts} attempts: {last}")

    def _is_guest(self) -> bool:
        return self.user is None and self.token is None

    async def _wait_for_host(self, text: str) -> None:
        """A guest of a meeting no host has opened: ask again every HOST_POLL s (the caller's
        timeout bounds the wait), as Jitsi clients do."""
        if not self.waiting_for_host:
            self.waiting_for_host = True
            log.info("%s: %s", self.nick, text)
            self._emit(Event("waiting-for-host", self.nick, text=text))
        self._step = "waiting for the host to open the meeting"
        await asyncio.sleep(HOST_POLL)

    def _presence(self, ptype: str | None = None) -> slixmpp.Presence:
        assert self.client is not None
        pres = self.client.make_presence(pto=self.occupant_jid, ptype=ptype)
        if ptype is None:
            ET.SubElement(pres.xml, "{%s}x" % MUC)
            ET.SubElement(pres.xml, "{%s}audiomuted" % AUDIO_MUTED).text = "true" if self.audio is None else "false"
            ET.SubElement(pres.xml, "{%s}videomuted" % VIDEO_MUTED).text = "true" if self.video is None else "false"
            if self.display_name:
                ET.SubElement(pres.xml, "{%s}nick" % NICK).text = self.display_name
        return pres

    async def _join_muc(self, any_nick: bool = False) -> None:
        """Join with our nick; if it is taken and was drawn at random (or, `any_nick`, when we
        come back after a lost connection and our old self may still be there), with another."""
        base = self.nick
        for _attempt in range(3):
            self._join_result: asyncio.Future = asyncio.get_running_loop().create_future()
            self._presence().send()
            try:
                await self._join_result
                self._in_room = True
                return
            except ParticipantError as exc:
                if "conflict" in str(exc) and not self._nick_given:
                    self.nick = secrets.token_hex(4)  # our random nick was taken: draw another
                    continue
                if "conflict" in str(exc) and any_nick:
                    self.nick = f"{base}-{secrets.token_hex(2)}"
                    continue
                raise Refused(str(exc)) from None
        raise ParticipantError(f"no free nick in {self.room_jid}")

    # ---- MUC -------------------------------------------------------------------------------
    def _on_presence(self, pres: slixmpp.Presence) -> None:
        frm = pres["from"]
        if frm.bare != self.room_jid:
            return
        nick = frm.resource
        ptype = pres["type"]
        x = pres.xml.find("{%s}x" % MUC_USER)
        codes = {s.get("code") for s in x.iterfind("{%s}status" % MUC_USER)} if x is not None else set()
        is_self = nick == self.nick or "110" in codes
        result = getattr(self, "_join_result", None)
        if ptype == "error":
            if is_self or not self._in_room:
                err = pres.xml.find("{jabber:client}error")
                cond = next((etree.QName(c.tag).localname for c in err if c.tag.startswith("{%s}" % STANZAS)
                             and etree.QName(c.tag).localname != "text"), "error") if err is not None else "error"
                text = err.findtext("{%s}text" % STANZAS) if err is not None else None
                hint = {"registration-required": " (members-only room: the lobby is not supported here)",
                        "not-authorized": " (the room has a password)", "conflict": " (nick in use)",
                        "forbidden": " (banned)"}.get(cond, "")
                if result is not None and not result.done():
                    result.set_exception(ParticipantError(
                        f"{self.room_jid} refused {self.nick}: {cond}{hint}" + (f": {text}" if text else "")))
            return
        if is_self:
            if "210" in codes or "110" in codes:
                self.nick = nick or self.nick
            if ptype == "unavailable":
                if "332" in codes and self._established and self.reconnect_timeout > 0:
                    return  # the server is shutting down: its connection goes next, and we reconnect
                if self._in_room and not self._left:
                    self._in_room = False
                    why = "kicked" if "307" in codes else "banned" if "301" in codes else "removed from the room"
                    self._failure = ParticipantError(f"{self.nick} was {why}")
                    self._emit(Event("kicked", self.nick, text=why))
                    self._spawn(self._close_session())
            elif result is not None and not result.done():
                result.set_result(None)
            return
        if nick == "focus":
            item = x.find("{%s}item" % MUC_USER) if x is not None else None
            self._focus_real = "" if ptype == "unavailable" or item is None else item.get("jid", "")
            return
        if not nick:
            return
        if ptype == "unavailable":
            self._stale.discard(nick)
            if self.occupants.pop(nick, None) is not None:
                self._emit(Event("occupant-left", nick))
        else:
            name = pres.xml.findtext("{%s}nick" % NICK) or ""
            new = nick not in self.occupants
            self._stale.discard(nick)
            self.occupants[nick] = name
            if new:
                self._emit(Event("occupant-joined", nick, text=name))

    def _on_message(self, msg: slixmpp.Message) -> None:
        if msg["type"] != "groupchat" or msg["from"].bare != self.room_jid:
            return
        body = msg["body"]
        if not body:
            return
        nick = msg["from"].resource
        self.chat.append((nick, body))
        self._emit(Event("chat", nick, text=body))

    def send_chat(self, text: str) -> None:
        if self.client is None or not self._in_room:
            raise ParticipantError("not in the room")
        self.client.send_message(mto=slixmpp.JID(self.room_jid), mbody=text, mtype="groupchat")

    async def wait_chat(self, text: str, timeout: float = 10.0) -> tuple[str, str]:
        """The first room message (own ones included, as the room echoes them) containing `text`."""
        return await self._until(lambda: next(((n, t) for n, t in self.chat if text in t), None), timeout,
                                 f"chat message {text!r}")

    # ---- Jingle ------------------------------------------------------------------------------
    def _iq_error(self, iq: slixmpp.Iq, exc: StanzaError) -> None:
        reply_error(iq, exc)

    @property
    def expected_focus(self) -> str:
        """The focus account's bare JID: as the conference IQ answer named it, else the default."""
        return slixmpp.JID(self.focus_jid).bare if self.focus_jid else f"focus@auth.{self.domain}"

    def _check_focus(self, frm: slixmpp.JID) -> None:
        """Raise unless `frm` is the room's occupant `focus` and that occupant is the real focus
        account (its real JID in the room's presence): anyone can send us an IQ, and a guest
        may sit in the room as `focus`."""
        if frm.bare != self.room_jid or frm.resource != "focus":
            raise StanzaError("not-acceptable", "Only the focus starts sessions with this participant")
        real = slixmpp.JID(self._focus_real).bare if self._focus_real else ""
        if real != self.expected_focus:
            raise StanzaError("forbidden", f"{frm} is not the conference focus ({self.expected_focus})")

    async def _on_jingle_iq(self, iq: slixmpp.Iq) -> None:
        if iq["type"] != "set":
            return
        try:
            try:
                self._check_focus(iq["from"])
            except StanzaError as exc:
                log.warning("%s: refused Jingle from %s (real JID %s): %s", self.nick, iq["from"],
                            self._focus_real or "unknown", exc.text)
                raise
            ja = jingle.parse_jingle(to_lxml(iq.xml.find("{%s}jingle" % jingle.NS)))
            if ja.action not in HANDLED_ACTIONS:
                raise StanzaError("bad-request", f"{ja.action} is not handled by this participant")
            if ja.action == "session-initiate":
                if self._left or not self._in_room:
                    raise StanzaError("not-acceptable", "Not in the conference")
                plan = plan_offer(ja, self.nick)  # bad offers are refused in the IQ answer
            elif ja.sid != self.sid:
                raise jingle.unknown_session()
        except StanzaError as exc:
            self._iq_error(iq, exc)
            return
        iq.reply(clear=True).send()  # acknowledge first (XEP-0166), then act
        if ja.action == "session-initiate":
            self._start_session(ja, plan)
        elif ja.action in ("source-add", "addsource"):
            self._sources_added(ja)
        elif ja.action in ("source-remove", "removesource"):
            self._sources_removed(ja)
        elif ja.action == "session-terminate":
            self._terminated(ja)
        # transport-info / session-info from the focus: nothing to do (ICE-lite bridge, no trickle)

    def _start_session(self, ja: JingleAction, plan: OfferPlan) -> None:
        if self._session_task is not None and not self._session_task.done():
            self._session_task.cancel()
        self.sid = ja.sid
        self.session = None
        self.sessions += 1
        self._session_task = self._spawn(self._set_up_session(ja, plan))

    async def _set_up_session(self, ja: JingleAction, plan: OfferPlan) -> None:
        async with self._media_lock:  # after any teardown still running, before the next one
            accept = await self._answer(ja, plan)
        if accept is None or self.sid != ja.sid:  # failed, or terminated while we answered
            return
        transport = plan.transport
        self.bridge_session = ja.bridge_session
        self.session = ja
        self._notify()
        self._emit(Event("session-initiate", self.nick, text=ja.sid))
        if self._channel_task is not None:
            self._channel_task.cancel()
        self._channel_task = None
        if plan.data is not None or transport.websocket_url:
            self._channel_task = self._spawn(self._bridge_channel(ja.sid, plan.data is not None,
                                                                  transport.websocket_url))
        try:
            await self._send_jingle(accept)
        except ParticipantError as exc:
            log.warning("%s: %s", self.nick, exc)
            self._step = f"connecting media to the bridge (the focus refused our session-accept: {exc})"

    async def _answer(self, ja: JingleAction, plan: OfferPlan) -> JingleAction | None:
        """A new PeerConnection for the offer; returns our session-accept (None: we failed)."""
        await self._close_pc()
        for nick, sources in plan.others.items():
            for src in sources:
                self._add_remote(nick, src)
        contents, offer = plan.contents, plan.sdp
        self._mid_slot = dict(plan.mid_slot)
        self._ssrc_slot = dict(plan.ssrc_slot)
        self.slot_owner = {key: None for key in self._mid_slot.values()}
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers,
                                                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.pc = pc
        pc.on("connectionstatechange", lambda: self._pc_state(pc))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            self._feeds = {}
            for track in (self.audio, self.video):
                if track is not None:
                    feed = SourceFeed(track)  # closing this pc must not end our sources
                    self._feeds[track.kind] = feed
                    pc.addTrack(feed)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            log.exception("%s: cannot answer the offer", self.nick)
            await self._send_jingle(JingleAction("session-terminate", ja.sid, initiator=ja.initiator,
                                                 responder=self.occupant_jid, reason="failed-application",
                                                 reason_text=str(exc)[:200]), quiet=True)
            self._failure = ParticipantError(f"cannot answer the focus's offer: {exc}")
            self._notify()
            return None
        for t in pc.getTransceivers():
            key = self._mid_slot.get(t.mid or "")
            if key is not None and t.receiver.track is not None:
                self._pumps.append(self._spawn(self._pump(key, t.receiver.track)))
        return session_accept(ja, contents, pc.localDescription.sdp, self.occupant_jid, self.nick, plan.data)

    async def _send_jingle(self, ja: JingleAction, quiet: bool = False, timeout: float = 15.0) -> None:
        if self.client is None or self.client.transport is None:
            return
        iq = self.client.make_iq_set(ito=self.focus_occupant)
        iq.xml.append(to_et(jingle.jingle_element(ja)))
        try:
            await iq.send(timeout=timeout)
        except IqError as exc:
            if not quiet:
                raise ParticipantError(f"{ja.action} refused: {exc.condition} {exc.text or ''}".strip()) from None
        except IqTimeout:
            if not quiet:
                raise ParticipantError(f"no answer to {ja.action}") from None

    def _pc_state(self, pc: RTCPeerConnection) -> None:
        if pc is not self.pc:
            return
        state = pc.connectionState
        log.info("%s: media connection %s", self.nick, state)
        self._emit(Event("connection", self.nick, text=state))
        if state == "failed" and self.sid and not self._left:
            # Jitsi clients report it this way; our focus answers with a fresh session
            self._spawn(self._send_jingle(JingleAction("session-info", self.sid, initiator=self.focus_occupant,
                                                       responder=self.occupant_jid, ice_state="failed"),
                                          quiet=True))

    def _add_remote(self, nick: str, src: Source) -> bool:
        have = self.remote_sources.setdefault(nick, [])
        if any(s.ssrc == src.ssrc for s in have):
            return False
        have.append(src)
        self._removed.discard(nick)
        return True

    def _sources_added(self, ja: JingleAction) -> None:
        by_owner: dict[str, list[Source]] = {}
        for c in ja.contents:
            for s in c.sources:
                nick = _nick_of(s.owner) if s.owner else ""
                if not nick or nick == self.nick:
                    continue
                s.kind = s.kind or c.kind
                if self._add_remote(nick, s):
                    by_owner.setdefault(nick, []).append(s)
        for nick, sources in by_owner.items():
            self._emit(Event("source-add", nick, sources=sources))

    def _sources_removed(self, ja: JingleAction) -> None:
        by_owner: dict[str, list[Source]] = {}
        for c in ja.contents:
            for s in c.sources:
                nick = _nick_of(s.owner) if s.owner else next(
                    (n for n, ss in self.remote_sources.items() if any(x.ssrc == s.ssrc for x in ss)), "")
                if nick:
                    by_owner.setdefault(nick, []).append(s)
        for nick, sources in by_owner.items():
            gone = {s.ssrc for s in sources}
            left = [s for s in self.remote_sources.get(nick, []) if s.ssrc not in gone]
            if left:
                self.remote_sources[nick] = left
            else:
                self.remote_sources.pop(nick, None)
                self._removed.add(nick)
            self._emit(Event("source-remove", nick, sources=sources))

    def _terminated(self, ja: JingleAction) -> None:
        self.sid = None
        self.session = None
        if ja.reason in ("success", "gone"):
            self._ended = True
        self._emit(Event("session-terminate", self.nick, text=ja.reason + (f": {ja.reason_text}" if ja.reason_text
                                                                            else "")))
        # other reasons: the focus moves us to another bridge and sends a new session-initiate
        self._spawn(self._close_session())

    async def wait_source_add(self, owner: str, timeout: float = 15.0) -> list[Source]:
        """Returns `owner`'s sources once the focus has announced any (at once if it has)."""
        return await self._until(lambda: self.remote_sources.get(owner), timeout, f"source-add from {owner}")

    async def wait_source_remove(self, owner: str, timeout: float = 15.0) -> None:
        """Returns once the focus has removed all of `owner`'s announced sources."""
        await self._until(lambda: owner in self._removed and owner not in self.remote_sources, timeout,
                          f"source-remove from {owner}")

    async def wait_session(self, count: int | None = None, timeout: float = 30.0) -> None:
        """Wait for a connected media session (the `count`-th session-initiate, if given)."""
        await self._until(lambda: (count is None or self.sessions >= count) and self.session is not None
                          and self.pc is not None and self.pc.connectionState == "connected", timeout,
                          "a connected media session")

    # ---- bridge channel ----------------------------------------------------------------------
    async def _bridge_channel(self, sid: str, sctp: bool, url: str | None) -> None:
        """The session's bridge channel: the data channel if offered and it opens, else (and after
        it closed while the session lasts) the WebSocket, if the bridge gave a URL."""
        if sctp and await self._data_channel(sid) and self.sid == sid and not self._left:
            log.info("%s: the data channel closed; using the WebSocket", self.nick)
        if url and self.sid == sid and not self._left:
            await self._channel(url, sid)

    async def _data_channel(self, sid: str) -> bool:
        """Open the data channel once media is connected and serve it until it closes or the
        session ends. False if it did not open within DATA_CHANNEL_TIMEOUT."""
        pc = self.pc
        if pc is None:
            return False

        def gone() -> bool:
            return self.sid != sid or self._left or self.pc is not pc

        try:
            await self._until(lambda: gone() or pc.connectionState in ("connected", "failed", "closed"), None,
                              "a connected media session")
            if gone() or pc.connectionState != "connected":
                return False
            dc = pc.createDataChannel(DATA_CHANNEL_LABEL, protocol=DATA_CHANNEL_PROTOCOL)
            dc.on("message", lambda message: self._on_dc_message(pc, message))
            dc.on("open", self._notify)
            dc.on("close", self._notify)
            try:
                await self._until(lambda: gone() or dc.readyState != "connecting", DATA_CHANNEL_TIMEOUT,
                                  "the data channel")
            except TimeoutError:
                pass
            if gone() or dc.readyState != "open":
                if not gone():
                    log.info("%s: the data channel did not open in %g s; using the WebSocket", self.nick,
                             DATA_CHANNEL_TIMEOUT)
                    dc.close()
                return False
            self._dc = dc
            self._notify()
            log.debug("%s: bridge channel open (data channel %s)", self.nick, dc.id)
            try:
                await self._until(lambda: gone() or dc.readyState != "open", None, "the data channel to close")
            finally:
                if self._dc is dc:
                    self._dc = None
            return True
        except ParticipantError:  # the participant failed; join()/leave() report it
            return False

    def _on_dc_message(self, pc: RTCPeerConnection, message: str | bytes) -> None:
        # runs inside aiortc's receive loop: must not raise
        if pc is not self.pc:
            return
        try:
            data = json.loads(message)
        except ValueError:
            return
        if isinstance(data, dict):
            try:
                self._on_channel(data)
            except Exception:
                log.exception("%s: bridge channel message failed", self.nick)

    async def _channel(self, url: str, sid: str) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        delay = 0.5
        while self.sid == sid and not self._left:
            ws: aiohttp.ClientWebSocketResponse | None = None
            try:
                ssl_arg: Any = self._ssl_context() if url.startswith("wss:") else None
                async with self._http.ws_connect(url, heartbeat=30, ssl=ssl_arg) as ws:
                    self._ws = ws
                    self._notify()
                    delay = 0.5
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            continue
                        try:
                            data = json.loads(msg.data)
                        except ValueError:
                            continue
                        if isinstance(data, dict):
                            self._on_channel(data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("%s: bridge channel %s: %s", self.nick, url.split("?")[0], exc)
            finally:
                if ws is not None and self._ws is ws:  # not a newer session's
                    self._ws = None
            if self.sid != sid or self._left:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _on_channel(self, data: dict[str, Any]) -> None:
        cls = data.get("colibriClass")
        if cls in ("AudioSourcesMap", "VideoSourcesMap"):
            kind = "audio" if cls == "AudioSourcesMap" else "video"
            for entry in data.get("mappedSources") or []:
                if not isinstance(entry, dict):
                    continue
                slot = None
                try:
                    slot = self._ssrc_slot.get((kind, int(entry.get("ssrc"))))
                except (TypeError, ValueError):
                    pass
                if slot is None:
                    try:
                        slot = int(entry.get("slot"))
                    except (TypeError, ValueError):
                        continue
                owner = entry.get("owner") or None
                self.slot_owner[(kind, slot)] = owner
            self._notify()
        elif cls == "DominantSpeakerEndpointChangeEvent":
            self.dominant_speaker = data.get("dominantSpeakerEndpoint")
            self._emit(Event("dominant-speaker", self.dominant_speaker or ""))
        elif cls == "EndpointMessage":
            self.endpoint_messages.put_nowait(data)
            self._notify()
        elif cls == "SenderVideoConstraints":
            try:
                height = int((data.get("videoConstraints") or {}).get("idealHeight", 1))
            except (TypeError, ValueError):
                height = 1
            feed = self._feeds.get("video")
            self.video_wanted = height > 0
            if feed is not None:
                feed.pause(height <= 0)  # nobody receives our video: stop encoding it
            self._notify()
        elif cls == "ServerHello":
            log.debug("%s: bridge channel open (%s)", self.nick, data.get("version"))

    async def wait_channel(self, timeout: float = 10.0) -> str:
        """The kind of the open bridge channel ("sctp" or "websocket"), once there is one."""
        return await self._until(lambda: self.channel_kind, timeout, "the bridge channel")

    async def send_endpoint_message(self, to: str, payload: Any) -> None:
        """Relay `payload` through the bridge to endpoint `to` ("" for everyone), on the open
        bridge channel (waiting up to 10 s for one)."""
        text = json.dumps({"colibriClass": "EndpointMessage", "to": to, "msgPayload": payload})
        kind = await self.wait_channel(10.0)
        if kind == "sctp":
            assert self._dc is not None
            self._dc.send(text)
        else:
            assert self._ws is not None
            await self._ws.send_str(text)

    # ---- received media ----------------------------------------------------------------------
    async def _pump(self, key: tuple[str, int], track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self._frames[key] = self._frames.get(key, 0) + 1
            owner = self.slot_owner.get(key)
            if owner and self._announced.get(key) != owner:
                self._announced[key] = owner
                self._emit(Event("media", owner, kind=key[0]))
            for sub in list(self._subs.get(key, ())):
                sub.push(frame)
            if self._waiters:
                self._notify()

    def _slot_of(self, owner: str, kind: str) -> tuple[str, int] | None:
        return next((key for key, o in sorted(self.slot_owner.items(), key=lambda kv: kv[0][1])
                     if o == owner and key[0] == kind), None)

    def _subscribe(self, key: tuple[str, int], **kwargs: Any) -> SlotTrack:
        track = SlotTrack(key[0], key[1], on_stop=self._unsubscribe, **kwargs)
        self._subs.setdefault(key, []).append(track)
        return track

    def _unsubscribe(self, track: SlotTrack) -> None:
        subs = self._subs.get((track.kind, track.slot), [])
        if track in subs:
            subs.remove(track)

    def track_for(self, owner: str, kind: str) -> SlotTrack | None:
        """A track of the slot `owner`'s `kind` media currently arrives in (None: no such slot).

        It relays that slot's decoded frames (it follows the slot, not the owner, like the
        RemoteStreamTrack it stands for); `stop()` it when done.
        """
        key = self._slot_of(owner, kind)
        return None if key is None else self._subscribe(key)

    async def wait_frames(self, owner: str, kind: str, count: int = 3, timeout: float = 15.0) -> None:
        """Wait for `count` decoded frames from the slot mapped to `owner` (counted from now)."""
        state: dict[str, Any] = {"key": None, "base": 0}

        def enough() -> bool:
            key = self._slot_of(owner, kind)
            if key != state["key"]:
                state["key"], state["base"] = key, self._frames.get(key, 0) if key else 0
                return False
            return key is not None and self._frames.get(key, 0) - state["base"] >= count

        try:
            await self._until(enough, timeout, f"{count} {kind} frames from {owner}")
        except TimeoutError:
            got = self._frames.get(state["key"], 0) - state["base"] if state["key"] else 0
            raise TimeoutError(f"{self.nick}: {got}/{count} {kind} frames from {owner} in {timeout:g} s "
                               f"(slots: {self.slot_owner}, media: {self.pc and self.pc.connectionState})") from None

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

    async def _close_pc(self) -> None:
        pumps, self._pumps = self._pumps, []
        for p in pumps:
            p.cancel()
        pc, self.pc = self.pc, None
        if pc is not None:
            try:
                await pc.close()
            except Exception:
                log.debug("%s: closing the PeerConnection failed", self.nick, exc_info=True)

    async def _close_session(self) -> None:
        """Media down (after a session-terminate or when kicked); the room stays joined."""
        task = self._channel_task
        self._channel_task = None
        if task is not None:
            task.cancel()
        async with self._media_lock:  # never the PeerConnection of a session set up meanwhile
            if self._ws is not None:
                await self._ws.close()
            self._dc = None  # closed with the PeerConnection
            await self._close_pc()
            self.slot_owner = {}
        self._notify()

    async def _shutdown(self) -> None:
        self._left = True
        await self.stop_recording()
        if self._session_task is not None and not self._session_task.done():
            self._session_task.cancel()
        await self._close_session()
        for subs in list(self._subs.values()):
            for t in list(subs):
                t.stop()
        if self._http is not None:
            await self._http.close()
            self._http = None
        c = self.client
        if c is not None:
            c.cancel_connection_attempt()
            if c.transport is not None:
                try:
                    await asyncio.wait_for(c.disconnect(wait=1), 3)
                except Exception:
                    c.abort()
        for t in list(self._tasks):
            if t is not asyncio.current_task():
                t.cancel()
        self._notify()

    async def __aenter__(self) -> "Participant":
        await self.join()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.leave()
