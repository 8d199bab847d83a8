"""The bridge channel: JSON messages between one participant and the bridge, over a WebSocket
or over a WebRTC data channel (SCTP over the endpoint's DTLS transport).

WebSocket URL: `/colibri-ws/<bridge>/<conference>/<endpoint>?pwd=<password>` as Jitsi's; the
password is per endpoint and was given to the focus in the COLIBRI2 answer. Data channel: when
the focus asked for SCTP (COLIBRI2 `<sctp/>`), the participant opens one on the association
(Jitsi's label "JVB data channel", protocol "http://jitsi.org/protocols/colibri"; we accept any).

Either way the channel is the endpoint's `channel_send` from when it opens (the one opened last
wins, as a reconnecting client replaces its old channel) until it closes. Messages follow
Jitsi's `colibriClass` vocabulary: we send ServerHello, DominantSpeakerEndpointChangeEvent and
the slot maps; we relay EndpointMessage between endpoints of one conference and honour LastN /
ReceiverVideoConstraints (lastN, and max heights, which choose simulcast layers).
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any, Callable

from aiohttp import WSMsgType, web

from .bridge import VERSION

if TYPE_CHECKING:
    from .bridge import Bridge
    from .endpoint import Endpoint
    from .relay import Relay

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
    channel_opened(ep, sender, ws.close)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                handle_text(ep, msg.data, sender)
    finally:
        channel_closed(ep, sender)
    return ws


def channel_opened(ep: "Endpoint", send: Callable[[str], Any], close: Callable[[], Any]) -> None:
    """`send` is now the endpoint's bridge channel (replacing any other; `close` ends it): greet
    it and tell it what was decided before it opened."""
    ep.channel_send = send
    ep.channel_close = close
    ep.send_channel({"colibriClass": "ServerHello", "version": VERSION})
    ep.sources_map(full=True)
    if ep.sent_ideal_height is not None:
        ep.send_channel({"colibriClass": "SenderVideoConstraints",
                         "videoConstraints": {"idealHeight": ep.sent_ideal_height}})
    if ep.conference.speaker.dominant is not None:
        ep.send_channel({"colibriClass": "DominantSpeakerEndpointChangeEvent",
                         "dominantSpeakerEndpoint": ep.conference.speaker.dominant})


def channel_closed(ep: "Endpoint", send: Callable[[str], Any]) -> None:
    if ep.channel_send is send:  # unless a newer channel took over
        ep.channel_send = None
        ep.channel_close = None


def data_channel(ep: "Endpoint", channel: Any) -> None:
    """An (open) aiortc ``RTCDataChannel`` the participant opened over SCTP becomes its bridge
    channel. Called from aiortc's receive loop, like the handlers below: they must not raise."""
    if ep.expired:
        channel.close()
        return
    sender = _DataChannelSender(channel)

    def on_message(message: str | bytes) -> None:
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        handle_text(ep, message, sender)

    channel.on("message", on_message)
    channel.on("close", lambda: channel_closed(ep, sender))
    log.debug("endpoint %s opened data channel %r (%s)", ep.id, channel.label, channel.protocol)
    if channel.readyState == "open":
        channel_opened(ep, sender, channel.close)


