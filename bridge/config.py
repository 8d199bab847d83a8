"""The bridge's section of the config file ([bridge]) and its checks."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from jitsi_base.config import Problems


@dataclass
class BridgeSection:
    enabled: bool = True
    # This bridge's name: its nick in the brewery room and part of its bridge-channel URLs.
    id: str = "jvb1"
    # Address for ICE host candidates (what participants send media to).
    media_address: str = "127.0.0.1"
    # The address participants reach media_address on when the machine is behind NAT (a cloud
    # VM's public IP): advertised as a second candidate on the same port. Empty: none.
    public_address: str = ""
    # When public_address is empty: a STUN server ("host:port") the bridge asks at start for the
    # address its media address is seen from, advertised like public_address. Empty: the [turn]
    # host of the all-in-one stack (coturn answers STUN), else none.
    stun: str = ""
    # UDP ports for media, one per participant (and per relay); 0: any free port.
    port_min: int = 10000
    port_max: int = 20000
    # Base URL participants reach the bridge channel on (ws:// or wss://); empty: the stack's HTTP.
    websocket_base: str = ""
    # Video streams forwarded to each participant (Jitsi's last-N); audio slots likewise.
    last_n: int = 9
    audio_slots: int = 5
    # Seconds without media or ICE consent before an endpoint is expired.
    endpoint_timeout: float = 30.0
    # Who may send this bridge COLIBRI2 (bare JIDs of focus accounts); empty: focus@auth.<domain>.
    focus_jids: list[str] = field(default_factory=list)
    # Bounds on what one focus request can make this bridge hold.
    max_conferences: int = 1000
    max_endpoints_per_conference: int = 500
    # Where a separately run bridge (`python -m bridge`) logs in: c2s address and account.
    xmpp_host: str = "127.0.0.1"
    xmpp_port: int = 5222
    username: str = "jvb"
    password: str = ""
    # Public HTTP port of a separately run bridge (health, bridge channel); 0 = any free port.
    http_listen: str = "127.0.0.1"
    http_port: int = 8081
    # Its admin port (stats, metrics): keep it private; 0 = any free port.
    admin_listen: str = "127.0.0.1"
    admin_port: int = 8089


def parse_server(value: str, default_port: int = 3478) -> tuple[str, int]:
    """'host:port', 'host' or '[v6]:port' -> (host, port); ValueError when malformed."""
    value = value.strip()
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ("" if not rest else "x")
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    if not host or (port and not port.isdigit()) or not 0 < int(port or default_port) <= 65535:
        raise ValueError(f"{value!r} is not host:port")
    return host, int(port or default_port)


def check(b: BridgeSection, problems: Problems) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", b.id):
        problems.append(("bridge.id", f"{b.id!r} is not allowed (allowed: 1-32 letters, digits, '-', '_')"))
    if b.last_n < 0 or b.audio_slots < 0:
        problems.append(("bridge.last_n" if b.last_n < 0 else "bridge.audio_slots", "must not be negative"))
    if b.endpoint_timeout <= 0:
        problems.append(("bridge.endpoint_timeout", "must be more than 0 seconds"))
    for key in ("max_conferences", "max_endpoints_per_conference"):
        if getattr(b, key) < 1:
            problems.append((f"bridge.{key}", f"{getattr(b, key)} is too low (allowed: 1 or more)"))
    for i, jid in enumerate(b.focus_jids):
        if "@" not in jid or "/" in jid:
            problems.append((f"bridge.focus_jids[{i}]", f"{jid!r} is not a bare JID (user@domain)"))
    for key in ("xmpp_port", "http_port", "admin_port"):
        if not 0 <= getattr(b, key) <= 65535:
            problems.append((f"bridge.{key}", f"{getattr(b, key)} is out of range (allowed: 0..65535)"))
    for key in ("media_address", "public_address"):
        value = getattr(b, key)
        if value or key == "media_address":
            try:
                ipaddress.ip_address(value)
            except ValueError:
                problems.append((f"bridge.{key}", f"{value!r} is not an IP address"))
    if b.stun:
        try:
            parse_server(b.stun)
        except ValueError as exc:
            problems.append(("bridge.stun", str(exc)))
    if (b.port_min == 0) != (b.port_max == 0) or not 0 <= b.port_min <= b.port_max <= 65535:
        problems.append(("bridge.port_min", f"{b.port_min}..{b.port_max} is not a port range "
                                            "(1..65535, port_min <= port_max; both 0: any free port)"))
    if b.websocket_base and not re.match(r"wss?://", b.websocket_base):
        problems.append(("bridge.websocket_base", f"{b.websocket_base!r} must start with ws:// or wss://"))
