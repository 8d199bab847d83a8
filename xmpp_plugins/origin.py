"""Which web pages may speak XMPP to us through a visitor's browser (WebSocket and BOSH).

A browser sends `Origin` on every WebSocket handshake and on every POST. Without this check a
page on any site could open an XMPP session from its visitors' browsers (from their network:
an intranet server, a loopback-only port) and read what comes back. Non-browser clients send
no Origin, and could forge any, so a request without one goes through: the check is against
foreign pages, not against clients.

Allowed are the origins in `[http] allowed_origins` ("*": all) and the server's own pages,
whose Origin's host[:port] is the host the request was sent to: `X-Forwarded-Host` if a proxy
set it (the web client's config.js builds its URLs from the same header), else `Host`. The
scheme is not compared, so a TLS-terminating proxy that sends no `X-Forwarded-Proto` keeps
working; a default port (80, 443) written out counts as no port.
"""
from __future__ import annotations

import logging
from typing import Iterable
from urllib.parse import urlsplit

from aiohttp import web

log = logging.getLogger(__name__)

REFUSED_TEXT = ("This web page's origin may not use XMPP on this server. Its operator can allow it "
                "with [http] allowed_origins.\n")


def _host_port(netloc: str) -> str:
    netloc = netloc.strip().lower()
    for default in (":80", ":443"):
        if netloc.endswith(default):
            return netloc[: -len(default)]
    return netloc


def normalize(origin: str) -> str | None:
    """`scheme://host[:port]` in lower case with a default port dropped; None if not an origin."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query \
            or parts.fragment or "@" in parts.netloc:
        return None
    return f"{parts.scheme}://{_host_port(parts.netloc)}"


class OriginPolicy:
    def __init__(self, allowed: Iterable[str]) -> None:
        allowed = list(allowed)
        self.any = "*" in allowed
        self.allowed = {n for n in (normalize(o) for o in allowed if o != "*") if n is not None}

    def permits(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser
        if self.any:
            return True
        norm = normalize(origin)
        if norm is None:  # "null" (sandboxed frames, file://) or garbage
            return False
        if norm in self.allowed:
            return True
        own = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip() or request.host
        return norm.partition("://")[2] == _host_port(own)

    def refuse(self, request: web.Request, what: str) -> web.Response:
        log.info("refused %s from %s: Origin %.100r is not allowed ([http] allowed_origins)",
                 what, request.remote, request.headers.get("Origin"))
        return web.Response(status=403, text=REFUSED_TEXT, headers={"Vary": "Origin"})


ORIGIN_POLICY: web.AppKey[OriginPolicy] = web.AppKey("origin_policy", OriginPolicy)
