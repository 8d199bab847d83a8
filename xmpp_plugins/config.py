"""The XMPP server's part of the config file: its listeners, authentication, limits, BOSH, the
MUC and the TURN server whose credentials it hands out, each section with its defaults and its checks (jitsi_base.config reads the file)."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from jitsi_base.config import Problems, check_port

LOG_LEVELS = ("debug", "info", "warning", "error")
# What a browser sends as Origin: scheme, host (name, IPv4 or [IPv6]) and an optional port.
ORIGIN_RE = re.compile(r"^https?://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$")


@dataclass
class ServerSection:
    domain: str = "localhost"
    # Empty: the per-user data directory (platformdirs user_data_dir("jitsi-py")).
    data_dir: str = ""
    log_level: str = "info"  # debug, info, warning, error


@dataclass
class TlsSection:
    # Both empty: a self-signed certificate is generated once into the data directory.
    cert: str = ""
    key: str = ""


AUTH_MODES = ("open", "secure", "token")
JWT_ALGORITHMS = ("HS256", "RS256", "ES256")
MIN_JWT_SECRET = 32  # bytes: RFC 7518 3.2 wants a key as long as the HS256 hash


@dataclass
class AuthSection:
    # Who may open a meeting: "open" (anyone, guests too), "secure" (registered users; guests
    # sign in on the guest domain and wait for a host), "token" (holders of a JWT the
    # operator's application signed).
    mode: str = "open"
    anonymous: bool = True
    # Domain given to SASL ANONYMOUS guests. Empty: the main domain in mode "open",
    # guest.<domain> in mode "secure", no guests without a token in mode "token".
    guest_domain: str = ""
    # PLAIN over an unencrypted stream: never, except from loopback addresses when this is true.
    allow_plain_on_loopback: bool = True
    # c2s refuses SASL before STARTTLS unless the peer is on loopback and this is false.
    require_encryption: bool = False
    scram_iterations: int = 10000
    # Mode "token": the one algorithm tokens must be signed with (never taken from the token),
    # the HS256 shared secret (32 bytes or more) or the RS256/ES256 public key (a PEM file),
    # and the audience and issuer tokens must name ("" = not checked).
    jwt_algorithm: str = "HS256"
    jwt_secret: str = ""
    jwt_public_key: str = ""
    # RS256/ES256 instead of one key file: a key server (Jitsi's asap_key_server) where the key
    # of a token whose header says `kid` is <jwt_key_url>/<sha256(kid) in hex>.pem (https; http
    # only to a loopback address).
    jwt_key_url: str = ""
    jwt_audience: str = ""
    jwt_issuer: str = ""


def guest_domain(cfg: "XmppConfig") -> str:
    """Where SASL ANONYMOUS guests live ("": nowhere, only token holders sign in)."""
    domain = cfg.server.domain.lower()
    if cfg.auth.guest_domain:
        return cfg.auth.guest_domain.lower()
    return {"open": domain, "secure": f"guest.{domain}"}.get(cfg.auth.mode, "")


def guests_wait_for_host(cfg: "XmppConfig") -> bool:
    """Whether guests (the guest domain) may only join a meeting a host has opened."""
    guests = guest_domain(cfg)
    return cfg.auth.mode != "open" and bool(guests) and guests != cfg.server.domain.lower()


@dataclass
class Listener:
    listen: str = "127.0.0.1"
    port: int = 0
    enabled: bool = True


@dataclass
class HttpListener(Listener):
    # Serve HTTPS with the [tls] certificate (or the generated one). Browsers allow camera and
    # microphone only on https:// or http://localhost, so turn this on for any other host.
    tls: bool = False
    # Origins (scheme://host[:port]) whose pages may use BOSH and the WebSocket besides the
    # page's own one; "*" allows every origin. Empty: only the server's own pages.
    allowed_origins: list[str] = field(default_factory=list)


@dataclass
class ComponentSecret:
    domain: str = ""
    secret: str = ""


@dataclass
class LimitsSection:
    stanza_size_preauth: int = 10_000
    stanza_size: int = 256 * 1024
    component_stanza_size: int = 512 * 1024
    max_depth: int = 32
    # Seconds a connection (c2s, WebSocket, BOSH, component) has to authenticate.
    auth_timeout: float = 30.0
    # Bytes/s a client connection may send before reading from it is paused; 0 = unlimited.
    # 10 kB/s as Prosody recommends; the burst lets a browser's Jingle session-accept through.
    c2s_rate: int = 10_240
    c2s_burst: int = 64 * 1024
    # Stanzas/s a client may send; above that reading pauses, and a client that has sent
    # `c2s_stanza_burst` more than its share anyway (pipelined) is closed. 0 = unlimited.
    c2s_stanza_rate: int = 20
    c2s_stanza_burst: int = 200
    max_connections: int = 10_000
    # All connections from one address (hundreds of people behind one NAT are normal) ...
    connections_per_ip: int = 1000
    # ... and those of them not yet authenticated (half-open sockets).
    unauthenticated_per_ip: int = 20
    # Bytes queued towards one peer before it is disconnected as a slow reader.
    outgoing_queue: int = 4 * 1024 * 1024
    auth_failures_per_minute: int = 10
    anonymous_sessions_per_minute: int = 600


@dataclass
class BoshSection:
    max_inactivity: float = 60.0
    max_wait: float = 120.0
    max_requests: int = 2


@dataclass
class MucSection:
    enabled: bool = True
    # Empty: conference.<server.domain>. Lobby rooms live at lobby.<server.domain>.
    domain: str = ""
    # Who may create a room: "admins" (only the JIDs in `admins`: the focus, which a guest asks
    # with the conference IQ), "authenticated" (also signed-in users; guests may still join
    # existing rooms) or "anyone" (a plain XEP-0045 service, no focus needed).
    create_rooms: str = "admins"
    # Bare JIDs that own every room (the focus). Empty: focus@auth.<server.domain>.
    admins: list[str] = field(default_factory=list)
    # Nicks only the JIDs in `admins` may take in a room (case-insensitive): the focus's own.
    reserved_nicks: list[str] = field(default_factory=lambda: ["focus"])
    # Messages a new occupant gets as discussion history (0 = none).
    history_size: int = 20
    # Default maximum occupants of a new room (0 = unlimited).
    max_occupants: int = 0
    # Waiting room for members-only rooms (Jitsi's "lobby"), at lobby.<server.domain>.
    lobby: bool = True
    # Only for `jitsi-py muc` (the MUC as an XEP-0114 component of another server): where that
    # server's component port is, and the secret it has for the MUC's domains.
    server_host: str = "127.0.0.1"
    server_port: int = 5347
    secret: str = ""


@dataclass
class TurnSection:
    # The TURN server (coturn) clients relay media through when their network drops UDP or
    # blocks the bridge's ports: its DNS name (or address) as clients reach it. Empty: no TURN
    # and no STUN is offered (XEP-0215 answers an empty list).
    host: str = ""
    # TURN and STUN over UDP and TCP (coturn's listening-port).
    port: int = 3478
    # TURN over TLS (coturn's tls-listening-port); 443 passes the strictest firewalls.
    tls_port: int = 5349
    # Offer turns: (TURN over TLS on tls_port) besides turn: over UDP and TCP. coturn needs a
    # certificate for `host` then.
    turns: bool = True
    # coturn's static-auth-secret: credentials handed to signed-in clients are derived from it
    # (coturn's REST API scheme). Required when host is set; at least 16 characters.
    secret: str = ""
    # Seconds a credential handed out stays valid.
    credential_lifetime: int = 86400


TURN_SECRET_MIN = 16


@dataclass
class XmppConfig:
    """The sections the XMPP server (and the MUC as a component) read."""

    server: ServerSection = field(default_factory=ServerSection)
    tls: TlsSection = field(default_factory=TlsSection)
    auth: AuthSection = field(default_factory=AuthSection)
    c2s: Listener = field(default_factory=lambda: Listener(port=5222))
    components: Listener = field(default_factory=lambda: Listener(port=5347))
    http: HttpListener = field(default_factory=lambda: HttpListener(port=8080))
    component: list[ComponentSecret] = field(default_factory=list)
    limits: LimitsSection = field(default_factory=LimitsSection)
    bosh: BoshSection = field(default_factory=BoshSection)
    muc: MucSection = field(default_factory=MucSection)
    turn: TurnSection = field(default_factory=TurnSection)
    path: str = ""  # the file it was read from ("" for built-in defaults): relative paths start there


def check(cfg: XmppConfig, base: Path, problems: Problems) -> None:
    if not 0 < cfg.muc.server_port <= 65535:
        problems.append(("muc.server_port", f"{cfg.muc.server_port} is out of range (allowed: 1..65535)"))
    for name in ("c2s", "components", "http"):
        check_port(problems, f"{name}.port", getattr(cfg, name).port)
    for i, origin in enumerate(cfg.http.allowed_origins):
        if origin != "*" and not ORIGIN_RE.match(origin):
            problems.append((f"http.allowed_origins[{i}]", f"{origin!r} is not an origin (allowed: "
                             "scheme://host[:port] such as \"https://meet.example.org\", no path; or \"*\")"))
    if cfg.server.log_level not in LOG_LEVELS:
        problems.append(("server.log_level", f"{cfg.server.log_level!r} is not allowed (allowed: {', '.join(LOG_LEVELS)})"))
    if not re.fullmatch(r"[a-z0-9]([a-z0-9.\-]*[a-z0-9])?", cfg.server.domain.lower()):
        problems.append(("server.domain", f"{cfg.server.domain!r} is not a valid domain name"))
    _check_auth(cfg, base, problems)
    if cfg.auth.scram_iterations < 4096:  # the least SCRAM (RFC 7677) and scramp accept
        problems.append(("auth.scram_iterations", f"{cfg.auth.scram_iterations} is too low (allowed: 4096 or more)"))
    for f in dataclasses.fields(cfg.limits):
        if getattr(cfg.limits, f.name) < 0:
            problems.append((f"limits.{f.name}", "must not be negative"))
    if cfg.limits.auth_timeout == 0:
        problems.append(("limits.auth_timeout", "must be more than 0 seconds"))
    for rate, burst in (("c2s_rate", "c2s_burst"), ("c2s_stanza_rate", "c2s_stanza_burst")):
        if getattr(cfg.limits, rate) > 0 and getattr(cfg.limits, burst) == 0:
            problems.append((f"limits.{burst}", f"must be more than 0 while limits.{rate} is on"))
    for key in ("cert", "key"):
        value = getattr(cfg.tls, key)
        if value and not (base / Path(value).expanduser()).is_file():
            problems.append((f"tls.{key}", f"file {value!r} does not exist"))
    if bool(cfg.tls.cert) != bool(cfg.tls.key):
        problems.append(("tls.cert" if not cfg.tls.cert else "tls.key", "set both tls.cert and tls.key, or neither"))
    seen: set[str] = set()
    for i, comp in enumerate(cfg.component):
        for key in ("domain", "secret"):
            if not getattr(comp, key):
                problems.append((f"component[{i}]", f"missing '{key}'"))
        if comp.domain and comp.domain.lower() in seen:
            problems.append((f"component[{i}].domain", f"{comp.domain!r} is configured twice"))
        seen.add(comp.domain.lower())
    if cfg.muc.create_rooms not in ("anyone", "authenticated", "admins"):
        problems.append(("muc.create_rooms", f"{cfg.muc.create_rooms!r} is not allowed (allowed: anyone, authenticated, admins)"))
    for key in ("history_size", "max_occupants"):
        if getattr(cfg.muc, key) < 0:
            problems.append((f"muc.{key}", "must not be negative"))
    if cfg.muc.domain and not re.fullmatch(r"[a-z0-9]([a-z0-9.\-]*[a-z0-9])?", cfg.muc.domain.lower()):
        problems.append(("muc.domain", f"{cfg.muc.domain!r} is not a valid domain name"))
    for i, jid in enumerate(cfg.muc.admins):
        if "@" not in jid or "/" in jid:
            problems.append((f"muc.admins[{i}]", f"{jid!r} is not a bare JID (user@domain)"))
    for i, nick in enumerate(cfg.muc.reserved_nicks):
        if not nick.strip() or len(nick) > 1023:
            problems.append((f"muc.reserved_nicks[{i}]", f"{nick!r} is not a nick (1-1023 characters, not only spaces)"))
    check_turn(cfg.turn, problems)


def check_turn(turn: TurnSection, problems: Problems) -> None:
    for key in ("port", "tls_port"):
        check_port(problems, f"turn.{key}", getattr(turn, key), allow_zero=False)
    if turn.credential_lifetime <= 0:
        problems.append(("turn.credential_lifetime", f"{turn.credential_lifetime} must be more than 0 seconds"))
    if not turn.host:
        return
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?|\[?[0-9A-Fa-f:.]+\]?", turn.host):
        problems.append(("turn.host", f"{turn.host!r} is not a host name or IP address"))
    if not turn.secret:
        problems.append(("turn.secret", "required when turn.host is set: coturn's static-auth-secret "
                         "(`jitsi-py turn-config` prints a matching coturn config)"))
    elif len(turn.secret) < TURN_SECRET_MIN:
        problems.append(("turn.secret", f"too short ({len(turn.secret)} characters; allowed: "
                         f"{TURN_SECRET_MIN} or more)"))
    if turn.turns and turn.tls_port == turn.port:
        problems.append(("turn.tls_port", f"{turn.tls_port} is turn.port too; TLS needs a port of its own"))


def _check_auth(cfg: XmppConfig, base: Path, problems: Problems) -> None:
    auth = cfg.auth
    if auth.mode not in AUTH_MODES:
        problems.append(("auth.mode", f"{auth.mode!r} is not allowed (allowed: {', '.join(AUTH_MODES)})"))
        return
    if auth.guest_domain and not re.fullmatch(r"[a-z0-9]([a-z0-9.\-]*[a-z0-9])?", auth.guest_domain.lower()):
        problems.append(("auth.guest_domain", f"{auth.guest_domain!r} is not a valid domain name"))
    if auth.mode != "open" and auth.guest_domain.lower() == cfg.server.domain.lower():
        problems.append(("auth.guest_domain", f"must differ from server.domain in mode {auth.mode!r} (guests "
                         "sign in on a domain of their own; empty: guest.<domain> in mode \"secure\")"))
    if auth.jwt_algorithm not in JWT_ALGORITHMS:
        problems.append(("auth.jwt_algorithm", f"{auth.jwt_algorithm!r} is not allowed (allowed: "
                         f"{', '.join(JWT_ALGORITHMS)})"))
        return
    if auth.mode != "token":
        return
    if auth.jwt_algorithm == "HS256":
        if not auth.jwt_secret:
            problems.append(("auth.jwt_secret", "must be set in mode \"token\" with jwt_algorithm \"HS256\" "
                             f"(a shared secret of {MIN_JWT_SECRET} bytes or more)"))
        elif len(auth.jwt_secret.encode()) < MIN_JWT_SECRET:
            problems.append(("auth.jwt_secret", f"is {len(auth.jwt_secret.encode())} bytes, too short "
                             f"(allowed: {MIN_JWT_SECRET} bytes or more)"))
        if auth.jwt_public_key or auth.jwt_key_url:
            problems.append(("auth.jwt_public_key" if auth.jwt_public_key else "auth.jwt_key_url",
                             "is for RS256/ES256; HS256 uses jwt_secret"))
        return
    if auth.jwt_secret:
        problems.append(("auth.jwt_secret", f"is for HS256; {auth.jwt_algorithm} uses jwt_public_key"))
    if auth.jwt_key_url:
        from .tokens import key_url_problem
        problem = key_url_problem(auth.jwt_key_url)
        if problem:
            problems.append(("auth.jwt_key_url", problem))
        if auth.jwt_public_key:
            problems.append(("auth.jwt_public_key", "set jwt_public_key or jwt_key_url, not both"))
        return
    if not auth.jwt_public_key:
        problems.append(("auth.jwt_public_key", f"must be set in mode \"token\" with jwt_algorithm "
                         f"{auth.jwt_algorithm!r} (a PEM public key file, or jwt_key_url)"))
        return
    from .tokens import TokenError, load_public_key
    try:
        load_public_key(base / Path(auth.jwt_public_key).expanduser(), auth.jwt_algorithm)
    except TokenError as exc:
        problems.append(("auth.jwt_public_key", str(exc)))


def data_dir(cfg: XmppConfig) -> Path:
    """Where the user database and generated certificates live; created 0700 if missing."""
    if cfg.server.data_dir:
        path = Path(cfg.server.data_dir).expanduser()
        if not path.is_absolute() and cfg.path:
            path = Path(cfg.path).resolve().parent / path
    else:
        import platformdirs
        path = Path(platformdirs.user_data_dir("jitsi-py"))
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
