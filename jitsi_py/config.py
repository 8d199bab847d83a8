"""The stack's configuration: one TOML file an admin edits, parsed into typed sections.

Every component reads only the section it needs, so a bridge or focus started on its own
(`python -m bridge --config FILE`) takes the same file. Defaults are the embedded all-in-one
values (127.0.0.1, domain `localhost`), so an empty file or no file at all is a working config.

Errors name the file, the line and the dotted key, and say what is allowed: admins edit this by
hand, and a traceback tells them nothing.
"""
from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import tomllib
import typing
from pathlib import Path
from dataclasses import dataclass, field


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


@dataclass
class AuthSection:
    anonymous: bool = True
    # Domain given to SASL ANONYMOUS guests; empty means the main domain.
    guest_domain: str = ""
    # PLAIN over an unencrypted stream: never, except from loopback addresses when this is true.
    allow_plain_on_loopback: bool = True
    # c2s refuses SASL before STARTTLS unless the peer is on loopback and this is false.
    require_encryption: bool = False
    scram_iterations: int = 10000


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
class BridgeSection:
    enabled: bool = True
    # This bridge's name: its nick in the brewery room and part of its bridge-channel URLs.
    id: str = "jvb1"
    # Address for ICE host candidates (what participants send media to).
    media_address: str = "127.0.0.1"
    # The address participants reach media_address on when the machine is behind NAT (a cloud
    # VM's public IP): advertised as a second candidate on the same port. Empty: none.
    public_address: str = ""
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


@dataclass
class FocusSection:
    enabled: bool = True
    # Participants needed before media sessions start (Jitsi's min-participants).
    min_participants: int = 2
    # Seconds to wait for a bridge's COLIBRI2 answer before counting the bridge as failed.
    colibri_timeout: float = 10.0
    # Participants after the first N join with their microphone / camera muted (0: never).
    start_audio_muted: int = 0
    start_video_muted: int = 0
    # Cascading: a conference whose bridges all hold this many of its participants (0: no
    # limit), or report at least this stress level, continues on one more bridge.
    max_bridge_participants: int = 0
    max_bridge_stress: float = 0.8
    # Conference requests one client may make per minute (a flood of rooms is refused).
    conference_requests_per_minute: int = 30
    # Seconds the focus stays in a room nobody has joined (or everybody left) before leaving it.
    empty_room_timeout: float = 30.0
    # Most rooms the focus holds open at once for requests nobody has joined yet.
    max_waiting_rooms: int = 200
    # For a separately run focus (`python -m jicofo_py`): c2s address and account
    # (focus@auth.<domain>), and the component port and secret for focus.<domain>.
    xmpp_host: str = "127.0.0.1"
    xmpp_port: int = 5222
    password: str = ""
    component_host: str = "127.0.0.1"
    component_port: int = 5347
    component_secret: str = ""


@dataclass
class Config:
    """The whole file. `path` is where it was read from ("" for built-in defaults)."""

    server: ServerSection = field(default_factory=ServerSection)
    tls: TlsSection = field(default_factory=TlsSection)
    auth: AuthSection = field(default_factory=AuthSection)
    c2s: Listener = field(default_factory=lambda: Listener(port=5222))
    components: Listener = field(default_factory=lambda: Listener(port=5347))
    http: HttpListener = field(default_factory=lambda: HttpListener(port=8080))
    # Stats and metrics for the operator (bridge /colibri/stats, /metrics, XMPP /xmpp/stats).
    admin: Listener = field(default_factory=lambda: Listener(port=8088))
    component: list[ComponentSecret] = field(default_factory=list)
    limits: LimitsSection = field(default_factory=LimitsSection)
    bosh: BoshSection = field(default_factory=BoshSection)
    muc: MucSection = field(default_factory=MucSection)
    bridge: BridgeSection = field(default_factory=BridgeSection)
    focus: FocusSection = field(default_factory=FocusSection)
    path: str = ""


# ---- loading and validation ----------------------------------------------------------------

LOG_LEVELS = ("debug", "info", "warning", "error")
# What a browser sends as Origin: scheme, host (name, IPv4 or [IPv6]) and an optional port.
ORIGIN_RE = re.compile(r"^https?://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$")


