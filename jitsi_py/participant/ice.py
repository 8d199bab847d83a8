"""STUN/TURN servers from the XMPP server (XEP-0215) as aiortc `RTCIceServer`s.

Pure conversion, its own module because the order matters: aiortc (1.16) uses one STUN and one
TURN server, the first of each it can use, so the caller's preferred TURN transport goes first.
A network that drops UDP needs TURN over TCP or TLS; one that allows only 443 needs TLS.
"""
from __future__ import annotations

from xml.etree.ElementTree import Element

from aiortc import RTCIceServer

from jitsi_base import ns

# TURN transports as a participant names them, and the XEP-0215 (type, transport) of each
TURN_TRANSPORTS = {"udp": ("turn", "udp"), "tcp": ("turn", "tcp"), "tls": ("turns", "tcp")}


def ice_servers(services: Element, prefer: str = "udp") -> list[RTCIceServer]:
    """The `<services/>` answer as RTCIceServers: STUN first, then TURN with `prefer` first
    (udp, tcp or tls), then the other TURN transports. Entries we cannot read are skipped."""
    if prefer not in TURN_TRANSPORTS:
        raise ValueError(f"unknown TURN transport {prefer!r} (allowed: {', '.join(TURN_TRANSPORTS)})")
    order = [TURN_TRANSPORTS[prefer]] + [v for k, v in TURN_TRANSPORTS.items() if k != prefer]
    stun: list[RTCIceServer] = []
    turn: dict[tuple[str, str], list[RTCIceServer]] = {key: [] for key in order}
    for el in services.iter("{%s}service" % ns.EXTDISCO):
        kind, host, port = el.get("type", ""), el.get("host", ""), el.get("port", "")
        transport = el.get("transport", "udp")
        if not host or any(c in host for c in "/?# ") or (port and not (port.isascii() and port.isdigit())):
            continue
        where = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
        if kind == "stun" and transport == "udp":
            stun.append(RTCIceServer(urls=f"stun:{where}"))
        elif (kind, transport) in turn and el.get("username") and el.get("password"):
            turn[(kind, transport)].append(RTCIceServer(urls=f"{kind}:{where}?transport={transport}",
                                                        username=el.get("username"),
                                                        credential=el.get("password")))
    return stun + [server for key in order for server in turn[key]]
