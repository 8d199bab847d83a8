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

from daemons import wait_listening
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
    def __init__(self, tmp: Path, cfg: Config, cert: Path, key: Path, *, address: str = "127.0.0.1",
                 netns: str | None = None) -> None:
        """`cfg.turn` gets host `address` and free ports; `cfg.turn.secret` must be set.
        `cert`/`key`: coturn's TLS certificate. With `netns`, coturn runs in that network
        namespace (fresh: the standard ports are free there)."""
        self.tmp = tmp
        self.cfg = cfg
        self.cert, self.key = cert, key
        self.address, self.netns = address, netns
        cfg.turn.host = address
        if netns is None:
            cfg.turn.port, cfg.turn.tls_port = free_port(), free_port()
            self.relay_ports = free_udp_range()
        else:
            cfg.turn.port, cfg.turn.tls_port = 3478, 5349
            self.relay_ports = (49152, 49352)
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
listening-ip={self.address}
relay-ip={self.address}
allow-loopback-peers
log-file={self.tmp}/turn.log
pidfile={self.tmp}/turn.pid
userdb={self.tmp}/turndb
"""

    async def start(self, timeout: float = 15.0) -> None:
        path = self.tmp / "turnserver.conf"
        path.write_text(self.config_text())
        self.console = open(self.tmp / "console.log", "wb")
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.proc = subprocess.Popen(prefix + ["turnserver", "-c", str(path)], stdout=self.console,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.tmp)
        ports = [self.cfg.turn.port] + ([self.cfg.turn.tls_port] if self.cfg.turn.turns else [])
        if self.netns:
            await wait_port_in_netns(self.netns, self.address, ports, timeout)
            return
        await wait_listening(self.proc, "turnserver", ports, timeout, self.log_tail)

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


async def wait_port_in_netns(netns: str, host: str, ports: list[int], timeout: float = 15.0) -> None:
    """Wait until every port accepts TCP inside `netns` (one short-lived helper process)."""
    import sys
    script = ("import socket, sys, time\n"
              "deadline = time.time() + float(sys.argv[2])\n"
              "for port in map(int, sys.argv[3:]):\n"
              "    while True:\n"
              "        try:\n"
              "            socket.create_connection((sys.argv[1], port), 1).close(); break\n"
              "        except OSError:\n"
              "            if time.time() > deadline: sys.exit(f'{sys.argv[1]}:{port} not listening')\n"
              "            time.sleep(0.05)\n")
    proc = await asyncio.create_subprocess_exec("ip", "netns", "exec", netns, sys.executable, "-c", script, host,
                                                str(timeout), *map(str, ports), stderr=subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"in {netns}: {err.decode(errors='replace').strip()}")