class ConfigError(Exception):
    """All problems found in one file, one line each: `FILE:LINE: key 'a.b': what is wrong`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _KeyLines:
    """Line numbers of keys in a hand-written TOML file (tomllib gives none)."""

    _table = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\s\"]+?)\s*\]\]?\s*(#.*)?$")
    _key = re.compile(r"^\s*([A-Za-z0-9_\-\"]+(?:\s*\.\s*[A-Za-z0-9_\-\"]+)*)\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        table = ""
        counts: dict[str, int] = {}
        for number, line in enumerate(text.splitlines(), 1):
            m = self._table.match(line)
            if m:
                name = m.group(2).replace('"', "").replace(" ", "")
                if m.group(1) == "[[":
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    name = f"{name}[{index}]"
                table = name
                self.lines.setdefault(table, number)
                continue
            m = self._key.match(line)
            if m:
                key = m.group(1).replace('"', "").replace(" ", "")
                self.lines.setdefault(f"{table}.{key}" if table else key, number)

    def line(self, dotted: str) -> int:
        while dotted:
            if dotted in self.lines:
                return self.lines[dotted]
            plain = re.sub(r"\[\d+\]$", "", dotted)  # an array's entry: the array's line
            if plain != dotted and plain in self.lines:
                return self.lines[plain]
            dotted = dotted.rpartition(".")[0]
        return 1


def _type_name(tp: object) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(tp, str(tp))  # type: ignore[arg-type]


def _fill(obj: object, data: dict, prefix: str, problems: list[tuple[str, str]]) -> None:
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj) if f.name != "path"]  # type: ignore[arg-type]
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f" (allowed: {', '.join(names)})"
            problems.append((dotted, f"unknown {'section' if isinstance(value, dict) else 'key'}{hint}"))
            continue
        tp = hints[key]
        origin = typing.get_origin(tp)
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                problems.append((dotted, f"must be a table [{dotted}]"))
                continue
            _fill(getattr(obj, key), value, dotted + ".", problems)
        elif origin is list and typing.get_args(tp)[0] is str:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append((dotted, "must be an array of strings"))
                continue
            setattr(obj, key, list(value))
        elif origin is list:
            (item_tp,) = typing.get_args(tp)
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                problems.append((dotted, f"must be an array of tables [[{dotted}]]"))
                continue
            items = []
            for i, entry in enumerate(value):
                item = item_tp()
                _fill(item, entry, f"{dotted}[{i}].", problems)
                items.append(item)
            setattr(obj, key, items)
        else:
            ok = (isinstance(value, bool) if tp is bool else
                  isinstance(value, int) and not isinstance(value, bool) if tp is int else
                  isinstance(value, (int, float)) and not isinstance(value, bool) if tp is float else
                  isinstance(value, tp))  # type: ignore[arg-type]
            if not ok:
                problems.append((dotted, f"{value!r} is not {_type_name(tp)}"))
                continue
            setattr(obj, key, float(value) if tp is float else value)


def _check(cfg: "Config", base: Path, problems: list[tuple[str, str]]) -> None:
    b = cfg.bridge
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
    if (b.port_min == 0) != (b.port_max == 0) or not 0 <= b.port_min <= b.port_max <= 65535:
        problems.append(("bridge.port_min", f"{b.port_min}..{b.port_max} is not a port range "
                                            "(1..65535, port_min <= port_max; both 0: any free port)"))
    if b.websocket_base and not re.match(r"wss?://", b.websocket_base):
        problems.append(("bridge.websocket_base", f"{b.websocket_base!r} must start with ws:// or wss://"))
    f = cfg.focus
    if f.min_participants < 1:
        problems.append(("focus.min_participants", f"{f.min_participants} is too low (allowed: 1 or more)"))
    if f.colibri_timeout <= 0:
        problems.append(("focus.colibri_timeout", "must be more than 0 seconds"))
    if f.max_bridge_participants < 0:
        problems.append(("focus.max_bridge_participants", "must be 0 (no limit) or more"))
    if f.conference_requests_per_minute < 1:
        problems.append(("focus.conference_requests_per_minute", "must be 1 or more"))
    if f.empty_room_timeout <= 0:
        problems.append(("focus.empty_room_timeout", "must be more than 0 seconds"))
    if f.max_waiting_rooms < 1:
        problems.append(("focus.max_waiting_rooms", "must be 1 or more"))
    if not 0 < f.max_bridge_stress:
        problems.append(("focus.max_bridge_stress", "must be more than 0 (1.0: a bridge's full capacity)"))
    for key in ("xmpp_port", "component_port"):
        if not 0 < getattr(f, key) <= 65535:
            problems.append((f"focus.{key}", f"{getattr(f, key)} is out of range (allowed: 1..65535)"))
    if not 0 < cfg.muc.server_port <= 65535:
        problems.append(("muc.server_port", f"{cfg.muc.server_port} is out of range (allowed: 1..65535)"))
    for name in ("c2s", "components", "http", "admin"):
        port = getattr(cfg, name).port
        if not 0 <= port <= 65535:
            problems.append((f"{name}.port", f"{port} is out of range (allowed: 0..65535; 0 picks a free port)"))
    for i, origin in enumerate(cfg.http.allowed_origins):
        if origin != "*" and not ORIGIN_RE.match(origin):
            problems.append((f"http.allowed_origins[{i}]", f"{origin!r} is not an origin (allowed: "
                             "scheme://host[:port] such as \"https://meet.example.org\", no path; or \"*\")"))
    if cfg.server.log_level not in LOG_LEVELS:
        problems.append(("server.log_level", f"{cfg.server.log_level!r} is not allowed (allowed: {', '.join(LOG_LEVELS)})"))
    if not re.fullmatch(r"[a-z0-9]([a-z0-9.\-]*[a-z0-9])?", cfg.server.domain.lower()):
        problems.append(("server.domain", f"{cfg.server.domain!r} is not a valid domain name"))
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
    for extra in _extra_checks:
        extra(cfg, base, problems)


_extra_checks: list[typing.Callable[["Config", Path, list[tuple[str, str]]], None]] = []


def load_config(path: str | os.PathLike | None) -> "Config":
    """The config from `path` (None: the built-in defaults). Raises ConfigError."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        where = f"{path}:{m.group(1)}" if m else str(path)
        raise ConfigError([f"{where}: TOML syntax error: {str(exc).split(' (at line')[0]}"]) from None
    cfg = Config(path=str(path))
    problems: list[tuple[str, str]] = []
    _fill(cfg, data, "", problems)
    _check(cfg, path.resolve().parent, problems)
    if problems:
        lines = _KeyLines(text)
        raise ConfigError([f"{path}:{lines.line(key)}: key '{key}': {what}" for key, what in problems])
    return cfg


def data_dir(cfg: "Config") -> Path:
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
