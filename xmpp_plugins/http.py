"""The XMPP server's HTTP endpoints (BOSH and WebSocket) on the stack's one aiohttp app."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from . import bosh
from .websocket import websocket_handler

XMPP_SERVER: web.AppKey["Server"] = web.AppKey("xmpp_server")
BOSH_MANAGER: web.AppKey[bosh.BoshManager] = web.AppKey("bosh")

if TYPE_CHECKING:
    from .server import Server


def setup_http(app: web.Application, server: "Server") -> None:
    app[XMPP_SERVER] = server
    app[BOSH_MANAGER] = bosh.setup(app, server)
    app.router.add_get("/xmpp-websocket", websocket_handler)
    app.router.add_get("/xmpp-websocket/", websocket_handler)
