"""The stack's configuration: one TOML file an admin edits, parsed into typed sections.

Each component owns its sections and their checks (`xmpp_plugins/config.py` for the server and
MUC, `bridge/config.py`, `jicofo_py/config.py`); this module puts them together into the one
file the all-in-one stack and every separately run component take, and adds what only the
stack has (the admin listener). Defaults are the embedded all-in-one values (127.0.0.1, domain
`localhost`), so an empty file or no file at all is a working config.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bridge.config import BridgeSection
from bridge.config import check as check_bridge
from jicofo_py.config import FocusSection
from jicofo_py.config import check as check_focus
from jitsi_base.config import ConfigError, Problems, check_port, load
from xmpp_plugins.config import (LOG_LEVELS, AuthSection, BoshSection, ComponentSecret, HttpListener, LimitsSection,
                                 Listener, MucSection, ServerSection, TlsSection, TurnSection, XmppConfig,
                                 data_dir)
from xmpp_plugins.config import check as check_xmpp
from xmpp_plugins.config import guest_domain, guests_wait_for_host

__all__ = ["Config", "ConfigError", "load_config", "data_dir", "focus_auth", "guest_domain", "LOG_LEVELS", "AuthSection", "BoshSection",
           "BridgeSection", "ComponentSecret", "FocusSection", "HttpListener", "LimitsSection", "Listener",
           "MucSection", "ServerSection", "TlsSection", "TurnSection"]


@dataclass
class Config(XmppConfig):
    """The whole file. `path` is where it was read from ("" for built-in defaults)."""

    # Stats and metrics for the operator (bridge /colibri/stats, /metrics, XMPP /xmpp/stats).
    admin: Listener = field(default_factory=lambda: Listener(port=8088))
    bridge: BridgeSection = field(default_factory=BridgeSection)
    focus: FocusSection = field(default_factory=FocusSection)


def _check(cfg: Config, base: Path, problems: Problems) -> None:
    check_bridge(cfg.bridge, problems)
    check_focus(cfg.focus, problems)
    check_xmpp(cfg, base, problems)
    check_port(problems, "admin.port", cfg.admin.port)


def focus_auth(cfg: XmppConfig) -> dict:
    """The focus's share of `[auth]` (Focus keyword arguments): whose requests may open a
    meeting, whether clients are told authentication is on, and whether the first participant
    becomes owner (not in mode "token", where the token's moderator claim says who is)."""
    return dict(guest_domain=guest_domain(cfg) if guests_wait_for_host(cfg) else "",
                authentication=cfg.auth.mode != "open", auto_owner=cfg.auth.mode != "token")


def load_config(path: str | os.PathLike | None) -> Config:
    """The config from `path` (None: the built-in defaults). Raises ConfigError."""
    if path is None:
        return Config()
    return load(path, lambda p: Config(path=p), _check)
