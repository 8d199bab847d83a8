"""The bridge's public address as a STUN server sees it (RFC 5389 Binding).

A bridge on a cloud VM or behind a home router only knows its private address; participants
elsewhere need the one the NAT maps it to. One Binding request from the media address, at start,
is enough for the usual one-to-one NAT of a cloud VM, where every media port maps alike.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

from aioice import stun

from .config import parse_server  # noqa: F401  (re-exported: callers read it here)

log = logging.getLogger(__name__)

ATTEMPTS = 3


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answers: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[type-arg]
        self.answers.put_nowait(data)


async def mapped_address(server: tuple[str, int], local_address: str, timeout: float = 3.0) -> str | None:
    """The address `server` sees a datagram from `local_address` come from; None when it does
    not answer in `timeout` seconds (spread over a few retransmissions) or cannot be reached."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ipaddress.ip_address(local_address).version == 6 else socket.AF_INET
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(server[0], server[1], family=family,
                                                        type=socket.SOCK_DGRAM), timeout)
        transport, proto = await loop.create_datagram_endpoint(
            _Client, local_addr=(local_address, 0), remote_addr=infos[0][4])
    except (OSError, asyncio.TimeoutError) as exc:
        log.warning("STUN %s:%d from %s: %s", server[0], server[1], local_address, exc or "no address in time")
        return None
    try:
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        deadline = loop.time() + timeout
        for attempt in range(ATTEMPTS):
            transport.sendto(bytes(request))
            wait = min(deadline - loop.time(), timeout / ATTEMPTS)
            while wait > 0:
                try:
                    data = await asyncio.wait_for(proto.answers.get(), wait)
                except asyncio.TimeoutError:
                    break
                wait = min(deadline - loop.time(), timeout / ATTEMPTS)
                try:
                    answer = stun.parse_message(data)
                except ValueError:
                    continue
                if answer.transaction_id != request.transaction_id:
                    continue
                if answer.message_class != stun.Class.RESPONSE:
                    log.warning("STUN %s:%d refused the binding request", *server)
                    return None
                got = answer.attributes.get("XOR-MAPPED-ADDRESS") or answer.attributes.get("MAPPED-ADDRESS")
                return str(got[0]) if got else None
        log.warning("STUN %s:%d did not answer from %s in %.0f s", server[0], server[1], local_address, timeout)
        return None
    finally:
        transport.close()
