"""The XMPP server's HTTP endpoints: BOSH and WebSocket on the public app, figures on the admin one."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from . import bosh
from .origin import ORIGIN_POLICY, OriginPolicy
from .websocket import websocket_handler

XMPP_SERVER: web.AppKey["Server"] = web.AppKey("xmpp_server")
BOSH_MANAGER: web.AppKey[bosh.BoshManager] = web.AppKey("bosh")

if TYPE_CHECKING:
    from .server import Server


def setup_http(app: web.Application, server: "Server") -> None:
    app[XMPP_SERVER] = server
    app[ORIGIN_POLICY] = OriginPolicy(server.cfg.http.allowed_origins)
    app[BOSH_MANAGER] = bosh.setup(app, server)
    app.router.add_get("/xmpp-websocket", websocket_handler)
    app.router.add_get("/xmpp-websocket/", websocket_handler)



async def xmpp_stats(request: web.Request) -> web.Response:
    server = request.app[XMPP_SERVER]
    bosh_manager = request.app.get(BOSH_MANAGER)
    rooms = {p.service.domain: len(p.service.rooms) for p in server.plugins
             if p.name == "muc" and getattr(p, "service", None) is not None}
    return web.json_response({
        "connections": server.connections.total,
        "sessions": sum(len(r) for r in server.router.sessions.values()),
        "bosh_sessions": len(bosh_manager.sessions) if bosh_manager is not None else 0,
        "rooms": rooms,
    })


def setup_admin_http(app: web.Application, server: "Server", bosh_manager: bosh.BoshManager | None = None) -> None:
    """The XMPP server's figures for the operator's admin port: counts only, no names."""
    app[XMPP_SERVER] = server
    if bosh_manager is not None:
        app[BOSH_MANAGER] = bosh_manager
    app.router.add_get("/xmpp/stats", xmpp_stats)
