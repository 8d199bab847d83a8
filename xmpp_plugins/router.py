"""Stanza routing (RFC 6120 section 10, RFC 6121 essentials), the server's hot path.

Who gets a stanza is decided from its parsed `to` alone (after one trust check: clients that
are not themselves internal accounts never reach `auth.<domain>`, where the focus and the
bridges sign in; see docs/security.md): a domain served by a plugin or a
component, one of our hosts (the host itself, an account's bare JID, or one resource), or
somewhere we cannot reach. Every undeliverable IQ or message is answered with an error, so a
client never waits on a stanza that went nowhere.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
from copy import deepcopy
from typing import TYPE_CHECKING, Awaitable, Callable, Union

from lxml import etree

from jitsi_base.errors import StanzaError
from xmpp_wire.stanza import JID, DomainHandler, Stanza, make_error, make_result

if TYPE_CHECKING:
    from .c2s_session import C2SSession
    from .server import Server

log = logging.getLogger(__name__)

IqResult = Union[etree._Element, None]
IqHandler = Callable[[Stanza], Union[IqResult, Awaitable[IqResult]]]


class Router:
    def __init__(self, server: "Server") -> None:
        self.server = server
        # bare JID string -> resource -> session
        self.sessions: dict[str, dict[str, "C2SSession"]] = {}
        self.domains: dict[str, DomainHandler] = {}
        # (scope, payload tag) -> handler; scope is 'host' (to the server) or 'account' (to a bare JID)
        self.iq_handlers: dict[tuple[str, str], IqHandler] = {}

    # ---- registration --------------------------------------------------------------------
    def register_domain(self, domain: str, handler: DomainHandler) -> None:
        self.domains[domain.lower()] = handler

    def unregister_domain(self, domain: str, handler: DomainHandler | None = None) -> None:
        domain = domain.lower()
        if handler is None or self.domains.get(domain) is handler:
            self.domains.pop(domain, None)

    def register_iq(self, tag: str, handler: IqHandler, scopes: tuple[str, ...] = ("host",)) -> None:
        for scope in scopes:
            self.iq_handlers[(scope, tag)] = handler

    # ---- sessions ------------------------------------------------------------------------
    def bind(self, session: "C2SSession", username: str, host: str, wanted: str) -> JID:
        bare = f"{username}@{host}"
        resources = self.sessions.setdefault(bare, {})
        resource = wanted or secrets.token_hex(6)
        if len(resource.encode()) > 1023:
            raise StanzaError("bad-request", "Resource too long")
        if resource in resources:
            resource = f"{resource}-{secrets.token_hex(3)}"  # RFC 6120 7.7.2.2: override it
        try:
            jid = JID(f"{bare}/{resource}")
        except Exception:
            raise StanzaError("bad-request", "Invalid resource") from None
        resources[jid.resource] = session
        return jid

    def session_ended(self, session: "C2SSession") -> None:
        jid = session.jid
        if jid is None:
            return
        resources = self.sessions.get(jid.bare)
        if resources is not None and resources.get(jid.resource) is session:
            del resources[jid.resource]
            if not resources:
                del self.sessions[jid.bare]
        if session.available or session.directed:
            unavailable = etree.Element("presence", type="unavailable")
            unavailable.set("from", jid.full)
            targets = set(session.directed)
            session.directed.clear()
            if session.available:
                session.available = False
                for other in self.resources(jid.bare):
                    targets.add(other.jid.full)  # type: ignore[union-attr]
            for target in targets:
                el = deepcopy(unavailable)
                el.set("to", target)
                self.route(Stanza(el, jid, JID(target)), None)

    def resources(self, bare: str) -> list["C2SSession"]:
        return list(self.sessions.get(bare, {}).values())

    def session(self, jid: JID) -> "C2SSession | None":
        return self.sessions.get(jid.bare, {}).get(jid.resource)

    # ---- routing -------------------------------------------------------------------------
    def send(self, el: etree._Element) -> None:
        """Entry point for plugins: route an element they built (from/to set)."""
        try:
            stanza = Stanza.parse(el)
        except StanzaError:
            log.warning("plugin produced a stanza with a bad JID: %s", etree.tostring(el)[:200])
            return
        self.route(stanza, None)

    def route(self, stanza: Stanza, origin: "C2SSession | None") -> None:
        if origin is not None and stanza.name == "presence" and stanza.to is None:
            self._own_presence(stanza, origin)
            return
        to = stanza.to
        if to is None:
            if origin is None:
                return
            to = JID(origin.jid.bare)  # type: ignore[union-attr]
            stanza.to = to
        if origin is not None and to.domain in self.server.internal_hosts \
                and origin.jid.domain not in self.server.internal_hosts:  # type: ignore[union-attr]
            # the focus and the bridges take orders only from each other: a client reaches them
            # only through the services that check who it is (focus.<domain>, the rooms)
            self.bounce(stanza, StanzaError("service-unavailable", "Internal accounts take no stanzas from clients"))
            return
        if origin is not None and stanza.name == "presence":
            self._track_directed(stanza, origin)
        handler = self.domains.get(to.domain)
        if handler is not None:
            try:
                handler.receive(stanza)
            except StanzaError as exc:
                self.bounce(stanza, exc)
            except Exception:
                log.exception("handler for %s failed on %r", to.domain, stanza)
                self.bounce(stanza, StanzaError("internal-server-error"))
            return
        if to.domain in self.server.hosts:
            self._local(stanza, origin)
            return
        self.bounce(stanza, StanzaError("remote-server-not-found", f"This server does not federate; {to.domain} is unknown"))

    def bounce(self, stanza: Stanza, error: StanzaError) -> None:
        if stanza.name == "presence" and stanza.type not in (None, "unavailable", "probe", "subscribe"):
            return
        if stanza.name == "iq" and stanza.type in ("result", "error"):
            return
        reply = make_error(stanza, error)
        if reply is None or stanza.from_ is None:
            return
        try:
            self.route(Stanza(reply, stanza.to, stanza.from_), None)
        except Exception:
            log.exception("could not bounce %r", stanza)

    def _deliver(self, session: "C2SSession", el: etree._Element) -> None:
        session.deliver(el)

    def _local(self, stanza: Stanza, origin: "C2SSession | None") -> None:
        to = stanza.to
        assert to is not None
        name = stanza.name
        if not to.user:
            if name == "iq":
                self._iq_to_server("host", stanza)
            return  # messages and presence to the server itself: nothing to do
        if to.resource:
            target = self.session(to)
            if target is not None:
                self._deliver(target, stanza.el)
                return
            if name == "message" and stanza.type in (None, "normal", "chat", "headline"):
                pass  # fall through to bare-JID delivery (RFC 6121 8.5.3.2.1)
            elif name == "iq":
                self.bounce(stanza, StanzaError("service-unavailable"))
                return
            else:
                return
        bare = to.bare
        if name == "iq":
            self._iq_to_server("account", stanza)
            return
        targets = [s for s in self.sessions.get(bare, {}).values() if s.available or name == "presence"]
        if name == "message":
            if stanza.type == "groupchat":
                self.bounce(stanza, StanzaError("service-unavailable"))
                return
            targets = [s for s in targets if s.priority >= 0]
            if targets:
                top = max(s.priority for s in targets)
                targets = [s for s in targets if s.priority == top]
            if not targets:
                if stanza.type not in ("headline", "error"):
                    self.bounce(stanza, StanzaError("service-unavailable"))
                return
        for i, target in enumerate(targets):
            self._deliver(target, stanza.el if i == len(targets) - 1 else deepcopy(stanza.el))

    def _iq_to_server(self, scope: str, stanza: Stanza) -> None:
        if stanza.type not in ("get", "set"):
            return  # results/errors for the server: none pending today
        payload = stanza.payload()
        handler = self.iq_handlers.get((scope, payload.tag)) if payload is not None else None
        if handler is None:
            self.bounce(stanza, StanzaError("service-unavailable"))
            return
        try:
            result = handler(stanza)
        except StanzaError as exc:
            self.bounce(stanza, exc)
            return
        except Exception:
            log.exception("IQ handler failed on %r", stanza)
            self.bounce(stanza, StanzaError("internal-server-error"))
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(self._finish_iq(stanza, result))
            self.server.track_task(task)
        else:
            self.route(Stanza(make_result(stanza, result), stanza.to, stanza.from_), None)

    async def _finish_iq(self, stanza: Stanza, pending: Awaitable[IqResult]) -> None:
        try:
            result = await pending
        except StanzaError as exc:
            self.bounce(stanza, exc)
            return
        except Exception:
            log.exception("IQ handler failed on %r", stanza)
            self.bounce(stanza, StanzaError("internal-server-error"))
            return
        self.route(Stanza(make_result(stanza, result), stanza.to, stanza.from_), None)

    # ---- presence owned by a session -------------------------------------------------------
    def _own_presence(self, stanza: Stanza, session: "C2SSession") -> None:
        ptype = stanza.type
        if ptype not in (None, "unavailable"):
            return  # subscription management without a roster: nothing to do
        jid = session.jid
        assert jid is not None
        prio = stanza.el.findtext("priority")
        try:
            session.priority = max(-128, min(127, int(prio))) if prio else 0
        except ValueError:
            session.priority = 0
        session.available = ptype is None
        session.presence = stanza.el if ptype is None else None
        for other in self.resources(jid.bare):
            el = deepcopy(stanza.el)
            el.set("to", other.jid.full)  # type: ignore[union-attr]
            self._deliver(other, el)
        if ptype == "unavailable" and session.directed:
            for target in list(session.directed):
                el = deepcopy(stanza.el)
                el.set("to", target)
                self.route(Stanza(el, jid, JID(target)), None)
            session.directed.clear()

    def _track_directed(self, stanza: Stanza, session: "C2SSession") -> None:
        assert stanza.to is not None
        if stanza.to.bare == session.jid.bare:  # type: ignore[union-attr]
            return
        if stanza.type is None:
            session.directed.add(stanza.to.full)
        elif stanza.type == "unavailable":
            session.directed.discard(stanza.to.full)