class _sender:
    """A callable that queues text on one WebSocket without blocking the caller."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.pending = 0

    def __call__(self, text: str) -> None:
        if self.ws.closed or self.pending > 256:  # a receiver that stopped reading loses messages
            return
        self.pending += 1
        task = asyncio.ensure_future(self.ws.send_str(text))
        task.add_done_callback(self._done)

    def _done(self, task: Any) -> None:
        self.pending -= 1
        if not task.cancelled():
            task.exception()  # a closed socket: nothing to do


class _DataChannelSender:
    """A callable that queues text on one data channel (aiortc's send() only queues)."""

    MAX_BUFFERED = 1024 * 1024  # a receiver that stopped reading loses messages

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def __call__(self, text: str) -> None:
        channel = self.channel
        if channel.readyState != "open" or channel.bufferedAmount > self.MAX_BUFFERED:
            return
        channel.send(text)


def handle_text(ep: "Endpoint", text: str, reply: Callable[[str], Any] | None = None) -> None:
    """One message from a participant, as text (WebSocket or data channel). Called from the
    WebSocket's reader and from aiortc's receive loop: it never raises. What is not a JSON
    object gets an Error message back (on `reply`, default: the endpoint's channel)."""
    def error(message: str) -> None:
        out = {"colibriClass": "Error", "message": message}
        if reply is not None:
            reply(json.dumps(out))
        else:
            ep.send_channel(out)

    if len(text) > MAX_MESSAGE:
        error("message too long")
        return
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        error("not JSON")
        return
    if not isinstance(data, dict):
        error("not a JSON object")
        return
    try:
        handle_message(ep, data)
    except Exception:
        log.exception("bridge channel message from %s failed", ep.id)


def handle_message(ep: "Endpoint", data: dict[str, Any]) -> None:
    cls = data.get("colibriClass")
    conf = ep.conference
    if cls == "EndpointMessage":
        to = data.get("to") or ""
        if not isinstance(to, str):
            ep.send_channel({"colibriClass": "Error", "message": "EndpointMessage 'to' must be an endpoint id"})
            return
        out = dict(data, **{"from": ep.id})
        _deliver(conf, out, to, ep.id)
        if to and (other := conf.endpoints.get(to)) is not None and other.relay is not None:
            other.relay.send_message(out)  # someone on another bridge: through the relay that leads there
        elif not to:
            for relay in list(conf.relays.values()):
                relay.send_message(out)
    elif cls in ("LastNChangedEvent", "LastN"):
        _set_last_n(ep, data.get("lastN"))
    elif cls == "ReceiverVideoConstraints":
        pinned = ep.pinned
        if ep.set_receiver_constraints(data):
            if ep.pinned != pinned:
                conf.reassign()  # who fills its slots changes, not only their layers
            conf.constraints_changed(ep)
        if "lastN" in data:
            _set_last_n(ep, data.get("lastN"))
    elif cls == "ClientHello":
        ep.send_channel({"colibriClass": "ServerHello", "version": VERSION})


def _deliver(conf: Any, message: dict[str, Any], to: str, sender: str) -> None:
    """An EndpointMessage to this bridge's own participants: all but the sender, or the one
    named in `to`."""
    for ep in list(conf.endpoints.values()):
        if ep.relay is None and ep.id != sender and (not to or ep.id == to):
            ep.send_channel(message)


def relay_channel(relay: "Relay", channel: Any) -> None:
    """The data channel between two bridges (opened by the ICE-controlling side, arriving on
    the other): EndpointMessages for the participants on the far side go through it."""
    sender = _DataChannelSender(channel)

    def opened() -> None:
        if not relay.expired:
            relay.channel_send = sender

    def closed() -> None:
        if relay.channel_send is sender:
            relay.channel_send = None

    def on_message(message: str | bytes) -> None:
        """An EndpointMessage from a participant on the other bridge, for ours. Runs inside
        aiortc's receive loop: it must not raise."""
        try:
            data = json.loads(message) if len(message) <= MAX_MESSAGE else None
        except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
            return
        try:
            if isinstance(data, dict) and data.get("colibriClass") == "EndpointMessage":
                _deliver(relay.conference, data, data.get("to") or "", data.get("from") or "")
        except Exception:
            log.exception("relay %s message failed", relay.id)

    channel.on("message", on_message)
    channel.on("open", opened)
    channel.on("close", closed)
    if channel.readyState == "open":
        opened()


def _set_last_n(ep: "Endpoint", value: Any) -> None:
    try:
        n = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's Infinity
        return
    ep.last_n = -1 if n < 0 else n
    ep.conference.reassign()


