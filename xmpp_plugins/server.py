"""The embedded XMPP server: listeners, limits, router and plugins put together.

Hosts served (domain `localhost` by default): the domain itself (guests and users),
`auth.<domain>` (accounts of the focus and bridges, never rate limited) and the guest domain if
one is configured. Plugins add more domains (e.g. `conference.<domain>`); external components
add theirs when they connect.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, Iterable

from lxml import etree

from pathlib import Path

from .config import XmppConfig, guest_domain
from .tokens import TokenVerifier

from .limits import ConnectionLimiter, RateCounter
from .plugin import Plugin
from .router import DomainHandler, IqHandler, Router
from .tcp_stream import c2s_protocol_factory
from .component import component_protocol_factory

log = logging.getLogger(__name__)


def default_plugins(cfg: XmppConfig | None = None) -> list[type[Plugin]]:
    from .muc.plugin import MucPlugin
    from .plugins.disco import DiscoPlugin
    from .plugins.ping import PingPlugin
    from .plugins.roster import RosterPlugin
    from .plugins.version import VersionPlugin
    plugins: list[type[Plugin]] = [DiscoPlugin, PingPlugin, VersionPlugin, RosterPlugin]
    if cfg is None or cfg.muc.enabled:
        plugins.append(MucPlugin)
    if cfg is not None and cfg.turn.host:
        from .plugins.extdisco import ExtDiscoPlugin
        plugins.append(ExtDiscoPlugin)
    return plugins


class Server:
    def __init__(self, cfg: XmppConfig, users: Any = None, ssl_context: ssl.SSLContext | None = None,
                 plugins: Iterable[type[Plugin]] | None = None) -> None:
        self.cfg = cfg
        self.users = users
        self.ssl_context = ssl_context
        self.domain = cfg.server.domain.lower()
        self.auth_domain = f"auth.{self.domain}"
        # "" in mode "token" without guests: then nobody signs in anonymously
        self.guest_domain = guest_domain(cfg)
        self.hosts = {self.domain, self.auth_domain} | ({self.guest_domain} if self.guest_domain else set())
        self.tokens: TokenVerifier | None = None
        if cfg.auth.mode == "token":
            base = Path(cfg.path).resolve().parent if cfg.path else Path.cwd()
            self.tokens = TokenVerifier.from_config(cfg.auth, base)
        self.account_hosts = {self.domain, self.auth_domain}
        self.unlimited_hosts = {self.auth_domain}
        # internal accounts (focus, bridges): clients of other hosts cannot address them (router.py)
        self.internal_hosts = {self.auth_domain}
        self.router = Router(self)
        self.connections = ConnectionLimiter(cfg.limits.max_connections, cfg.limits.connections_per_ip,
                                             cfg.limits.unauthenticated_per_ip)
        self.auth_failures = RateCounter(cfg.limits.auth_failures_per_minute)
        self.anonymous_signins = RateCounter(cfg.limits.anonymous_sessions_per_minute)
        self.disco_features: set[str] = set()
        self.disco_identities: list[dict[str, str]] = []
        self.plugins: list[Plugin] = [cls(self) for cls in (default_plugins(cfg) if plugins is None else plugins)]
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Future] = set()
        self._streams: set[Any] = set()
        self.c2s_address: tuple[str, int] | None = None
        self.component_address: tuple[str, int] | None = None

    # ---- plugin API (see plugin.py) --------------------------------------------------------
    def register_iq(self, tag: str, handler: IqHandler, scopes: tuple[str, ...] = ("host",)) -> None:
        self.router.register_iq(tag, handler, scopes)

    def register_domain(self, domain: str, handler: DomainHandler) -> None:
        self.router.register_domain(domain, handler)

    def unregister_domain(self, domain: str, handler: DomainHandler | None = None) -> None:
        self.router.unregister_domain(domain, handler)

    def send(self, el: etree._Element) -> None:
        self.router.send(el)

    # ---- bookkeeping -----------------------------------------------------------------------
    def track_task(self, task: asyncio.Future) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def track_connection(self, stream: Any) -> None:
        self._streams.add(stream)

    def untrack_connection(self, stream: Any) -> None:
        self._streams.discard(stream)

    def component_secret(self, domain: str) -> str | None:
        for comp in self.cfg.component:
            if comp.domain.lower() == domain:
                return comp.secret
        return None

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for plugin in self.plugins:
            await plugin.start()
        if self.cfg.c2s.enabled:
            srv = await loop.create_server(c2s_protocol_factory(self, self.ssl_context),
                                           self.cfg.c2s.listen, self.cfg.c2s.port, backlog=128)
            self._servers.append(srv)
            self.c2s_address = srv.sockets[0].getsockname()[:2]
            log.info("c2s listening on %s:%d", *self.c2s_address)
        if self.cfg.components.enabled:
            srv = await loop.create_server(component_protocol_factory(self),
                                           self.cfg.components.listen, self.cfg.components.port, backlog=128)
            self._servers.append(srv)
            self.component_address = srv.sockets[0].getsockname()[:2]
            log.info("components listening on %s:%d", *self.component_address)

    async def stop(self) -> None:
        for srv in self._servers:
            srv.close()
        for stream in list(self._streams):
            try:
                stream.close(None)
            except Exception:
                log.exception("error closing a stream")
        for srv in self._servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), 2)
            except asyncio.TimeoutError:
                pass
        self._servers.clear()
        for plugin in reversed(self.plugins):
            try:
                await plugin.stop()
            except Exception:
                log.exception("plugin %s failed to stop", plugin.name)
        for task in list(self._tasks):
            task.cancel()
