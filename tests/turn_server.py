"""A throw-away coturn (Debian package `coturn`) on 127.0.0.1 free ports, for the TURN tests.

Its configuration is what `jitsi-py turn-config` prints for the test's config, plus only what a
loopback test needs: listening and relaying on 127.0.0.1 (so loopback peers must be allowed),
files in the test's directory instead of syslog and /var/lib/turn.
"""
from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from jitsi_py.config import Config
from jitsi_py.turn import coturn_config


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for both TCP and UDP (coturn's listening port serves both)."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue


def free_udp_range(size: int = 200) -> tuple[int, int]:
    """A run of UDP ports that are free now, for coturn's relay allocations."""
    import random
    for _ in range(50):
        start = random.randrange(30000, 60000 - size)
        socks = []
        try:
            for port in range(start, start + size, 20):  # a sample is enough to avoid busy areas
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return start, start + size - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free UDP port range for coturn")


class Coturn:
    def __init__(self, tmp: Path, cfg: Config, cert: Path, key: Path) -> None:
        """`cfg.turn` gets host 127.0.0.1 and free ports; `cfg.turn.secret` must be set.
        `cert`/`key`: coturn's TLS certificate."""
        self.tmp = tmp
        self.cfg = cfg
        self.cert, self.key = cert, key
        cfg.turn.host = "127.0.0.1"
        cfg.turn.port = free_port()
        cfg.turn.tls_port = free_port()
        self.relay_ports = free_udp_range()
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("turnserver") is not None

    def config_text(self) -> str:
        text = coturn_config(self.cfg, self.relay_ports)
        lines = [line for line in text.splitlines() if line not in ("syslog",)]
        lines = [f"cert={self.cert}" if line.startswith("cert=") else f"pkey={self.key}" if line.startswith("pkey=")
                 else line for line in lines]
        text = "\n".join(lines)
        return text + f"""
# test-only additions (tests/turn_server.py)
listening-ip=127.0.0.1
relay-ip=127.0.0.1
allow-loopback-peers
log-file={self.tmp}/turn.log
pidfile={self.tmp}/turn.pid
userdb={self.tmp}/turndb
"""

    async def start(self, timeout: float = 15.0) -> None:
        path = self.tmp / "turnserver.conf"
        path.write_text(self.config_text())
        self.console = open(self.tmp / "console.log", "wb")
        self.proc = subprocess.Popen(["turnserver", "-c", str(path)], stdout=self.console,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.tmp)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        ports = [self.cfg.turn.port] + ([self.cfg.turn.tls_port] if self.cfg.turn.turns else [])
        for port in ports:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"turnserver exited ({self.proc.returncode}): {self.log_tail()}")
                try:
                    _, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
                    w.close()
                    break
                except (OSError, asyncio.TimeoutError):
                    if loop.time() > deadline:
                        raise RuntimeError(f"turnserver not listening on {port}: {self.log_tail()}")
                    await asyncio.sleep(0.05)

    def log_tail(self, n: int = 3000) -> str:
        out = ""
        for name in ("console.log", "turn.log"):
            for p in sorted(self.tmp.glob(name.replace(".log", "*.log"))):
                out += f"--- {p.name}\n" + p.read_text(errors="replace")[-n:]
        return out

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 10)
        except asyncio.TimeoutError:
            self.proc.kill()
            self.proc.wait()
        self.console.close()
