"""The bridge channel: slot maps, the dominant speaker and endpoint messages, to and from the bridge.

Its own part because it has its own transport and life: per media session it is a WebRTC data
channel over the media transport when the offer has a data content (as Jitsi clients do), else,
or if that does not open within `DATA_CHANNEL_TIMEOUT`, or once it closed while the session
lasts, the bridge's WebSocket (colibri-ws), reconnected with backoff. Messages from either are
handled alike (`_on_channel`).
"""
from __future__ import annotations

import asyncio
import json
import logging
import ssl
from typing import Any, Callable

import aiohttp
from aiortc import RTCDataChannel, RTCPeerConnection

from jitsi_base import ns

from .core import Event, ParticipantCore, ParticipantError
from .media import SourceFeed

log = logging.getLogger(__name__)

# the bridge channel over SCTP, named as Jitsi's clients name it
DATA_CHANNEL_LABEL = "JVB data channel"
DATA_CHANNEL_TIMEOUT = 5.0  # s from a connected media session to an open data channel, else colibri-ws


class BridgeChannel(ParticipantCore):
    """Owns the channel (`_dc` or `_ws`, its task, the HTTP session for colibri-ws) and what
    comes over it: `dominant_speaker`, `video_wanted`, `endpoint_messages`."""

    sid: str | None
    pc: RTCPeerConnection | None
    _feeds: dict[str, SourceFeed]
    _ssl_context: Callable[[], ssl.SSLContext]

    def _init_channel(self) -> None:
        self.dominant_speaker: str | None = None
        self.video_wanted = True  # the bridge's SenderVideoConstraints: does anyone receive us
        self.endpoint_messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._dc: RTCDataChannel | None = None  # the bridge channel over SCTP, once open
        self._channel_task: asyncio.Task | None = None

    @property
    def channel_kind(self) -> str | None:
        """The open bridge channel: "sctp" (data channel), "websocket" (colibri-ws) or None."""
        dc = self._dc
        if dc is not None and dc.readyState == "open":
            return "sctp"
        ws = self._ws
        if ws is not None and not ws.closed:
            return "websocket"
        return None

    async def _bridge_channel(self, sid: str, sctp: bool, url: str | None) -> None:
        """The session's bridge channel: the data channel if offered and it opens, else (and after
        it closed while the session lasts) the WebSocket, if the bridge gave a URL."""
        if sctp and await self._data_channel(sid) and self.sid == sid and not self._left:
            log.info("%s: the data channel closed; using the WebSocket", self.nick)
        if url and self.sid == sid and not self._left:
            await self._channel(url, sid)

    async def _data_channel(self, sid: str) -> bool:
        """Open the data channel once media is connected and serve it until it closes or the
        session ends. False if it did not open within DATA_CHANNEL_TIMEOUT."""
        pc = self.pc
        if pc is None:
            return False

        def gone() -> bool:
            return self.sid != sid or self._left or self.pc is not pc

        try:
            await self._until(lambda: gone() or pc.connectionState in ("connected", "failed", "closed"), None,
                              "a connected media session")
            if gone() or pc.connectionState != "connected":
                return False
            dc = pc.createDataChannel(DATA_CHANNEL_LABEL, protocol=ns.COLIBRI_CHANNEL)
            dc.on("message", lambda message: self._on_dc_message(pc, message))
            dc.on("open", self._notify)
            dc.on("close", self._notify)
            try:
                await self._until(lambda: gone() or dc.readyState != "connecting", DATA_CHANNEL_TIMEOUT,
                                  "the data channel")
            except TimeoutError:
                pass
            if gone() or dc.readyState != "open":
                if not gone():
                    log.info("%s: the data channel did not open in %g s; using the WebSocket", self.nick,
                             DATA_CHANNEL_TIMEOUT)
                    dc.close()
                return False
            self._dc = dc
            self._notify()
            log.debug("%s: bridge channel open (data channel %s)", self.nick, dc.id)
            try:
                await self._until(lambda: gone() or dc.readyState != "open", None, "the data channel to close")
            finally:
                if self._dc is dc:
                    self._dc = None
            return True
        except ParticipantError:  # the participant failed; join()/leave() report it
            return False

    def _on_dc_message(self, pc: RTCPeerConnection, message: str | bytes) -> None:
        # runs inside aiortc's receive loop: must not raise
        if pc is not self.pc:
            return
        try:
            data = json.loads(message)
        except ValueError:
            return
        if isinstance(data, dict):
            try:
                self._on_channel(data)
            except Exception:
                log.exception("%s: bridge channel message failed", self.nick)

    async def _channel(self, url: str, sid: str) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        delay = 0.5
        while self.sid == sid and not self._left:
            ws: aiohttp.ClientWebSocketResponse | None = None
            try:
                ssl_arg: Any = self._ssl_context() if url.startswith("wss:") else None
                async with self._http.ws_connect(url, heartbeat=30, ssl=ssl_arg) as ws:
                    self._ws = ws
                    self._notify()
                    delay = 0.5
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            continue
                        try:
                            data = json.loads(msg.data)
                        except ValueError:
                            continue
                        if isinstance(data, dict):
                            self._on_channel(data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("%s: bridge channel %s: %s", self.nick, url.split("?")[0], exc)
            finally:
                if ws is not None and self._ws is ws:  # not a newer session's
                    self._ws = None
            if self.sid != sid or self._left:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _on_channel(self, data: dict[str, Any]) -> None:
        cls = data.get("colibriClass")
        if cls in ("AudioSourcesMap", "VideoSourcesMap"):
            self._map_slots("audio" if cls == "AudioSourcesMap" else "video", data.get("mappedSources") or [])
            self._notify()
        elif cls == "DominantSpeakerEndpointChangeEvent":
            self.dominant_speaker = data.get("dominantSpeakerEndpoint")
            self._emit(Event("dominant-speaker", self.dominant_speaker or ""))
        elif cls == "EndpointMessage":
            self.endpoint_messages.put_nowait(data)
            self._notify()
        elif cls == "SenderVideoConstraints":
            try:
                height = int((data.get("videoConstraints") or {}).get("idealHeight", 1))
            except (TypeError, ValueError):
                height = 1
            feed = self._feeds.get("video")
            self.video_wanted = height > 0
            if feed is not None:
                feed.pause(height <= 0)  # nobody receives our video: stop encoding it
            self._notify()
        elif cls == "ServerHello":
            log.debug("%s: bridge channel open (%s)", self.nick, data.get("version"))

    async def wait_channel(self, timeout: float = 10.0) -> str:
        """The kind of the open bridge channel ("sctp" or "websocket"), once there is one."""
        return await self._until(lambda: self.channel_kind, timeout, "the bridge channel")

    async def send_endpoint_message(self, to: str, payload: Any) -> None:
        """Relay `payload` through the bridge to endpoint `to` ("" for everyone), on the open
        bridge channel (waiting up to 10 s for one)."""
        text = json.dumps({"colibriClass": "EndpointMessage", "to": to, "msgPayload": payload})
        kind = await self.wait_channel(10.0)
        if kind == "sctp":
            assert self._dc is not None
            self._dc.send(text)
        else:
            assert self._ws is not None
            await self._ws.send_str(text)


    def _start_channel(self, sid: str, sctp: bool, url: str | None) -> None:
        """The channel of the session `sid` just set up, replacing any older one."""
        if self._channel_task is not None:
            self._channel_task.cancel()
        self._channel_task = None
        if sctp or url:
            self._channel_task = self._spawn(self._bridge_channel(sid, sctp, url))

    def _cancel_channel(self) -> None:
        task = self._channel_task
        self._channel_task = None
        if task is not None:
            task.cancel()

    async def _close_channel(self) -> None:
        """With the media session: the WebSocket closes, the data channel goes with the PeerConnection."""
        if self._ws is not None:
            await self._ws.close()
        self._dc = None  # closed with the PeerConnection

    async def _close_http(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
