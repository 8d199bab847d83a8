"""A throw-away Prosody (Debian package) on loopback, for tests that attach our components to it."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from daemons import wait_listening

CONFIG = """\
-- written by tests/prosody_server.py: loopback only, deleted after the test
run_as_root = true
pidfile = "{tmp}/prosody.pid"
data_path = "{tmp}/data"
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
component_ports = {{ {component} }}
component_interfaces = {{ "127.0.0.1" }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
storage = "memory"
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping"; "posix" }}
modules_disabled = {{ "s2s"; "offline" }}
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{tmp}/prosody.log" }} }}
ssl = {{ key = "{key}"; certificate = "{cert}" }}

VirtualHost "localhost"
    authentication = "anonymous"

{components}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prosody:
    def __init__(self, tmp: Path, cert: Path, key: Path, components: dict[str, str]) -> None:
        self.tmp = tmp
        self.cert, self.key = cert, key
        self.components = components
        self.c2s_port = free_port()
        self.component_port = free_port()
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("prosody") is not None

    async def start(self, timeout: float = 20.0) -> None:
        (self.tmp / "data").mkdir(exist_ok=True)
        comps = "\n".join(f'Component "{d}"\n    component_secret = "{s}"\n' for d, s in self.components.items())
        cfg = self.tmp / "prosody.cfg.lua"
        cfg.write_text(CONFIG.format(tmp=self.tmp, c2s=self.c2s_port, component=self.component_port,
                                     cert=self.cert, key=self.key, components=comps))
        self.console = open(self.tmp / "console.log", "wb")
        self.proc = subprocess.Popen(["prosody", "-F", "--config", str(cfg)], stdout=self.console,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.tmp,
                                     env=dict(os.environ, PROSODY_CONFIG=str(cfg)))
        await wait_listening(self.proc, "prosody", [self.c2s_port, self.component_port], timeout, self.log_tail)

    def log_tail(self) -> str:
        out = ""
        for name in ("console.log", "prosody.log"):
            p = self.tmp / name
            if p.exists():
                out += p.read_text(errors="replace")[-3000:]
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "console"):
            self.console.close()
