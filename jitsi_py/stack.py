"""The all-in-one stack: every component in one process on the embedded defaults.

`jitsi-py run` builds a Stack from the config and starts, in order: the XMPP server (c2s,
components, plugins), then the public HTTP port carrying BOSH, WebSocket, the web client and
the bridge channel, and the admin HTTP port (stats, metrics; loopback by default) that guests
must never reach. Later components (MUC, focus, bridge) join here. Each part still talks to
the others only through XMPP, exactly as when they run as separate processes.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
from typing import Callable

from aiohttp import web

from .config import Config, data_dir, focus_auth, guest_domain
from jitsi_base.process import start_site, warn_if_exposed

log = logging.getLogger(__name__)


class Stack:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.data_dir = data_dir(cfg)
        self.server = None  # type: ignore[assignment]
        self.bridge = None  # type: ignore[assignment]
        self.bridge_agent = None  # type: ignore[assignment]
        self.focus = None  # type: ignore[assignment]
        self.internal_passwords: dict[str, str] = {}
        self.users = None
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self.http_address: tuple[str, int] | None = None
        self.admin_app: web.Application | None = None
        self._admin_runner: web.AppRunner | None = None
        self.admin_address: tuple[str, int] | None = None
        self._stop = asyncio.Event()
        self._on_stop: list[Callable[[], object]] = []

    async def start(self) -> None:
        from xmpp_plugins.http import setup_http
        from xmpp_plugins.server import Server
        from xmpp_plugins.tls import ensure_certificate, server_ssl_context
        from xmpp_plugins.users import UserStore

        from .internal_accounts import ensure_internal_accounts

        cfg = self.cfg
        cert, key = ensure_certificate(cfg, self.data_dir)
        self.cert_path = cert
        ssl_context = server_ssl_context(cert, key)
        self.users = UserStore(self.data_dir / "users.sqlite3", cfg.auth.scram_iterations)
        self.internal_passwords = ensure_internal_accounts(self.users, self.data_dir, cfg.server.domain.lower())
        domain = cfg.server.domain.lower()
        self.focus_secret = ""
        if cfg.focus.enabled:
            # the focus serves focus.<domain> as a component of this server; its secret lives
            # only in memory: nobody else needs it
            import secrets as _secrets
            from .config import ComponentSecret
            self.focus_secret = _secrets.token_urlsafe(24)
            cfg.component = [c for c in cfg.component if c.domain.lower() != f"focus.{domain}"]
            cfg.component.append(ComponentSecret(f"focus.{domain}", self.focus_secret))
        self.server = Server(cfg, self.users, ssl_context)
        await self.server.start()
        if cfg.bridge.enabled:
            from bridge.bridge import Bridge
            stun = f"{cfg.turn.host}:{cfg.turn.port}" if cfg.turn.host else ""
            if ":" in cfg.turn.host:
                stun = f"[{cfg.turn.host}]:{cfg.turn.port}"
            self.bridge = Bridge(cfg.bridge, cfg.bridge.websocket_base, stun=stun)
            await self.bridge.start()
        if cfg.http.enabled:
            self.app = web.Application(client_max_size=cfg.limits.stanza_size + 1024)
            setup_http(self.app, self.server)
            if self.bridge is not None:
                from bridge.http_api import setup_public
                setup_public(self.app, self.bridge)
            from webclient import setup_web
            setup_web(self.app, cfg.server.domain, cfg.muc.domain, auth_mode=cfg.auth.mode,
                      guest_domain=guest_domain(cfg))
            self._runner, self.http_address = await start_site(
                self.app, cfg.http.listen, cfg.http.port, ssl_context if cfg.http.tls else None)
        if cfg.admin.enabled:
            await self._start_admin()
        if self.bridge is not None:
            await self._start_bridge_agent()
        if cfg.focus.enabled:
            await self._start_focus()
        # Everything made at start-up lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise stop media forwarding for 100+ ms
        # (bench/large_conference.py measured them as the p99 latency tail at 200 participants).
        gc.collect()
        gc.freeze()

    async def _start_admin(self) -> None:
        from xmpp_plugins.http import BOSH_MANAGER, setup_admin_http

        cfg = self.cfg
        assert self.server is not None
        self.admin_app = web.Application()
        setup_admin_http(self.admin_app, self.server, self.app.get(BOSH_MANAGER) if self.app is not None else None)
        if self.bridge is not None:
            from bridge.http_api import setup_admin
            setup_admin(self.admin_app, self.bridge)
        self._admin_runner, self.admin_address = await start_site(self.admin_app, cfg.admin.listen, cfg.admin.port)
        warn_if_exposed("The admin HTTP port ([admin] listen)", cfg.admin.listen)

    async def _start_focus(self) -> None:
        from jicofo_py.focus import Focus

        cfg, srv = self.cfg, self.server
        assert srv is not None and srv.c2s_address is not None and srv.component_address is not None
        muc = next((p for p in srv.plugins if p.name == "muc"), None)
        self.focus = Focus(cfg.server.domain.lower(), self.internal_passwords["focus"], tuple(srv.c2s_address),
                           tuple(srv.component_address), self.focus_secret,
                           cafile=None if cfg.tls.cert else str(self.cert_path),
                           muc_domain=muc.service.domain if muc is not None else None,
                           min_participants=cfg.focus.min_participants,
                           start_muted=(cfg.focus.start_audio_muted, cfg.focus.start_video_muted),
                           max_bridge_participants=cfg.focus.max_bridge_participants,
                           max_bridge_stress=cfg.focus.max_bridge_stress,
                           colibri_timeout=cfg.focus.colibri_timeout,
                           conference_requests_per_minute=cfg.focus.conference_requests_per_minute,
                           empty_room_timeout=cfg.focus.empty_room_timeout, max_waiting_rooms=cfg.focus.max_waiting_rooms,
                           **focus_auth(cfg))
        await self.focus.start()

    async def _start_bridge_agent(self) -> None:
        from bridge.xmpp_agent import BridgeAgent

        cfg, bridge = self.cfg, self.bridge
        assert bridge is not None and self.server is not None and self.server.c2s_address is not None
        if not bridge.websocket_base and self.http_address is not None:
            scheme = "wss" if cfg.http.tls else "ws"
            bridge.websocket_base = f"{scheme}://%s:%d" % tuple(self.http_address)
        domain = cfg.server.domain.lower()
        self.bridge_agent = BridgeAgent(
            bridge, f"jvb@auth.{domain}/{bridge.id}", self.internal_passwords["jvb"],
            f"jvbbrewery@internal.auth.{domain}", self.server.c2s_address[0], self.server.c2s_address[1],
            cafile=None if cfg.tls.cert else str(self.cert_path))
        await self.bridge_agent.start()

    def listening(self) -> list[str]:
        lines = [f"XMPP domain: {self.cfg.server.domain} (data in {self.data_dir})"]
        srv = self.server
        if srv is not None and srv.c2s_address:
            lines.append("XMPP client connections (c2s, STARTTLS): %s:%d" % tuple(srv.c2s_address))
        if srv is not None and srv.component_address:
            lines.append("XMPP components (XEP-0114): %s:%d" % tuple(srv.component_address))
        if self.bridge is not None:
            lines.append(f"Media bridge {self.bridge.id}: ICE on {self.cfg.bridge.media_address}"
                         f"{self._public_note()}, joined jvbbrewery@internal.auth.{self.cfg.server.domain}")
        if self.focus is not None:
            lines.append(f"Focus: {self.focus.jid}, conference requests to {self.focus.service}")
        muc = next((p for p in srv.plugins if p.name == "muc"), None) if srv is not None else None
        if muc is not None:
            lobby = f" (lobby: {muc.service.lobby.domain})" if muc.service.lobby is not None else ""
            lines.append(f"Conference rooms (MUC): {muc.service.domain}{lobby}")
        if self.http_address:
            host, port = self.http_address
            scheme = "https" if self.cfg.http.tls else "http"
            base = f"{scheme}://{host}:{port}"
            lines.append(f"HTTP: {base}/ (BOSH {base}/http-bind, WebSocket {'wss' if self.cfg.http.tls else 'ws'}"
                         f"://{host}:{port}/xmpp-websocket)")
        if self.admin_address:
            host, port = self.admin_address
            what = "/colibri/stats, /metrics, " if self.bridge is not None else ""
            lines.append(f"Admin HTTP (keep private): http://{host}:{port}/ ({what}/xmpp/stats)")
        return lines

    def _public_note(self) -> str:
        b = self.bridge
        assert b is not None
        if self.cfg.bridge.public_address:
            return f" (public address {b.public_address}, configured)"
        if b.public_address:
            return f" (public address {b.public_address}, by STUN from {b.stun_server})"
        if b.stun_server:
            return f" (no public address by STUN from {b.stun_server})"
        return ""

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        await self._stop.wait()

    async def stop(self) -> None:
        if self.focus is not None:
            await self.focus.stop()
        if self.bridge_agent is not None:
            await self.bridge_agent.stop()
        if self.bridge is not None:
            await self.bridge.stop()
        if self.server is not None:
            await self.server.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
            self._admin_runner = None
        if self.users is not None:
            self.users.close()
            self.users = None

