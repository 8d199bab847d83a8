"""Accounts the stack's own components log in with (focus, bridge), made on first start.

Their passwords are random, kept in the data directory (0600) and never shown: an admin who runs
a component elsewhere sets its own account with `jitsi-py adduser` and puts it in that config.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from xmpp_plugins.users import UserStore

FILE = "internal-accounts.json"


def ensure_internal_accounts(users: UserStore, data_dir: Path, domain: str,
                             names: tuple[str, ...] = ("focus", "jvb")) -> dict[str, str]:
    """name -> password for name@auth.<domain>; created or repaired as needed."""
    path = Path(data_dir) / FILE
    try:
        stored = json.loads(path.read_text())
        if not isinstance(stored, dict):
            stored = {}
    except (OSError, ValueError):
        stored = {}
    host = f"auth.{domain}"
    changed = False
    for name in names:
        password = stored.get(name)
        if not isinstance(password, str) or not password:
            password = secrets.token_urlsafe(24)
            stored[name] = password
            changed = True
        if not users.check_password(name, host, password):
            if users.exists(name, host):
                users.set_password(name, host, password)
            else:
                users.add(name, host, password)
    if changed:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(stored, fh)
    return {name: stored[name] for name in names}
