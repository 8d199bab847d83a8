"""The browser client: a landing page, a room page per conference, and their static files.

Everything is plain HTML, CSS and JavaScript ES modules under `static/`, served as they are (no
build step). From the network up to the page:

- `js/xml.js`, `js/xmpp.js`  stanzas as DOM elements; XMPP over WebSocket, BOSH as the fallback
- `js/sdp.js`                Jingle <-> SDP for the one RTCPeerConnection with the bridge
- `js/conference.js`         one conference: login, focus handshake, MUC, Jingle, bridge channel
- `js/room.js`               the room page's front (`room.html`): makes the state (`store.js`)
                             and wires the Conference's events to the UI's parts: `media.js`,
                             `prejoin.js`, `tiles.js`, `people.js`, `chat.js`, `toolbar.js`,
                             `security.js`, `notices.js` (helpers in `dom.js`)
- `js/landing.js`, `js/names.js`, `js/icons.js`  the landing page (`index.html`), room names, icons

`setup_web(app, domain, muc_domain)` adds the routes to the stack's aiohttp app:

- `GET /`                 the landing page (type or generate a room name)
- `GET /config.js`        an ES module with this deployment's addresses (from the request's Host)
- `GET /config.json`      the same as JSON
- `GET /static/...`       the static files
- `GET /<room>`           the conference page, for room names `[A-Za-z0-9_-]{1,64}`
- anything else a browser asks for: `notfound.html` (404) with a way back to `/`

Names that other parts of the stack serve at the top level (`http-bind`, `xmpp-websocket`,
`metrics`, `about`, `colibri`, `colibri-ws`) are never taken as room names, whatever order the
routes were added in.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aiohttp import web

STATIC = Path(__file__).parent / "static"
ROOM_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RESERVED = frozenset({"http-bind", "xmpp-websocket", "metrics", "about", "colibri", "colibri-ws", "static",
                      "config.js", "config.json", "favicon.ico", "robots.txt"})
WEB_CONFIG: web.AppKey[dict[str, Any]] = web.AppKey("webclient_config", dict)

# Pages load only our own scripts and styles; media and bridge-channel connections may go elsewhere
# (a bridge on another host), so connect-src stays open to ws(s) and http(s).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob: mediastream:; connect-src 'self' ws: wss: http: https:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'self'; form-action 'self'")
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_PAGE_HEADERS = dict(_HEADERS, **{"Content-Security-Policy": CSP, "Permissions-Policy":
                                  "camera=(self), microphone=(self), display-capture=(self)"})


def is_room_name(name: str) -> bool:
    return bool(ROOM_RE.match(name)) and name.lower() not in RESERVED


def _scheme(request: web.Request) -> str:
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    if proto in ("http", "https"):
        return proto
    return request.scheme


def _host(request: web.Request) -> str:
    host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip() or request.host
    # a Host header is attacker-controlled text: keep only what a host[:port] can contain
    if not re.match(r"^[A-Za-z0-9.\-\[\]:]{1,255}$", host or ""):
        host = "localhost"
    return host


def client_config(request: web.Request) -> dict[str, Any]:
    base: dict[str, Any] = request.app[WEB_CONFIG]
    scheme = _scheme(request)
    host = _host(request)
    ws = "wss" if scheme == "https" else "ws"
    domain = base["domain"]
    return {
        "domain": domain,
        "mucDomain": base["mucDomain"],
        "lobbyDomain": base["lobbyDomain"],
        "focus": base["focus"],
        "authMode": base["authMode"],
        "guestDomain": base["guestDomain"],
        "websocketUrl": f"{ws}://{host}/xmpp-websocket",
        "boshUrl": f"{scheme}://{host}/http-bind",
        "roomPattern": ROOM_RE.pattern,
    }


async def config_js(request: web.Request) -> web.Response:
    body = "export default " + json.dumps(client_config(request), indent=2) + ";\n"
    return web.Response(text=body, content_type="text/javascript", headers=_HEADERS)


async def config_json(request: web.Request) -> web.Response:
    return web.json_response(client_config(request), headers=_HEADERS)


async def landing(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers=_PAGE_HEADERS)


async def room_page(request: web.Request) -> web.StreamResponse:
    name = request.match_info["room"]
    if not is_room_name(name):
        raise web.HTTPNotFound(text="Not found")
    return web.FileResponse(STATIC / "room.html", headers=_PAGE_HEADERS)


@web.middleware
async def _not_found_page(request: web.Request, handler: Any) -> web.StreamResponse:
    """A mistyped meeting address (`/bad%20room!`, 80 characters, `/Room/extra`) gets the app's
    own page with a way back, not aiohttp's bare "404: Not Found"; only for browsers asking for
    a page, never on the paths the rest of the stack serves."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        first = request.path.split("/", 2)[1] if request.path.count("/") else ""
        if request.method != "GET" or "text/html" not in request.headers.get("Accept", "") or first in RESERVED:
            raise
        return web.FileResponse(STATIC / "notfound.html", status=404, headers=_PAGE_HEADERS)


async def favicon(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "favicon.svg", headers={"Content-Type": "image/svg+xml",
                                                             "Cache-Control": "max-age=86400"})


async def _static_headers(request: web.Request, response: web.StreamResponse) -> None:
    # no build step means no versioned file names: make browsers revalidate (cheap, ETag/304)
    if request.path.startswith("/static/") and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"


def setup_web(app: web.Application, domain: str, muc_domain: str = "", auth_mode: str = "open",
              guest_domain: str = "") -> None:
    """Register the web client's routes on `app` (call before the app's runner is set up) for
    the XMPP `domain` and its rooms' domain (empty: conference.<domain>). `auth_mode` and
    `guest_domain` ([auth]) tell the page where guests sign in and whether they may have to
    wait for a host."""
    domain = domain.lower()
    muc_domain = (muc_domain or f"conference.{domain}").lower()
    app[WEB_CONFIG] = {"domain": domain, "mucDomain": muc_domain, "lobbyDomain": f"lobby.{domain}",
                       "focus": f"focus.{domain}", "authMode": auth_mode,
                       "guestDomain": (guest_domain or domain).lower()}
    app.router.add_get("/", landing)
    app.router.add_get("/config.js", config_js)
    app.router.add_get("/config.json", config_json)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_static("/static/", STATIC, append_version=False)
    app.router.add_get(r"/{room:[A-Za-z0-9_-]{1,64}}", room_page)
    app.on_response_prepare.append(_static_headers)
    app.middlewares.append(_not_found_page)


__all__ = ["setup_web", "is_room_name", "client_config", "STATIC"]
