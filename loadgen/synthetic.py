"""Synthetic conference participants: the real signalling and transport, no codecs.

A `SyntheticParticipant` joins a conference exactly as a Jitsi client does — XMPP sign-in
(STARTTLS + SASL ANONYMOUS + bind), the focus's `conference` IQ, MUC join, a Jingle session with
the focus (it answers `session-initiate` with a `session-accept` announcing one audio and one
video source and its own ICE/DTLS transport), ICE + DTLS-SRTP with the bridge — and then sends
pre-built RTP instead of encoded media. That makes it cheap enough to run hundreds in one
process, so the stack (server, MUC, focus, bridge) can be loaded with a large conference on one
machine.

Why not `jitsi_py.participant.Participant`: that one is a real WebRTC peer (aiortc
RTCPeerConnection, codecs, jitter buffers), which costs a core for a few dozen participants.
Here the only per-packet work is one SRTP protect + sendto per packet sent, and one counter
increment per packet received (plus an SRTP unprotect for the sampled ones).

Signalling: a minimal asyncio XMPP client (`XmppLink`) parsing stanzas with our own
`xmpp_wire.xmlstream.StreamParser` (lxml's pull parser). Chosen over slixmpp by
measurement (`python bench/large_conference.py --compare-xmpp`, 2026-11-25, 2 cores, stack in
its own process): 200 clients signing in one after another and joining one MUC room cost the
load process 18.3 s of CPU (21.3 s wall) with slixmpp against 1.3 s (6.8 s wall) with this
client, while the stack spent 2.3-2.4 s either way. The room's presence fan-out alone is 20,000
stanzas; slixmpp turns each into ElementTree + stanza objects and runs every registered matcher
over it. In a conference the focus's source-add fan-out adds as many again.

Media (all packets carry a 20-byte trailer: magic, sender SSRC, counter, send time):

- audio: opus-like RTP, payload type 111, one packet per 20 ms, 48 kHz timestamps, with the
  RFC 6464 audio-level one-byte header extension (id from the offer's `ssrc-audio-level`
  extmap): level 30 (loud) when `speaking`, 127 (silence, which the bridge drops) otherwise;
- video: VP8-like RTP, payload type 100, ~800-byte payload, `video_rate` packets/s (one packet
  per frame, a thumbnail).

Receiving: once DTLS is up, the selected ICE pair's `datagram_received` is replaced by a counter
per slot SSRC (the SRTP header is in clear), so most packets are never decrypted; every
`audio_sample`-th audio and `video_sample`-th video packet is decrypted and its trailer gives the
original sender, its counter (loss) and its send time (one-way latency: senders and receivers
on one machine share CLOCK_MONOTONIC, even across processes).
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
import ssl
import struct
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable
from xml.sax.saxutils import quoteattr

import pylibsrtp
from lxml import etree

from bridge.transport import EndpointTransport
from jitsi_protocols import focus_iq, jingle
from jitsi_protocols.jingle import JingleAction
from jitsi_protocols.model import Content, IceTransport, Media, Source
from jitsi_base import ns
from jitsi_base.errors import StreamError
from xmpp_wire.xmlstream import StreamParser

log = logging.getLogger(__name__)

__all__ = ["SyntheticParticipant", "SyntheticError", "SenderStats", "XmppLink", "ClientTransport", "prepare_room",
           "client_ssl_context"]

AUDIO_PT = 111
VIDEO_PT = 100
AUDIO_INTERVAL = 0.020
AUDIO_TS_STEP = 960  # 20 ms at 48 kHz
VIDEO_TS_STEP = 3000  # 30 fps at 90 kHz
AUDIO_PAYLOAD = 80  # ~32 kbit/s opus
VIDEO_PAYLOAD = 800
LOUD, SILENT = 30, 127  # RFC 6464 -dBov

MAGIC = b"SYN1"
TRAILER = struct.Struct("!4sIIQ")  # magic, sender SSRC, counter, send time (monotonic ns)
RTP_HEADER = struct.Struct("!HI")  # seq, timestamp at offset 2

class SyntheticError(Exception):
    """Joining failed: the message says which step and why."""


# =============================================================================================
# Signalling: a minimal XMPP c2s client
# =============================================================================================
class XmppLink(asyncio.Protocol):
    """One c2s connection speaking just what a conference guest needs.

    STARTTLS (verified against `ssl_context`), SASL ANONYMOUS, resource binding; after that,
    every incoming stanza is handled synchronously in `data_received`: IQ results/errors
    complete `iq()` callers, everything else goes to `on_stanza`. Incoming `get`/`set` IQs that
    `on_stanza` does not claim (returns False) get `service-unavailable`, as RFC 6120 asks.
    A plain `asyncio.Protocol` rather than streams: no reader task, no copies, and
    `loop.start_tls` switches the same connection to TLS.
    """

    MAX_STANZA = 8 * 1024 * 1024  # a session-initiate lists every other participant's sources

    def __init__(self, host: str, port: int, domain: str, ssl_context: ssl.SSLContext,
                 on_stanza: Callable[[etree._Element], bool]) -> None:
        self.host, self.port, self.domain = host, port, domain
        self.ssl_context = ssl_context
        self.on_stanza = on_stanza
        self.jid = ""
        self.transport: asyncio.Transport | None = None
        self._parser = StreamParser(self.MAX_STANZA, 64)
        self._events: list[tuple[str, Any]] = []
        self._ready = False  # signed in: dispatch stanzas as they arrive
        self._waiter: asyncio.Future | None = None
        self._pending: dict[str, asyncio.Future] = {}
        self._ids = 0
        self.closed = asyncio.get_running_loop().create_future()  # result: why (str)

    # ---- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            events = self._parser.feed(data)
        except StreamError as exc:
            self._finish(f"unparsable XML from the server: {exc}")
            if self.transport is not None:
                self.transport.abort()
            return
        if not self._ready:
            self._events.extend(events)
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)
            return
        for kind, el in events:
            if kind == "stanza":
                self._dispatch(el)
            elif kind == "close":
                self._finish("the server closed the stream")
                if self.transport is not None:
                    self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(f"connection lost ({exc})" if exc else "connection closed")

    # ---- set-up ------------------------------------------------------------------------------
    async def connect(self) -> str:
        """Sign in; returns the bound full JID."""
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self, self.host, self.port)
        self._open_stream()
        features = await self._features()
        if features.find("{%s}starttls" % ns.TLS) is None:
            raise SyntheticError("the server does not offer STARTTLS")
        self._write(b"<starttls xmlns='%s'/>" % ns.TLS.encode())
        el = await self._next_stanza()
        if etree.QName(el).localname != "proceed":
            raise SyntheticError(f"STARTTLS refused: {etree.tostring(el)[:200]!r}")
        assert self.transport is not None
        self.transport = await loop.start_tls(self.transport, self, self.ssl_context,
                                              server_hostname=self.domain)  # type: ignore[assignment]
        self._restart()
        features = await self._features()
        mechs = [m.text for m in features.iter("{%s}mechanism" % ns.SASL)]
        if "ANONYMOUS" not in mechs:
            raise SyntheticError(f"no SASL ANONYMOUS (offered: {mechs})")
        self._write(b"<auth xmlns='%s' mechanism='ANONYMOUS'/>" % ns.SASL.encode())
        el = await self._next_stanza()
        if etree.QName(el).localname != "success":
            raise SyntheticError(f"SASL ANONYMOUS failed: {etree.tostring(el)[:300]!r}")
        self._restart()
        await self._features()
        self._write(b"<iq type='set' id='bind'><bind xmlns='%s'/></iq>" % ns.BIND.encode())
        el = await self._next_stanza()
        jid = el.findtext(".//{%s}jid" % ns.BIND)
        if el.get("type") != "result" or not jid:
            raise SyntheticError(f"bind failed: {etree.tostring(el)[:300]!r}")
        self.jid = jid
        self._ready = True
        pending, self._events = self._events, []
        for kind, el in pending:
            if kind == "stanza":
                self._dispatch(el)
        return jid

    def _open_stream(self) -> None:
        self._write(("<?xml version='1.0'?><stream:stream to=%s version='1.0' xml:lang='en' "
                     "xmlns='%s' xmlns:stream='%s'>" % (quoteattr(self.domain), ns.CLIENT, ns.STREAMS)).encode())

    def _restart(self) -> None:
        self._parser = StreamParser(self.MAX_STANZA, 64)
        self._events = []
        self._open_stream()

    async def _features(self) -> etree._Element:
        el = await self._next_stanza()
        if el.tag != "{%s}features" % ns.STREAMS:
            raise SyntheticError(f"expected stream features, got {etree.tostring(el)[:200]!r}")
        return el

    async def _next_stanza(self) -> etree._Element:
        while True:
            while self._events:
                kind, el = self._events.pop(0)
                if kind == "stanza":
                    if el.tag == "{%s}error" % ns.STREAMS:
                        raise SyntheticError(f"stream error: {etree.tostring(el)[:300]!r}")
                    return el
                if kind == "close":
                    raise SyntheticError("the server closed the stream")
            if self.closed.done():
                raise SyntheticError(self.closed.result())
            self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.wait({self._waiter, self.closed}, return_when=asyncio.FIRST_COMPLETED)

    # ---- running -----------------------------------------------------------------------------
    def _finish(self, reason: str) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(SyntheticError(f"XMPP connection lost: {reason}"))
        self._pending.clear()
        if not self.closed.done():
            self.closed.set_result(reason)

    def _dispatch(self, el: etree._Element) -> None:
        tag = el.tag
        if tag == "iq":
            typ = el.get("type")
            if typ in ("result", "error"):
                fut = self._pending.pop(el.get("id", ""), None)
                if fut is not None and not fut.done():
                    fut.set_result(el)
                return
            try:
                claimed = self.on_stanza(el)
            except Exception:
                log.exception("stanza handler failed")
                claimed = False
            if not claimed:
                self.reply_error(el, "service-unavailable")
            return
        if tag == "{%s}error" % ns.STREAMS:
            log.warning("stream error: %s", etree.tostring(el)[:300])
            return
        try:
            self.on_stanza(el)
        except Exception:
            log.exception("stanza handler failed")

    def _write(self, data: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(data)

    def send(self, el: etree._Element | bytes) -> None:
        self._write(el if isinstance(el, bytes) else etree.tostring(el))

    def next_id(self) -> str:
        self._ids += 1
        return f"s{self._ids}"

    async def iq(self, el: etree._Element, timeout: float = 15.0) -> etree._Element:
        """Send an IQ get/set; return the result element, raise `IqFailed` on an error reply."""
        iq_id = el.get("id") or self.next_id()
        el.set("id", iq_id)
        if self.closed.done():
            raise SyntheticError(f"XMPP connection lost: {self.closed.result()}")
        fut = asyncio.get_running_loop().create_future()
        self._pending[iq_id] = fut
        self.send(el)
        try:
            res = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self._pending.pop(iq_id, None)
            raise IqFailed("timeout", f"no answer to IQ {iq_id} within {timeout:.0f} s") from None
        if res.get("type") == "error":
            err = res.find("error")
            cond = "undefined-condition"
            text = ""
            if err is not None:
                for child in err:
                    if isinstance(child.tag, str) and child.tag.startswith("{%s}" % ns.STANZA_ERRORS):
                        name = etree.QName(child).localname
                        if name == "text":
                            text = child.text or ""
                        else:
                            cond = name
            raise IqFailed(cond, text)
        return res

    def reply_result(self, iq: etree._Element) -> None:
        frm = iq.get("from")
        self._write(b"<iq type='result' id=%s%s/>" % (
            quoteattr(iq.get("id", "")).encode(), (b" to=" + quoteattr(frm).encode()) if frm else b""))

    def reply_error(self, iq: etree._Element, condition: str, typ: str = "cancel") -> None:
        frm = iq.get("from")
        self._write(b"<iq type='error' id=%s%s><error type='%s'><%s xmlns='%s'/></error></iq>" % (
            quoteattr(iq.get("id", "")).encode(), (b" to=" + quoteattr(frm).encode()) if frm else b"",
            typ.encode(), condition.encode(), ns.STANZA_ERRORS.encode()))

    async def close(self) -> None:
        """Close the stream (the server then ends the MUC presence) and the connection."""
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(b"</stream:stream>")
            t.close()
            try:
                await asyncio.wait_for(asyncio.shield(self.closed), 2)
            except asyncio.TimeoutError:
                t.abort()
        self._finish("closed")


class IqFailed(SyntheticError):
    def __init__(self, condition: str, text: str = "") -> None:
        super().__init__(f"{condition}" + (f": {text}" if text else ""))
        self.condition = condition
        self.text = text


def client_ssl_context(cafile: str | None, verify: bool = True) -> ssl.SSLContext:
    """TLS for STARTTLS, verified against `cafile` (the stack's self-signed certificate).

    At most TLS 1.2: a TLS 1.2 client finishes its handshake only after the server's Finished,
    so our first stream header reaches the server after its start_tls() returned. With TLS 1.3
    the header can ride in the same TCP segment as the client Finished, and our server
    (xmpp_plugins/tcp_stream.py, `_upgrade`: no parser until start_tls() returns, so
    `data_received` drops what arrives first) loses it: the sign-in then hangs."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _conference_iq(link: XmppLink, focus_service: str, room_jid: str, attempts: int = 8) -> None:
    """The focus's `conference` IQ, retried while the focus is starting or busy."""
    delay = 0.5
    last = ""
    for attempt in range(attempts):
        iq = etree.Element("iq", type="set", to=focus_service)
        iq.append(focus_iq.request_element(focus_iq.ConferenceRequest(room_jid)))
        try:
            res = await link.iq(iq, timeout=15)
        except IqFailed as exc:
            last = str(exc)
            if exc.condition not in focus_iq.RETRY_CONDITIONS and exc.condition != "timeout":
                raise SyntheticError(f"the focus refused {room_jid}: {exc}") from None
        else:
            el = res.find("{%s}conference" % focus_iq.NS)
            if el is not None and el.get("ready", "false").lower() == "true":
                return
            last = "not ready"
        if attempt + 1 < attempts:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 4.0)
    raise SyntheticError(f"the focus did not set up {room_jid}: {last}")


