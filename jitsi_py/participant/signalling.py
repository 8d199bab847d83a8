"""The participant's XMPP connection: sign-in (guest, user or token), the conference IQ, and reconnecting.

Its own part because it is the only one that outlives a connection: when the stream drops after
join() (the server restarted, the network went away), media goes down and this part signs in,
asks the focus and rejoins the room again with backoff until `reconnect_timeout`; the focus then
offers a new session as to any newcomer. The stanzas a connection receives are handed to the
room (presence, messages) and the focus part (Jingle IQs).
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from typing import Any
from xml.etree import ElementTree

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath

from jitsi_base import ns
from jitsi_protocols import focus_iq
from jitsi_protocols.slix import to_et

from .core import Event, ParticipantCore, ParticipantError, Refused
from .ice import ice_servers

log = logging.getLogger(__name__)

HOST_POLL = 1.0  # s between a waiting guest's conference requests
RECONNECT_ATTEMPT_TIMEOUT = 30.0  # s for one sign-in + conference IQ + room join after a lost connection


class Signalling(ParticipantCore):
    """Sign-in, conference IQ, reconnect. Owns `client`, `focus_jid`, `reconnects`, `reconnecting`;
    reconnecting resets what the room, focus and channel parts learnt from the lost session."""

    host: str
    port: int
    domain: str
    room_jid: str
    cafile: str | None
    verify: bool
    focus_service: str
    reconnect_timeout: float
    user: str | None
    password: str
    token: str | None
    guest_domains: list[str]
    ice_servers: list
    ask_ice_servers: bool
    turn_transport: str

    def _init_signalling(self) -> None:
        self.client: slixmpp.ClientXMPP | None = None
        self.focus_jid = ""  # from the conference IQ answer
        self.reconnects = 0  # times we got back into the room after a lost connection
        self.reconnecting = False
        self._lost: asyncio.Future | None = None  # the current client's connection ended
        self.machine_uid = uuid.uuid4().hex  # one per Participant, kept across reconnects
        self.waiting_for_host = False  # a guest whose meeting has no host yet

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
            "jingle", MatchXPath("{%s}iq/{%s}jingle" % (ns.CLIENT, ns.JINGLE)), self._on_jingle_iq))
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

    async def _reconnect(self, reason: str) -> None:
        """The connection dropped while we were in the conference (the server restarted, the
        network went away): media down, then sign in, ask the focus and rejoin the room again,
        with backoff (0.5 s doubling to 5 s) until `reconnect_timeout`; the focus then sends a
        new session-initiate as to any newcomer."""
        log.info("%s: the XMPP connection was lost (%s); reconnecting", self.nick, reason)
        self.reconnecting = True
        self.focus_jid = ""
        self._room_lost()
        self._session_lost()
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
                    await self._while_connected(self._discover_ice_servers())
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

    async def _discover_ice_servers(self) -> None:
        """Ask our server for STUN/TURN (XEP-0215), again on every sign-in since the credentials
        expire; a server without the service (or one that fails to answer) means none."""
        if not self.ask_ice_servers or self.client is None:
            return
        iq = self.client.make_iq_get(ito=self.domain)
        iq.xml.append(ElementTree.Element(ns.q(ns.EXTDISCO, "services")))
        try:
            res = await iq.send(timeout=5)
        except (IqError, IqTimeout) as exc:
            log.debug("%s: no external services from %s: %s", self.nick, self.domain, exc)
            self.ice_servers = []
            return
        self.ice_servers = ice_servers(res.xml, self.turn_transport)
        log.info("%s: ICE servers from %s: %s", self.nick, self.domain,
                 ", ".join(str(s.urls) for s in self.ice_servers) or "none")

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
                if cond not in focus_iq.RETRY_CONDITIONS:
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

    async def _disconnect(self) -> None:
        """Close the current connection for good (leaving)."""
        c = self.client
        if c is not None:
            c.cancel_connection_attempt()
            if c.transport is not None:
                try:
                    await asyncio.wait_for(c.disconnect(wait=1), 3)
                except Exception:
                    c.abort()
