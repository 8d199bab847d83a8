"""The coturn configuration that matches a jitsi-py config (`jitsi-py turn-config`).

A TURN server relays UDP for anyone holding a credential, and every guest gets one: so it must
relay to our bridge and to the internet's public addresses, never into the operator's own
networks (private, link-local with the cloud metadata service, carrier NAT, loopback,
multicast), and never open TCP connections for its clients (our media is UDP; RFC 6062 TCP
relay would make it a proxy into the network). The bridge's own address is let through even
when it is private: behind NAT, that is where coturn must send to.
"""
from __future__ import annotations

import ipaddress

from .config import Config

# Peer ranges a relay must not reach (coturn takes single addresses or "first-last" ranges).
# Loopback (127/8, ::1) is refused by coturn itself unless allow-loopback-peers is set. (Not
# "::" for the unspecified address: coturn reads that range as covering every address.)
DENIED_PEERS = [
    ("0.0.0.0", "0.255.255.255"),  # "this" network
    ("10.0.0.0", "10.255.255.255"),  # private (RFC 1918)
    ("100.64.0.0", "100.127.255.255"),  # carrier-grade NAT
    ("169.254.0.0", "169.254.255.255"),  # link-local: cloud metadata services live here
    ("172.16.0.0", "172.31.255.255"),  # private
    ("192.0.0.0", "192.0.0.255"),  # IETF protocol assignments
    ("192.168.0.0", "192.168.255.255"),  # private
    ("198.18.0.0", "198.19.255.255"),  # benchmarking
    ("224.0.0.0", "255.255.255.255"),  # multicast, reserved, broadcast
    ("64:ff9b::", "64:ff9b::ffff:ffff"),  # NAT64 onto IPv4 (would reach the ranges above)
    ("fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),  # unique local
    ("fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),  # link-local
    ("ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),  # multicast
]

# UDP ports coturn relays from (one per allocation): open these in the firewall.
RELAY_PORTS = (49152, 65535)


def denied(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether the generated config keeps relays away from `addr`."""
    if addr.is_loopback:
        return True
    return any(addr.version == ipaddress.ip_address(first).version
               and ipaddress.ip_address(first) <= addr <= ipaddress.ip_address(last)  # type: ignore[operator]
               for first, last in DENIED_PEERS)


def bridge_peers(cfg: Config) -> list[str]:
    """Addresses of our bridge in a denied range, which a relay must reach all the same."""
    out = []
    for value in (cfg.bridge.media_address, cfg.bridge.public_address):
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            continue
        if not addr.is_unspecified and denied(addr) and str(addr) not in out:
            out.append(str(addr))
    return out


def coturn_config(cfg: Config, relay_ports: tuple[int, int] = RELAY_PORTS) -> str:
    """turnserver.conf for `cfg`'s [turn] section (which must have host and secret)."""
    turn = cfg.turn
    if not turn.host or not turn.secret:
        raise ValueError("[turn] host and secret must be set in the config first")
    lines = [
        "# coturn configuration for jitsi-py, written by `jitsi-py turn-config`.",
        "# Install as /etc/turnserver.conf and restart coturn (systemctl restart coturn).",
        f"# Open: {turn.port}/udp and {turn.port}/tcp (TURN, STUN)"
        + (f", {turn.tls_port}/tcp (TURN over TLS)" if turn.turns else "")
        + f", {relay_ports[0]}-{relay_ports[1]}/udp (relayed media).",
        "# It contains the shared secret: keep it readable by root and turnserver only.",
        "",
        f"listening-port={turn.port}",
    ]
    if turn.turns:
        cert, key = cfg.tls.cert or "/etc/coturn/fullchain.pem", cfg.tls.key or "/etc/coturn/privkey.pem"
        lines += [f"tls-listening-port={turn.tls_port}",
                  f"# a certificate for {turn.host} (coturn must be able to read it)",
                  f"cert={cert}", f"pkey={key}",
                  "no-tlsv1", "no-tlsv1_1", "no-dtls"]
    else:
        lines += ["no-tls", "no-dtls"]
    lines += [
        "# Behind NAT (a cloud VM): uncomment with the public and the private address.",
        "# external-ip=203.0.113.7/10.0.0.5",
        f"min-port={relay_ports[0]}",
        f"max-port={relay_ports[1]}",
        "",
        "# Credentials: jitsi-py hands out expiry:user / HMAC-SHA1 pairs made with this secret.",
        f"realm={turn.host}",
        f"server-name={turn.host}",
        "use-auth-secret",
        f"static-auth-secret={turn.secret}",
        "fingerprint",
        "stale-nonce=600",
        "",
        "# What a relay may reach: our bridge and public addresses, not the operator's networks.",
        "no-multicast-peers",
        "no-tcp-relay",
        "no-cli",
        "no-rfc5780",
        "no-stun-backward-compatibility",
        "response-origin-only-with-rfc5780",
        "user-quota=20",
        "total-quota=2000",
    ]
    lines += [f"denied-peer-ip={first}" if first == last else f"denied-peer-ip={first}-{last}"
              for first, last in DENIED_PEERS]
    for addr in bridge_peers(cfg):
        lines.append(f"allowed-peer-ip={addr}")
    lines += ["", "syslog", "simple-log"]
    return "\n".join(lines) + "\n"
