"""`jitsi-py check --config FILE`: what stops people elsewhere from meeting, one line each.

Each check says what it found and, when something is wrong, what to do about it. It looks from
this machine: a port it can reach may still be closed in a cloud firewall, which the lines say.
"""
from __future__ import annotations

import asyncio
import datetime
import errno
import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from .config import Config, data_dir

log = logging.getLogger(__name__)

EXPIRY_WARNING = datetime.timedelta(days=14)
TURN_TIMEOUT = 5.0


@dataclass
class Result:
    status: str  # OK, WARN (worth knowing, not failing) or FAIL
    what: str

    def line(self) -> str:
        return f"{self.status:<4} {self.what}"


def ok(what: str) -> Result:
    return Result("OK", what)


def warn(what: str) -> Result:
    return Result("WARN", what)


def fail(what: str) -> Result:
    return Result("FAIL", what)


# ---- listeners -------------------------------------------------------------------------------

def _listener(label: str, key: str, host: str, port: int) -> Result:
    where = f"{host}:{port}"
    advice = (f"keep TCP {port} closed to the public" if key in ("components", "admin")
              else f"open TCP {port} in the firewall if others must reach it")
    if port == 0:
        return ok(f"{label} on {host}, any free port ([{key}] port = 0)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return ok(f"{label} {where} can be bound ({advice})")
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                return fail(f"{label} {where}: {host} is not an address of this machine; set [{key}] listen "
                            "to one of its addresses (or 0.0.0.0)")
            if exc.errno == errno.EACCES:
                return fail(f"{label} {where}: ports below 1024 need privileges; run as root, give the "
                            f"process CAP_NET_BIND_SERVICE, or use a higher [{key}] port")
            if exc.errno != errno.EADDRINUSE:
                return fail(f"{label} {where} cannot be bound: {exc.strerror}")
    target = "127.0.0.1" if host == "0.0.0.0" else "::1" if host == "::" else host
    try:
        socket.create_connection((target, port), 3).close()
    except OSError as exc:
        return fail(f"{label} {where} is taken by another program that does not answer ({exc}); stop it or "
                    f"change [{key}] port")
    return ok(f"{label} {where} is in use and answers (a running server; {advice})")


def check_listeners(cfg: Config) -> list[Result]:
    out = []
    for label, key in (("XMPP clients", "c2s"), ("XMPP components", "components"), ("HTTP", "http"),
                       ("Admin HTTP", "admin")):
        listener = getattr(cfg, key)
        if listener.enabled:
            out.append(_listener(label, key, listener.listen, listener.port))
    if cfg.bridge.enabled:
        b = cfg.bridge
        family = socket.AF_INET6 if ":" in b.media_address else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            try:
                s.bind((b.media_address, 0))
                ports = f"UDP {b.port_min}-{b.port_max}" if b.port_min else "the UDP ports it picks"
                out.append(ok(f"Bridge media on {b.media_address} can be bound (open {ports} in the firewall)"))
            except OSError as exc:
                out.append(fail(f"Bridge media on {b.media_address} cannot be bound ({exc.strerror}); set [bridge] "
                                "media_address to an address of this machine"))
    return out


# ---- certificate -----------------------------------------------------------------------------

def _certificate_paths(cfg: Config) -> tuple[Path, Path]:
    if cfg.tls.cert and cfg.tls.key:
        base = Path(cfg.path).parent if cfg.path else Path.cwd()
        return base / cfg.tls.cert, base / cfg.tls.key
    domain = cfg.server.domain.lower()
    tls_dir = data_dir(cfg) / "tls"
    return tls_dir / f"{domain}.crt", tls_dir / f"{domain}.key"


def _handshake(cert: Path, key: Path, name: str) -> str | None:
    """A TLS handshake in memory, our certificate against this machine's trust store as a
    browser's would check it; the reason it fails, or None."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(str(cert), str(key))
    client = ssl.create_default_context()
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=name)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        done = True
        try:
            c.do_handshake()
        except ssl.SSLWantReadError:
            done = False
        except ssl.SSLCertVerificationError as exc:
            return exc.verify_message or str(exc)
        try:
            s.do_handshake()
        except ssl.SSLWantReadError:
            done = False
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if done:
            return None
    return "the handshake did not finish"


def check_certificate(cfg: Config, now: datetime.datetime | None = None) -> list[Result]:
    from cryptography import x509
    domain = cfg.server.domain.lower()
    cert, key = _certificate_paths(cfg)
    if not cert.exists():
        return [fail(f"TLS certificate {cert} does not exist; set [tls] cert and key to a certificate for {domain} "
                     "(`jitsi-py run` would make a self-signed one, which browsers refuse)")]
    try:
        parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    except ValueError as exc:
        return [fail(f"TLS certificate {cert} cannot be read ({exc}); it must be PEM")]
    now = now or datetime.datetime.now(datetime.timezone.utc)
    left = parsed.not_valid_after_utc - now
    expiry = parsed.not_valid_after_utc.strftime("%Y-%m-%d")
    out = []
    if left <= datetime.timedelta(0):
        out.append(fail(f"TLS certificate {cert} expired on {expiry}; renew it"))
    elif left < EXPIRY_WARNING:
        out.append(fail(f"TLS certificate {cert} expires on {expiry}, in {left.days} days; renew it now"))
    else:
        out.append(ok(f"TLS certificate {cert} valid until {expiry} ({left.days} days)"))
    try:
        problem = _handshake(cert, key, domain)
    except (OSError, ssl.SSLError) as exc:
        problem = f"the certificate and key do not load together ({exc})"
    if problem:
        out.append(fail(f"TLS certificate for {domain}: {problem}; browsers will refuse it: use a certificate "
                        f"for {domain} from a public CA (set [tls] cert and key)"))
    else:
        out.append(ok(f"TLS certificate is valid for {domain} and trusted by this machine's CAs"))
    return out


# ---- TURN ------------------------------------------------------------------------------------

async def _allocate(cfg: Config, transport: str, tls: bool) -> tuple[str, int]:
    from aioice import turn as aioice_turn

    from xmpp_plugins.plugins.extdisco import turn_credentials

    class Sink(asyncio.DatagramProtocol):
        pass

    t = cfg.turn
    username, password, _ = turn_credentials(t.secret, "jitsi-py-check", 600)
    ctx = ssl.create_default_context() if tls else None
    endpoint, _ = await asyncio.wait_for(aioice_turn.create_turn_endpoint(
        Sink, (t.host, t.tls_port if tls else t.port), username, password, ssl=ctx, transport=transport),
        TURN_TIMEOUT)
    try:
        return endpoint.get_extra_info("sockname")
    finally:
        endpoint.close()


async def check_turn(cfg: Config) -> list[Result]:
    t = cfg.turn
    if not t.host:
        return [warn("TURN is not configured ([turn] host empty): people whose network drops UDP cannot join; "
                     "see README, TURN")]
    ways = [("udp", False, f"turn:{t.host}:{t.port} over UDP"), ("tcp", False, f"turn:{t.host}:{t.port} over TCP")]
    if t.turns:
        ways.append(("tcp", True, f"turns:{t.host}:{t.tls_port} (TLS)"))
    out = []
    for transport, tls, label in ways:
        try:
            relayed = await _allocate(cfg, transport, tls)
        except asyncio.TimeoutError:
            proto = "TCP" if transport == "tcp" else "UDP"
            port = t.tls_port if tls else t.port
            out.append(fail(f"TURN {label}: no answer in {TURN_TIMEOUT:.0f} s; is coturn running on {t.host}, "
                            f"and {proto} {port} open in its firewall?"))
        except ssl.SSLError as exc:
            out.append(fail(f"TURN {label}: TLS failed ({getattr(exc, 'verify_message', '') or exc}); give coturn "
                            f"a certificate for {t.host} from a public CA (cert=, pkey= in turnserver.conf)"))
        except OSError as exc:
            out.append(fail(f"TURN {label}: cannot connect ({exc.strerror or exc}); is coturn running on {t.host}?"))
        except Exception as exc:  # aioice reports a refused allocation as a TransactionFailed
            text = str(exc)
            if "401" in text or "Unauthorized" in text:
                out.append(fail(f"TURN {label} refused our credentials; coturn's static-auth-secret must equal "
                                "[turn] secret (`jitsi-py turn-config` prints the matching config)"))
            else:
                out.append(fail(f"TURN {label}: allocation failed ({type(exc).__name__}: {text})"))
        else:
            out.append(ok(f"TURN {label} accepts our credentials (relay at {relayed[0]}:{relayed[1]})"))
    return out


# ---- the bridge's address --------------------------------------------------------------------

def _stun_server(cfg: Config) -> str:
    t = cfg.turn
    if cfg.bridge.stun:
        return cfg.bridge.stun
    if t.host:
        return f"[{t.host}]:{t.port}" if ":" in t.host else f"{t.host}:{t.port}"
    return ""


async def check_bridge_address(cfg: Config) -> list[Result]:
    b = cfg.bridge
    if not b.enabled:
        return []
    media = ipaddress.ip_address(b.media_address)
    forward = f"forward UDP {b.port_min}-{b.port_max} to {b.media_address}" if b.port_min else \
        f"forward UDP to {b.media_address}"
    if b.public_address:
        return [ok(f"Participants send media to {b.public_address} (public_address; {forward}) "
                   f"and {b.media_address}")]
    stun = _stun_server(cfg)
    if stun:
        from bridge.config import parse_server
        from bridge.stun import mapped_address
        mapped = await mapped_address(parse_server(stun), b.media_address)
        if mapped is None:
            return [fail(f"STUN {stun} did not answer: participants get only {b.media_address}; open UDP to it "
                         "or set [bridge] public_address")]
        if mapped != b.media_address:
            return [ok(f"Participants send media to {mapped} (by STUN from {stun}; {forward}) "
                       f"and {b.media_address}")]
    if media.is_loopback:
        return [warn(f"Participants send media to {b.media_address}: only this machine can reach it; set [bridge] "
                     "media_address to an address others reach")]
    if media.is_private:
        return [warn(f"Participants send media to {b.media_address}, a private address: people outside its network "
                     "cannot reach it; set [bridge] public_address (or stun)")]
    return [ok(f"Participants send media to {b.media_address}")]


async def run_checks(cfg: Config) -> list[Result]:
    results = check_listeners(cfg)
    results += await asyncio.to_thread(check_certificate, cfg)
    results += await check_turn(cfg)
    results += await check_bridge_address(cfg)
    return results
