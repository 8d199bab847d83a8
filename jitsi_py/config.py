"""The stack's configuration: one TOML file an admin edits, parsed into typed sections.

Every component reads only the section it needs, so a bridge or focus started on its own
(`python -m bridge --config FILE`) takes the same file. Defaults are the embedded all-in-one
values (127.0.0.1, domain `localhost`), so an empty file or no file at all is a working config.

Errors name the file, the line and the dotted key, and say what is allowed: admins edit this by
hand, and a traceback tells them nothing.
"""
from __future__ import annotations

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
class ComponentSecret:
    domain: str = ""
    secret: str = ""


@dataclass
class LimitsSection:
    stanza_size_preauth: int = 10_000
    stanza_size: int = 256 * 1024
    component_stanza_size: int = 512 * 1024
    max_depth: int = 32
    auth_timeout: float = 300.0
    # Bytes/s a c2s session may send before reads are paused; 0 = unlimited.
    c2s_rate: int = 0
    # Stanzas/s a c2s session may send; above 10x this within a second the stream is closed.
    c2s_stanza_rate: int = 0
    max_connections: int = 10_000
    connections_per_ip: int = 200
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
class Config:
    """The whole file. `path` is where it was read from ("" for built-in defaults)."""

    server: ServerSection = field(default_factory=ServerSection)
    tls: TlsSection = field(default_factory=TlsSection)
    auth: AuthSection = field(default_factory=AuthSection)
    c2s: Listener = field(default_factory=lambda: Listener(port=5222))
    components: Listener = field(default_factory=lambda: Listener(port=5347))
    http: Listener = field(default_factory=lambda: Listener(port=8080))
    component: list[ComponentSecret] = field(default_factory=list)
    limits: LimitsSection = field(default_factory=LimitsSection)
    bosh: BoshSection = field(default_factory=BoshSection)
    path: str = ""
