"""One client's XMPP session, independent of how its bytes travel (TCP, WebSocket, BOSH).

The transport turns its framing into three calls (`on_open`, `on_element`, `on_close`) and
offers a handful of writes; everything RFC 6120 asks of stream negotiation (STARTTLS, SASL,
resource binding) and the session's share of RFC 6121 presence lives here once, so the three
transports cannot drift apart.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import secrets
from typing import TYPE_CHECKING

from lxml import etree

from jitsi_base import ns
from jitsi_base.errors import StanzaError, StreamError
from .limits import ConnectionSlot, TokenBucket, is_loopback
from .sasl import Mechanism, SaslFailure, make_mechanism, mechanism_names, token_mechanism
from .tokens import KeyNeeded, TokenClaims
from xmpp_wire.stanza import JID, STANZA_NAMES, Stanza, make_error, make_result

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)

MAX_SASL_ATTEMPTS = 5


class Transport:
    """What a session needs from the connection under it."""

    kind = "abstract"
    peer_ip = ""
    secure = False
    slot: ConnectionSlot | None = None  # its place in the per-address counts, once admitted
    url_token: str | None = None  # a JWT from the BOSH/WebSocket URL (`?token=`), for mode "token"

    def open_stream(self, stream_id: str, from_: str) -> None:
        raise NotImplementedError

    def write(self, el: etree._Element) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        """After SASL success the client opens a new stream (RFC 6120 6.4.6)."""

    def can_starttls(self) -> bool:
        return False

    def starttls(self) -> None:
        """Upgrade in place; reads must stop now, before the client's TLS hello arrives."""
        raise NotImplementedError

    def close(self, error: StreamError | None = None) -> None:
        raise NotImplementedError

    def queued_bytes(self) -> int:
        return 0

    def pause_reading(self, seconds: float) -> None:
        """Throttle: read nothing more from the client for `seconds` (rate limits).

        Reading can stop between reads only: what was already read is still processed, which
        is why the session closes a client whose stanza debt grows past the burst anyway.
        """