async def prepare_room(host: str, port: int, room: str, *, domain: str = "localhost", cafile: str | None = None,
                       verify: bool = True, timeout: float = 30.0) -> str:
    """Have the focus create `room` before a crowd joins it; returns the room JID.

    Not needed for correctness (the focus answers a `conference` IQ only once it is in the room,
    so concurrent first requests all wait for that one join), but it keeps the room's creation
    out of what a benchmark measures as the crowd's join phase."""
    domain = domain.lower()
    room_jid = room if "@" in room else f"{room.lower()}@conference.{domain}"
    link = XmppLink(host, port, domain, client_ssl_context(cafile, verify), lambda el: False)
    try:
        async with asyncio.timeout(timeout):
            await link.connect()
            await _conference_iq(link, f"focus.{domain}", room_jid)
    finally:
        await link.close()
    return room_jid


# =============================================================================================
# Media transport: the bridge's EndpointTransport with the roles swapped
# =============================================================================================
class ClientTransport(EndpointTransport):
    """The participant's side of a bridge transport: ICE controlled, DTLS client (`setup=active`).

    Reusing the bridge's transport keeps ICE, the DTLS handshake and the SRTP keys real while
    skipping RTCPeerConnection (SDP, RTP routing, jitter buffers) entirely."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, ice_controlling=False, setup="active", **kw)


# =============================================================================================
# Received media statistics
# =============================================================================================
class SenderStats:
    """What one receiver saw of one sender's stream, from the decrypted (sampled) packets."""

    __slots__ = ("kind", "decrypted", "first", "last", "latency_us")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.decrypted = 0
        self.first = -1  # lowest and highest sender counter seen
        self.last = -1
        self.latency_us: array = array("l")

    def add(self, counter: int, latency_ns: int) -> None:
        self.decrypted += 1
        if self.first < 0 or counter < self.first:
            self.first = counter
        if counter > self.last:
            self.last = counter
        self.latency_us.append(latency_ns // 1000)

    def expected(self) -> int:
        return self.last - self.first + 1 if self.first >= 0 else 0

    def loss(self) -> float:
        """Fraction lost between the first and last packet seen; meaningful only when every
        packet of this kind is decrypted (sample rate 1)."""
        exp = self.expected()
        return max(0.0, 1.0 - self.decrypted / exp) if exp else 0.0


# =============================================================================================
# Sending: one pacer per event loop for all participants
# =============================================================================================
class _Pacer:
    """Wakes every TICK and lets each registered participant send what its clock owes.

    One timer for hundreds of participants instead of one task each: a wake-up per packet per
    participant would cost more than the packets. Participants are spread over PHASES groups,
    one group per tick (PHASES * TICK = one 20 ms audio frame), so their packets reach the
    bridge spread over the frame as independent clients' would, not in a few bursts."""

    TICK = 0.002
    PHASES = 10
    _by_loop: dict[int, "_Pacer"] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.groups: list[list["SyntheticParticipant"]] = [[] for _ in range(self.PHASES)]
        self.count = 0
        self.task = loop.create_task(self._run())

    @classmethod
    def add(cls, p: "SyntheticParticipant") -> None:
        loop = asyncio.get_running_loop()
        pacer = cls._by_loop.get(id(loop))
        if pacer is None or pacer.loop is not loop or pacer.task.done():
            pacer = cls._by_loop[id(loop)] = cls(loop)
        pacer.groups[pacer.count % cls.PHASES].append(p)
        pacer.count += 1

    @classmethod
    def remove(cls, p: "SyntheticParticipant") -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        pacer = cls._by_loop.get(id(loop))
        if pacer is None:
            return
        for g in pacer.groups:
            if p in g:
                g.remove(p)

    async def _run(self) -> None:
        loop = self.loop
        phase = 0
        due = loop.time()
        idle_since = None
        while True:
            now = loop.time()
            group = self.groups[phase]
            for p in list(group):
                try:
                    p._send_due(now)
                except Exception:
                    log.exception("%s: sending failed", p.nick)
                    group.remove(p)
            phase = (phase + 1) % self.PHASES
            if not any(self.groups):
                idle_since = idle_since or now
                if now - idle_since > 2.0:
                    if self._by_loop.get(id(loop)) is self:
                        del self._by_loop[id(loop)]
                    return
            else:
                idle_since = None
            due += self.TICK
            delay = due - loop.time()
            if delay < -0.1:  # far behind (a busy loop): do not try to catch up with a burst
                due = loop.time()
                delay = 0.0
            await asyncio.sleep(max(0.0, delay))


# =============================================================================================
# The participant
# =============================================================================================
@dataclass
class _Session:
    sid: str
    offer: JingleAction
    transport: ClientTransport
    slot_kind: dict[int, str] = field(default_factory=dict)  # slot SSRC -> audio | video
    audio_level_ext: int = 1


class SyntheticParticipant:
    """A conference participant that sends pre-built RTP and counts what it receives.

    `join()` returns once the media transport with the bridge is connected (for the first
    participant in a room that is when a second one has joined: the focus starts sessions from
    `min_participants` on). Stats: `rx_packets` (SRTP datagrams received), `rx_by_slot`
    (per slot SSRC), `senders` (per original sender SSRC: `SenderStats`), `sent_audio` /
    `sent_video`; `reset_stats()` starts a new measurement window.
    """

    def __init__(self, host: str, port: int, room: str, *, domain: str = "localhost",
                 cafile: str | None = None, nick: str | None = None, send_audio: bool = True,
                 send_video: bool = True, speaking: bool = False, video_rate: float = 30.0,
                 audio_sample: int = 1, video_sample: int = 10, audio_ssrc: int | None = None,
                 video_ssrc: int | None = None, media_address: str = "127.0.0.1",
                 muc_domain: str | None = None, rcvbuf: int = 1 << 20, verify: bool = True) -> None:
        self.host, self.port = host, port
        self.domain = domain.lower()
        self.room_jid = room if "@" in room else f"{room.lower()}@{muc_domain or 'conference.' + self.domain}"
        self.focus_service = f"focus.{self.domain}"
        self.nick = nick or secrets.token_hex(4)
        self.cafile = cafile
        self.verify = verify
        self.send_audio, self.send_video, self.speaking = send_audio, send_video, speaking
        self.video_rate = video_rate
        self.audio_sample = max(1, audio_sample)
        self.video_sample = max(1, video_sample)
        self.audio_ssrc = audio_ssrc or secrets.randbits(31) | 1
        self.video_ssrc = video_ssrc or secrets.randbits(31) | 2
        self.media_address = media_address
        self.rcvbuf = rcvbuf
        self.xmpp: XmppLink | None = None
        self.session: _Session | None = None
        self._sid = ""  # the focus's current session id (from its latest session-initiate)
        self.failure: BaseException | None = None
        self.left = False
        self.in_room = False
        self.sessions = 0  # session-initiates received (more than one: re-invited)
        self.source_updates = 0  # source-add/remove from the focus
        # stats
        self.rx_packets = 0
        self.rx_rtcp = 0
        self.rx_by_slot: dict[int, int] = {}
        self.senders: dict[int, SenderStats] = {}
        self.decrypt_errors = 0
        self.sent_audio = 0
        self.sent_video = 0
        # step -> seconds since join() started: signed_in, conference, in_room, offer (the
        # focus's session-initiate), accepted (its answer to our session-accept), media
        self.timings: dict[str, float] = {}
        self._connected = asyncio.get_running_loop().create_future()
        self._self_presence: asyncio.Future | None = None
        self._tasks: set[asyncio.Task] = set()
        self._transport: ClientTransport | None = None
        self._media_t0 = 0.0
        self._t0 = time.monotonic()  # join() started
        self._deadline = self._t0 + 30.0
        self._audio_pkt = bytearray()
        self._video_pkt = bytearray()
        self._audio_seq = secrets.randbits(16)
        self._video_seq = secrets.randbits(16)
        self._audio_ts = secrets.randbits(32)
        self._video_ts = secrets.randbits(32)
        self._audio_due = 0
        self._video_due = 0
        self._audio_counter = 0  # in every packet's trailer; never reset (sent_* may be)
        self._video_counter = 0

    @property
    def occupant_jid(self) -> str:
        return f"{self.room_jid}/{self.nick}"

    # ---- joining -------------------------------------------------------------------------------
    async def join(self, timeout: float = 30.0) -> None:
        """Sign in, ask the focus for the room, join it, and connect media with the bridge."""
        t0 = self._t0 = time.monotonic()
        self._deadline = t0 + timeout
        step = "signing in"
        try:
            async with asyncio.timeout(timeout):
                self._transport = ClientTransport(self.media_address, on_rtp=self._early_rtp,
                                                  on_rtcp=self._early_rtcp)
                gather = asyncio.ensure_future(self._transport.gather())
                ctx = client_ssl_context(self.cafile, self.verify)
                self.xmpp = XmppLink(self.host, self.port, self.domain, ctx, self._on_stanza)
                await self.xmpp.connect()
                self.timings["signed_in"] = time.monotonic() - t0
                step = "asking the focus for the room"
                await self._request_conference()
                self.timings["conference"] = time.monotonic() - t0
                step = "joining the room"
                await gather
                await self._join_muc()
                self.in_room = True
                self.timings["in_room"] = time.monotonic() - t0
                step = "waiting for the focus's offer and connecting media"
                done, _ = await asyncio.wait({self._connected, self.xmpp.closed},
                                             return_when=asyncio.FIRST_COMPLETED)
                if self._connected not in done:
                    raise SyntheticError(f"XMPP connection lost: {self.xmpp.closed.result()}")
                self._connected.result()
                self.timings["media"] = time.monotonic() - t0
        except TimeoutError:
            self.failure = SyntheticError(f"{self.nick}: timed out after {timeout:.0f} s while {step}")
            raise self.failure from None
        except SyntheticError as exc:
            self.failure = SyntheticError(f"{self.nick}: {step}: {exc}")
            raise self.failure from None

    async def _request_conference(self) -> None:
        assert self.xmpp is not None
        await _conference_iq(self.xmpp, self.focus_service, self.room_jid)

    async def _join_muc(self) -> None:
        assert self.xmpp is not None
        self._self_presence = asyncio.get_running_loop().create_future()
        self.xmpp.send((
            "<presence to=%s><x xmlns='%s'><history maxstanzas='0'/></x>"
            "<audiomuted xmlns='%s'>%s</audiomuted>"
            "<videomuted xmlns='%s'>%s</videomuted></presence>" % (
                quoteattr(self.occupant_jid), ns.MUC,
                ns.JITSI_AUDIO_MUTED, "false" if self.send_audio else "true",
                ns.JITSI_VIDEO_MUTED, "false" if self.send_video else "true")).encode())
        err = await self._self_presence
        if err:
            raise SyntheticError(f"{self.room_jid} refused us: {err}")

    # ---- stanzas -------------------------------------------------------------------------------
    def _on_stanza(self, el: etree._Element) -> bool:
        tag = el.tag
        if tag == "presence":
            self._on_presence(el)
            return True
        if tag == "iq":
            j = el.find("{%s}jingle" % jingle.NS)
            if j is not None and el.get("type") == "set":
                self._on_jingle(el, j)
                return True
            if el.get("type") == "get" and el.find(ns.q(ns.PING, "ping")) is not None:
                assert self.xmpp is not None
                self.xmpp.reply_result(el)
                return True
            return False
        return True  # messages: ignored

    def _on_presence(self, el: etree._Element) -> None:
        fut = self._self_presence
        if fut is None or fut.done() or el.get("from") != self.occupant_jid:
            return
        if el.get("type") == "error":
            err = el.find("error")
            cond = next((etree.QName(c).localname for c in err if isinstance(c.tag, str)), "error") \
                if err is not None else "error"
            fut.set_result(cond)
        elif el.get("type") != "unavailable":
            fut.set_result("")

    def _on_jingle(self, iq: etree._Element, j: etree._Element) -> None:
        assert self.xmpp is not None
        frm = iq.get("from", "")
        if frm != f"{self.room_jid}/focus":
            self.xmpp.reply_error(iq, "not-acceptable")
            return
        action = j.get("action", "")
        if action == "session-initiate":
            try:
                offer = jingle.parse_jingle(j)
            except Exception as exc:
                log.warning("%s: bad offer: %s", self.nick, exc)
                self.xmpp.reply_error(iq, "bad-request", "modify")
                return
            self.xmpp.reply_result(iq)  # acknowledge first (XEP-0166): the focus waits for it
            self.timings.setdefault("offer", time.monotonic() - self._t0)
            self.sessions += 1
            self._sid = offer.sid  # source-adds for it may come before _accept() runs
            self._spawn(self._accept(offer))
            return
        sid = j.get("sid", "")
        if not self._sid or sid != self._sid:
            self.xmpp.reply_error(iq, "item-not-found")
            return
        self.xmpp.reply_result(iq)
        if action in ("source-add", "source-remove", "addsource", "removesource"):
            self.source_updates += 1  # the bridge's slots carry the media; nothing to renegotiate
        elif action == "session-terminate":
            self._sid = ""
            self._spawn(self._end_session(sid))

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- the media session ---------------------------------------------------------------------
    async def _accept(self, offer: JingleAction) -> None:
        """Answer an offer: announce our sources and transport, then connect ICE + DTLS."""
        assert self.xmpp is not None
        try:
            old = self.session
            if old is not None:  # re-invited (bridge moved, ICE failed): start over
                _Pacer.remove(self)
                self.session = None
                await old.transport.stop()
            transport = self._transport
            if transport is None or transport.state != "new":  # one transport per session
                transport = self._transport = ClientTransport(self.media_address, on_rtp=self._early_rtp,
                                                              on_rtcp=self._early_rtcp)
            if not transport._candidates:
                await transport.gather()
            remote = next((c.transport for c in offer.contents if c.transport is not None), None)
            if remote is None:
                raise SyntheticError("the offer has no transport")
            sess = _Session(offer.sid, offer, transport)
            for c in offer.contents:
                for s in c.sources:
                    if s.owner == "jvb":
                        sess.slot_kind[s.ssrc] = c.kind
                if c.kind == "audio" and c.media is not None:
                    for ext in c.media.header_extensions:
                        if ext.uri == ns.RTP_AUDIO_LEVEL:
                            sess.audio_level_ext = ext.id
            self.session = sess
            accept = self._session_accept(offer, transport.local_description())
            iq = etree.Element("iq", type="set", to=f"{self.room_jid}/focus")
            iq.append(jingle.jingle_element(accept))
            # ICE starts while the focus passes our transport to the bridge: the bridge's
            # checks reach us as soon as it has our candidates
            # ICE/DTLS may take as long as join() allows: under load the focus passes our
            # transport to the bridge late (it handles one participant at a time)
            transport.start_timeout = max(EndpointTransport.start_timeout, self._deadline - time.monotonic())
            start = asyncio.ensure_future(transport.start(remote))
            try:
                await self.xmpp.iq(iq, timeout=30)
            except BaseException:
                start.cancel()
                raise
            self.timings.setdefault("accepted", time.monotonic() - self._t0)
            await start
            if self.session is not sess:
                return
            self._fast_path(sess)
            self._build_packets(sess)
            self._media_t0 = asyncio.get_running_loop().time()
            self._audio_due = self._video_due = 0
            _Pacer.add(self)
            if not self._connected.done():
                self._connected.set_result(None)
        except Exception as exc:
            log.warning("%s: media session failed: %s", self.nick, exc)
            if not self._connected.done():
                self._connected.set_exception(exc if isinstance(exc, SyntheticError)
                                              else SyntheticError(f"{type(exc).__name__}: {exc}"))

    def _session_accept(self, offer: JingleAction, transport: IceTransport) -> JingleAction:
        contents = []
        for c in offer.contents:
            if c.kind not in ("audio", "video"):
                continue
            mine: list[Source] = []
            if (c.kind == "audio" and self.send_audio) or (c.kind == "video" and self.send_video):
                ssrc = self.audio_ssrc if c.kind == "audio" else self.video_ssrc
                mine.append(Source(ssrc, c.kind, owner=self.occupant_jid, name=f"{self.nick}-{c.kind[0]}0",
                                   msid=f"{self.nick}-stream {self.nick}-{c.kind}", cname=self.nick))
            media = Media(c.kind, list(c.media.payload_types) if c.media else [],
                          list(c.media.header_extensions) if c.media else [])
            contents.append(Content(c.name, c.kind, media, mine, [], "both", transport))
        return JingleAction("session-accept", offer.sid, initiator=offer.initiator, responder=self.occupant_jid,
                            contents=contents, bundle=[c.name for c in contents],
                            bridge_session=offer.bridge_session)

    async def _end_session(self, sid: str) -> None:
        sess = self.session
        if sess is None or sess.sid != sid:
            return
        _Pacer.remove(self)
        self.session = None
        await sess.transport.stop()

    # ---- receiving -------------------------------------------------------------------------------
    def _early_rtp(self, data: bytes) -> None:
        """Media that came through aiortc's receive loop before the fast path was installed."""
        self.rx_packets += 1

    def _early_rtcp(self, data: bytes) -> None:
        self.rx_rtcp += 1

    def _fast_path(self, sess: _Session) -> None:
        """Count SRTP datagrams on the selected socket ourselves; STUN and DTLS still go to
        aioice/aiortc. The RTP header is not encrypted, so the slot SSRC is readable; only
        sampled packets are decrypted."""
        t = sess.transport
        pair = t._connection._nominated[1]
        proto = pair.protocol
        sock = proto.transport.get_extra_info("socket")
        if sock is not None and self.rcvbuf:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            except OSError:
                pass
        previous = proto.datagram_received
        unprotect = t._dtls._rx_srtp.unprotect
        slot_kind = sess.slot_kind
        by_slot = self.rx_by_slot
        senders = self.senders
        a_every, v_every = self.audio_sample, self.video_sample
        counts = {"audio": 1, "video": 1}  # packets until the next decrypted sample
        randint = random.randint
        trailer = TRAILER.unpack_from
        now_ns = time.monotonic_ns

        def datagram_received(data: bytes, addr: Any) -> None:
            b0 = data[0] if data else 0
            if 127 < b0 < 192:
                if 191 < data[1] < 224:
                    self.rx_rtcp += 1
                    return
                arrived = now_ns()
                self.rx_packets += 1
                ssrc = int.from_bytes(data[8:12], "big")
                by_slot[ssrc] = by_slot.get(ssrc, 0) + 1
                kind = slot_kind.get(ssrc)
                if kind is None:
                    return
                n = counts[kind] = counts[kind] - 1
                if n > 0:
                    return
                # next sample after a random stride (mean: the sample rate), so a fixed
                # arrival pattern across slots cannot alias with the sampling
                every = a_every if kind == "audio" else v_every
                counts[kind] = 1 if every == 1 else randint(1, 2 * every - 1)
                try:
                    plain = unprotect(data)
                except pylibsrtp.Error:
                    self.decrypt_errors += 1
                    return
                if len(plain) < 32:
                    return
                magic, sender, counter, sent = trailer(plain, len(plain) - 20)
                if magic != MAGIC:
                    return
                st = senders.get(sender)
                if st is None:
                    st = senders[sender] = SenderStats(kind)
                st.add(counter, arrived - sent)
                return
            previous(data, addr)

        proto.datagram_received = datagram_received

    def reset_stats(self) -> None:
        """Start a new measurement window: what we received and sent (per-sender loss and
        latency included)."""
        self.sent_audio = self.sent_video = 0
        self.rx_packets = 0
        self.rx_rtcp = 0
        self.rx_by_slot.clear()
        self.senders.clear()
        self.decrypt_errors = 0

    def heard(self, ssrc: int) -> bool:
        """Whether a packet from this sender SSRC was decrypted in the current window."""
        st = self.senders.get(ssrc)
        return st is not None and st.decrypted > 0

    def senders_of(self, kind: str) -> set[int]:
        return {ssrc for ssrc, st in self.senders.items() if st.kind == kind}

    # ---- sending -------------------------------------------------------------------------------
    def _build_packets(self, sess: _Session) -> None:
        # audio: RTP header with X=1, one-byte extension (0xBEDE, one word: id/len, level, pad)
        ext_id = sess.audio_level_ext if 0 < sess.audio_level_ext < 15 else 1
        level = (0x80 | LOUD) if self.speaking else SILENT
        hdr = struct.pack("!BBHII", 0x90, AUDIO_PT, 0, 0, self.audio_ssrc)
        ext = struct.pack("!HH", 0xBEDE, 1) + bytes([ext_id << 4, level, 0, 0])
        body = os.urandom(AUDIO_PAYLOAD - TRAILER.size)
        self._audio_pkt = bytearray(hdr + ext + body + bytes(TRAILER.size))
        # video: VP8 payload descriptor (X, S, I with a 15-bit picture id), noise, trailer
        hdr = struct.pack("!BBHII", 0x80, 0x80 | VIDEO_PT, 0, 0, self.video_ssrc)
        desc = bytes([0x90, 0x80, 0x80, 0x01])
        body = os.urandom(VIDEO_PAYLOAD - len(desc) - TRAILER.size)
        self._video_pkt = bytearray(hdr + desc + body + bytes(TRAILER.size))

    def _send_due(self, now: float) -> None:
        """Called by the pacer: send every packet our clocks owe (at most a few at once)."""
        t = self._transport
        if t is None or t._tx_srtp is None or t._udp is None:
            return
        elapsed = now - self._media_t0
        protect, sendto, peer = t._tx_srtp.protect, t._udp.sendto, t._peer
        if self.send_audio:
            owed = int(elapsed / AUDIO_INTERVAL) + 1 - self._audio_due
            if owed > 0:
                self._audio_due += owed
                pkt = self._audio_pkt
                tail = len(pkt) - TRAILER.size
                for _ in range(min(owed, 3)):
                    self._audio_seq = (self._audio_seq + 1) & 0xFFFF
                    self._audio_ts = (self._audio_ts + AUDIO_TS_STEP) & 0xFFFFFFFF
                    RTP_HEADER.pack_into(pkt, 2, self._audio_seq, self._audio_ts)
                    TRAILER.pack_into(pkt, tail, MAGIC, self.audio_ssrc, self._audio_counter, time.monotonic_ns())
                    sendto(protect(bytes(pkt)), peer)
                    self._audio_counter += 1
                    self.sent_audio += 1
        if self.send_video and self.video_rate > 0:
            owed = int(elapsed * self.video_rate) + 1 - self._video_due
            if owed > 0:
                self._video_due += owed
                pkt = self._video_pkt
                tail = len(pkt) - TRAILER.size
                for _ in range(min(owed, 3)):
                    self._video_seq = (self._video_seq + 1) & 0xFFFF
                    self._video_ts = (self._video_ts + VIDEO_TS_STEP) & 0xFFFFFFFF
                    RTP_HEADER.pack_into(pkt, 2, self._video_seq, self._video_ts)
                    TRAILER.pack_into(pkt, tail, MAGIC, self.video_ssrc, self._video_counter, time.monotonic_ns())
                    sendto(protect(bytes(pkt)), peer)
                    self._video_counter += 1
                    self.sent_video += 1

    # ---- leaving -------------------------------------------------------------------------------
    async def leave(self) -> None:
        """Stop sending, leave the room, close the stream and the media transport. Idempotent."""
        if self.left:
            return
        self.left = True
        _Pacer.remove(self)
        for task in list(self._tasks):
            task.cancel()
        x = self.xmpp
        if x is not None:
            if self.in_room:
                x.send(b"<presence type='unavailable' to=%s/>" % quoteattr(self.occupant_jid).encode())
            await x.close()
        t = self._transport
        self.session = None
        if t is not None:
            try:
                await asyncio.wait_for(t.stop(), 5)
            except Exception:
                pass
        if not self._connected.done():
            self._connected.set_exception(SyntheticError("left"))
            self._connected.exception()  # retrieved: nobody else may be waiting
