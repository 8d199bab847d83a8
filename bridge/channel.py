"""The bridge channel: JSON messages between one participant and the bridge over a WebSocket.

URL: `/colibri-ws/<bridge>/<conference>/<endpoint>?pwd=<password>` as Jitsi's; the password is
per endpoint and was given to the focus in the COLIBRI2 answer. Messages follow Jitsi's
`colibriClass` vocabulary: we send ServerHello, DominantSpeakerEndpointChangeEvent and the
slot maps; we relay EndpointMessage between endpoints of one conference and honour LastN /
ReceiverVideoConstraints.
"""
from __future__ import annotations

import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .bridge import VERSION

if TYPE_CHECKING:
    from .bridge import Bridge
    from .endpoint import Endpoint

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024
BRIDGE = web.AppKey("bridge", object)


async def colibri_ws(request: web.Request) -> web.StreamResponse:
    bridge: "Bridge" = request.app[BRIDGE]
    if request.match_info["bridge"] != bridge.id:
        raise web.HTTPNotFound(text="No such bridge here")
    ep = bridge.endpoint(request.match_info["conference"], request.match_info["endpoint"])
    if ep is None:
        raise web.HTTPNotFound(text="No such conference or endpoint")
    if not secrets.compare_digest(request.query.get("pwd", ""), ep.ws_password):
        raise web.HTTPForbidden(text="Wrong password")
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, heartbeat=30)
    await ws.prepare(request)
    sender = _sender(ws)
    ep.channel_send = sender  # a reconnecting client replaces its old channel
    ep.send_channel({"colibriClass": "ServerHello", "version": VERSION})
    ep.sources_map()
    if ep.sent_ideal_height is not None:  # what was decided before the channel opened
        ep.send_channel({"colibriClass": "SenderVideoConstraints",
                         "videoConstraints": {"idealHeight": ep.sent_ideal_height}})
    if ep.conference.speaker.dominant is not None:
        ep.send_channel({"colibriClass": "DominantSpeakerEndpointChangeEvent",
                         "dominantSpeakerEndpoint": ep.conference.speaker.dominant})
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except ValueError:
                await ws.send_str(json.dumps({"colibriClass": "Error", "message": "not JSON"}))
                continue
            if not isinstance(data, dict):
                continue
            handle_message(ep, data)
    finally:
        if ep.channel_send is sender:
            ep.channel_send = None
    return ws


class _sender:
    """A callable that queues text on one WebSocket without blocking the caller."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.pending = 0

    def __call__(self, text: str) -> None:
        import asyncio
        if self.ws.closed or self.pending > 256:  # a receiver that stopped reading loses messages
            return
        self.pending += 1
        task = asyncio.ensure_future(self.ws.send_str(text))
        task.add_done_callback(self._done)

    def _done(self, task: Any) -> None:
        self.pending -= 1
        if not task.cancelled():
            task.exception()  # a closed socket: nothing to do


def handle_message(ep: "Endpoint", data: dict[str, Any]) -> None:
    cls = data.get("colibriClass")
    conf = ep.conference
    if cls == "EndpointMessage":
        to = data.get("to") or ""
        out = dict(data, **{"from": ep.id})
        for other in list(conf.endpoints.values()):
            if other is not ep and (not to or other.id == to):
                other.send_channel(out)
    elif cls in ("LastNChangedEvent", "LastN"):
        _set_last_n(ep, data.get("lastN"))
    elif cls == "ReceiverVideoConstraints":
        if "lastN" in data:
            _set_last_n(ep, data.get("lastN"))
    elif cls == "ClientHello":
        ep.send_channel({"colibriClass": "ServerHello", "version": VERSION})


def _set_last_n(ep: "Endpoint", value: Any) -> None:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return
    ep.last_n = -1 if n < 0 else n
    ep.conference.reassign()