class C2SSession:
    """Also the routing target: the router calls `deliver` with stanzas for this resource."""

    kind = "c2s"

    def __init__(self, server: "Server", transport: Transport) -> None:
        self.server = server
        self.transport = transport
        self.stream_id = secrets.token_hex(8)
        self.host: str | None = None
        self.auth: tuple[str, str, bool] | None = None  # (username, host, anonymous)
        self.token: TokenClaims | None = None  # the verified JWT claims of a token sign-in
        self.jid: JID | None = None
        self.available = False
        self.priority = 0
        self.presence: etree._Element | None = None
        self.directed: set[str] = set()
        self.closed = False
        self._mech: Mechanism | None = None
        self._sasl_failures = 0
        limits = server.cfg.limits
        self._byte_rate = TokenBucket(limits.c2s_rate, limits.c2s_burst)
        self._stanza_rate = TokenBucket(limits.c2s_stanza_rate, limits.c2s_stanza_burst)
        self.throttled = 0  # times reading was paused for a rate limit (stats, tests)
        self._auth_timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            limits.auth_timeout, self._auth_timeout)

    # ---- events from the transport -------------------------------------------------------
    def on_open(self, attrs: dict[str, str]) -> None:
        to = (attrs.get("to") or "").lower()
        from_host = to if to in self.server.hosts else self.server.domain
        self.transport.open_stream(self.stream_id, from_host)
        if to not in self.server.hosts:
            raise StreamError("host-unknown", f"This server does not serve {to!r}")
        if attrs.get("version", "") != "1.0":
            raise StreamError("unsupported-version", "Only XMPP 1.0 streams are supported")
        if self.host is not None and self.host != to:
            raise StreamError("host-unknown", "Stream host changed after restart")
        self.host = to
        self.transport.write(self._features())

    def on_element(self, el: etree._Element) -> None:
        if self.closed:
            return
        if self.jid is not None:
            self._on_stanza(el)
            return
        tag = el.tag
        if tag == ns.q(ns.TLS, "starttls"):
            self._on_starttls()
        elif tag == ns.q(ns.SASL, "auth"):
            self._on_auth(el)
        elif tag == ns.q(ns.SASL, "response"):
            self._on_response(el)
        elif tag == ns.q(ns.SASL, "abort"):
            self._mech = None
            self._sasl_fail("aborted")
        elif self.auth is not None and tag == "iq":
            self._on_bind_iq(el)
        elif self.auth is None and tag in STANZA_NAMES:
            raise StreamError("not-authorized", "Authenticate first")
        elif tag in STANZA_NAMES:
            raise StreamError("not-authorized", "Bind a resource first")
        else:
            raise StreamError("unsupported-stanza-type", f"Unexpected element {etree.QName(tag).localname}")

    def on_close(self) -> None:
        self.transport.close(None)

    def on_connection_lost(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        if self.jid is not None:
            try:
                self.server.router.session_ended(self)
            except Exception:  # never let one session's teardown break the loop
                log.exception("error while ending session %s", self.jid)

    # ---- negotiation -----------------------------------------------------------------------
    def _must_tls(self) -> bool:
        return (self.server.cfg.auth.require_encryption and not self.transport.secure
                and self.transport.can_starttls())

    def _features(self) -> etree._Element:
        feats = etree.Element(ns.q(ns.STREAMS, "features"), nsmap={"stream": ns.STREAMS})
        if self.auth is None:
            if self.transport.can_starttls() and not self.transport.secure:
                st = etree.SubElement(feats, ns.q(ns.TLS, "starttls"), nsmap={None: ns.TLS})
                if self._must_tls():
                    etree.SubElement(st, ns.q(ns.TLS, "required"))
            if not self._must_tls():
                mechs = etree.SubElement(feats, ns.q(ns.SASL, "mechanisms"), nsmap={None: ns.SASL})
                for name in self._offered_mechanisms():
                    etree.SubElement(mechs, ns.q(ns.SASL, "mechanism")).text = name
        else:
            etree.SubElement(feats, ns.q(ns.BIND, "bind"), nsmap={None: ns.BIND})
            sess = etree.SubElement(feats, ns.q(ns.SESSION, "session"), nsmap={None: ns.SESSION})
            etree.SubElement(sess, ns.q(ns.SESSION, "optional"))
        return feats

    def _offered_mechanisms(self) -> list[str]:
        """Per host and `[auth] mode`: in "secure" and "token" modes a host offers only what
        signs in there (the guest domain ANONYMOUS only, the main domain passwords or tokens),
        so a client that picks the strongest mechanism offered is never stuck with one it
        has no credentials for."""
        srv = self.server
        mode = srv.cfg.auth.mode
        has_users = srv.users is not None and self.host in srv.account_hosts
        plain_ok = self.transport.secure or (srv.cfg.auth.allow_plain_on_loopback and is_loopback(self.transport.peer_ip))
        if mode == "open":
            anon = srv.cfg.auth.anonymous and self.host in (srv.domain, srv.guest_domain)
            return mechanism_names(scram=has_users, plain=has_users and plain_ok, anonymous=anon)
        guest = srv.cfg.auth.anonymous and bool(srv.guest_domain) and self.host == srv.guest_domain
        if mode == "token" and self.host == srv.domain:
            return ["OAUTHBEARER"] + (["ANONYMOUS"] if self.transport.url_token else [])
        return mechanism_names(scram=has_users, plain=has_users and plain_ok, anonymous=guest)

    def _on_starttls(self) -> None:
        if not self.transport.can_starttls() or self.transport.secure:
            self.transport.write(etree.Element(ns.q(ns.TLS, "failure"), nsmap={None: ns.TLS}))
            self.transport.close(None)
            return
        self.transport.write(etree.Element(ns.q(ns.TLS, "proceed"), nsmap={None: ns.TLS}))
        self.transport.starttls()

    def _sasl_reply(self, kind: str, data: bytes | None) -> None:
        el = etree.Element(ns.q(ns.SASL, kind), nsmap={None: ns.SASL})
        if data is not None:
            el.text = base64.b64encode(data).decode() if data else "="
        self.transport.write(el)

    def _sasl_fail(self, condition: str, text: str | None = None) -> None:
        el = etree.Element(ns.q(ns.SASL, "failure"), nsmap={None: ns.SASL})
        etree.SubElement(el, ns.q(ns.SASL, condition))
        if text:
            etree.SubElement(el, ns.q(ns.SASL, "text")).text = text
        self.transport.write(el)
        if condition in ("not-authorized",):
            self._sasl_failures += 1
            if self._sasl_failures >= MAX_SASL_ATTEMPTS:
                raise StreamError("policy-violation", "Too many failed authentication attempts")

    @staticmethod
    def _decode(text: str | None) -> bytes | None:
        if text is None or text.strip() == "":
            return None
        text = text.strip()
        if text == "=":
            return b""
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SaslFailure("incorrect-encoding") from None

    def _on_auth(self, el: etree._Element) -> None:
        if self.auth is not None:
            raise StreamError("policy-violation", "Already authenticated")
        if self._must_tls():
            raise StreamError("policy-violation", "Use STARTTLS first")
        srv = self.server
        name = el.get("mechanism", "")
        if name not in self._offered_mechanisms():
            self._sasl_fail("invalid-mechanism")
            return
        ip = self.transport.peer_ip
        if name != "ANONYMOUS" and srv.auth_failures.exceeded(ip):
            self._sasl_fail("temporary-auth-failure", "Too many failed authentication attempts; try again later")
            return
        if name == "ANONYMOUS":
            if srv.anonymous_signins.exceeded(ip):
                self._sasl_fail("temporary-auth-failure", "Too many guest sessions from your address; try again later")
                return
        assert self.host is not None
        if srv.tokens is not None and self.host == srv.domain:
            self._mech = token_mechanism(name, srv.tokens, self.host, self.transport.url_token)
        else:
            self._mech = make_mechanism(name, srv.users, self.host, srv.guest_domain)
        self._sasl_step(self._safe_decode(el.text))

    def _safe_decode(self, text: str | None) -> bytes | None | SaslFailure:
        try:
            return self._decode(text)
        except SaslFailure as exc:
            return exc

    def _await_key(self, need: KeyNeeded, data: "bytes | None") -> None:
        mech = self._mech

        async def run() -> None:
            await need.fetch()
            if self._mech is mech and not self.closed and self.auth is None:
                self._sasl_step(data)
        self.server.track_task(asyncio.ensure_future(run()))

    def _on_response(self, el: etree._Element) -> None:
        if self._mech is None:
            self._sasl_fail("malformed-request", "No authentication in progress")
            return
        data = self._safe_decode(el.text)
        self._sasl_step(b"" if data is None else data)

    def _sasl_step(self, data: "bytes | None | SaslFailure") -> None:
        mech = self._mech
        assert mech is not None
        try:
            if isinstance(data, SaslFailure):
                raise data
            kind, out = mech.step(data)
        except KeyNeeded as need:
            # the token's key is on the key server: fetch it (bounded, cached), then take the
            # same step again; the stream waits, as it would for a slow password hash
            self._await_key(need, data)
            return
        except SaslFailure as exc:
            self._mech = None
            if exc.condition == "not-authorized":
                self.server.auth_failures.hit(self.transport.peer_ip)
            self._sasl_fail(exc.condition, exc.text)
            return
        if kind == "challenge":
            self._sasl_reply("challenge", out or b"")
            return
        res = mech.result
        assert res is not None
        self._mech = None
        if res.anonymous:
            self.server.anonymous_signins.hit(self.transport.peer_ip)
        self.auth = (res.username, res.host, res.anonymous)
        self.token = res.token
        if self.transport.slot is not None:
            self.transport.slot.authenticate()  # no longer counts as a half-open connection
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        self._sasl_reply("success", out)
        self.transport.restart()
        log.info("authenticated %s@%s via %s from %s", res.username, res.host, mech.name, self.transport.peer_ip)

    def _on_bind_iq(self, el: etree._Element) -> None:
        bind = el.find(ns.q(ns.BIND, "bind"))
        sess = el.find(ns.q(ns.SESSION, "session"))
        if el.get("type") != "set" or bind is None:
            if sess is not None:
                # legacy session IQ before bind: nothing to do, but be polite
                self._reply_raw(el, None)
                return
            raise StreamError("not-authorized", "Bind a resource first")
        res_el = bind.find(ns.q(ns.BIND, "resource"))
        wanted = (res_el.text or "").strip() if res_el is not None else ""
        assert self.auth is not None
        username, host, _anon = self.auth
        try:
            jid = self.server.router.bind(self, username, host, wanted)
        except StanzaError as exc:
            err = etree.Element("iq", type="error")
            if el.get("id"):
                err.set("id", el.get("id"))
            err.append(exc.to_element())
            self.transport.write(err)
            return
        self.jid = jid
        payload = etree.Element(ns.q(ns.BIND, "bind"), nsmap={None: ns.BIND})
        etree.SubElement(payload, ns.q(ns.BIND, "jid")).text = jid.full
        self._reply_raw(el, payload)

    def _reply_raw(self, el: etree._Element, payload: etree._Element | None) -> None:
        reply = etree.Element("iq", type="result")
        if el.get("id") is not None:
            reply.set("id", el.get("id"))
        if payload is not None:
            reply.append(payload)
        self.transport.write(reply)

    def _auth_timeout(self) -> None:
        self._auth_timer = None
        if self.auth is None and not self.closed:
            self.transport.close(StreamError("connection-timeout", "Authentication took too long"))

    # ---- after binding ---------------------------------------------------------------------
    def _on_stanza(self, el: etree._Element) -> None:
        tag = el.tag
        if tag not in STANZA_NAMES:
            raise StreamError("unsupported-stanza-type", f"Unexpected element {etree.QName(tag).localname}")
        if not self._exempt() and not self._stanza_rate.take():
            if self._stanza_rate.tokens < -self._stanza_rate.burst:
                raise StreamError("policy-violation", "Too many stanzas, slow down")
            self._note_throttled("stanza")
            self.transport.pause_reading(self._stanza_rate.wait_time())
        assert self.jid is not None
        try:
            stanza = Stanza.parse(el)
        except StanzaError as exc:
            el.set("from", self.jid.full)
            el.attrib.pop("to", None)
            self.deliver_error(el, exc)
            return
        stanza.set_from(self.jid)
        if tag == "iq" and stanza.to is None:
            sess = el.find(ns.q(ns.SESSION, "session"))
            if sess is not None:  # RFC 3921 session establishment: a no-op today
                self.deliver(make_result(stanza))
                return
        self.server.router.route(stanza, self)

    def _exempt(self) -> bool:
        return self.auth is not None and self.auth[1] in self.server.unlimited_hosts

    def charge_bytes(self, n: int) -> float:
        """Count `n` bytes read from the client; the seconds its transport should stop reading."""
        if self._exempt() or self._byte_rate.take(n):
            return 0.0
        self._note_throttled("byte")
        return self._byte_rate.wait_time()

    def _note_throttled(self, which: str) -> None:
        if not self.throttled:  # once per session: a flood would otherwise flood the log
            log.info("throttling %s: over its %s rate", self.jid or self.transport.peer_ip, which)
        self.throttled += 1

    # ---- writes ----------------------------------------------------------------------------
    def deliver(self, el: etree._Element) -> None:
        if self.closed:
            return
        self.transport.write(el)
        if self.transport.queued_bytes() > self.server.cfg.limits.outgoing_queue:
            log.warning("closing %s: it stopped reading (%d bytes queued)", self.jid, self.transport.queued_bytes())
            self.transport.close(StreamError("policy-violation", "Too much data queued: you stopped reading"))

    def deliver_error(self, el: etree._Element, error: StanzaError) -> None:
        reply = make_error(el, error)
        if reply is not None:
            self.deliver(reply)

    def __repr__(self) -> str:
        return f"<C2SSession {self.jid or self.transport.peer_ip} via {self.transport.kind}>"
