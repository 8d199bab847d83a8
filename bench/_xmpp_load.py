"""Shared pieces of the XMPP load benchmarks (bench/xmpp_routing.py, bench/muc_join.py).

- process accounting: CPU seconds (utime+stime) and RSS of a server process from /proc;
- the two servers under test, each started in a process of its own on loopback:
  `OurServer` (bench/_our_server.py, prints `READY host port loop`, stops on SIGTERM) and
  `ProsodyServer` (/usr/bin/prosody with a throw-away loopback-only config in a temporary
  directory; `extra_config` is appended to it, e.g. a MUC component);
- `Conn`: one raw asyncio XMPP c2s connection speaking just enough XMPP (stream header, SASL
  ANONYMOUS, stream restart, bind, initial presence); benchmarks subclass it with their own
  read loop, which only scans incoming bytes for a few markers;
- small report helpers.
"""
from __future__ import annotations

import asyncio
import datetime
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "127.0.0.1"
DOMAIN = "localhost"
CLK_TCK = os.sysconf("SC_CLK_TCK")

STREAM_OPEN = (
    "<?xml version='1.0'?><stream:stream to='%s' version='1.0' xml:lang='en' "
    "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>" % DOMAIN
).encode()
AUTH = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>"
BIND = (b"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        b"<resource>bench</resource></bind></iq>")
PRESENCE = b"<presence/>"
STREAM_CLOSE = b"</stream:stream>"


class BenchError(Exception):
    pass


# ---- process accounting -------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (clock-tick resolution)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    # the command name (field 2) may contain spaces: split after its closing parenthesis
    rest = data[data.rindex(b")") + 2:].split()
    utime, stime = int(rest[11]), int(rest[12])  # fields 14 and 15 of stat(5)
    return (utime + stime) / CLK_TCK


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with status {proc.returncode} before listening")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{host}:{port} did not accept connections within {timeout:.0f}s")


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# ---- servers ------------------------------------------------------------------------------------

class OurServer:
    name = "ours"

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.host, self.port, self.detail = HOST, 0, ""

    def start(self, timeout: float) -> None:
        self.errlog = open(os.path.join(self.workdir, "ours.stderr"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "_our_server.py"), "--host", HOST, "--port", "0"],
            stdout=subprocess.PIPE, stderr=self.errlog, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode().split() if ready else []
        if len(line) != 4 or line[0] != "READY":
            stop_process(self.proc)
            raise BenchError(f"our server did not start: {line!r}; stderr: {self.stderr_tail()}")
        self.host, self.port, self.detail = line[1], int(line[2]), f"python {sys.version.split()[0]}, {line[3]}"

    def stderr_tail(self) -> str:
        try:
            with open(os.path.join(self.workdir, "ours.stderr"), "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        self.errlog.close()


def write_self_signed(key_path: str, cert_path: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN)]), critical=False)
            .sign(key, hashes.SHA256()))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


PROSODY_CONFIG = """\
-- written by bench/_xmpp_load.py for {script}: loopback-only, throw-away
-- foreground: started with -F (the 'daemonize' option is deprecated in 0.12)
run_as_root = true
pidfile = "{tmp}/prosody.pid"
data_path = "{tmp}/data"
certificates = "{tmp}"
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
s2s_direct_tls_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
component_ports = {{ }}
c2s_require_encryption = false
s2s_require_encryption = false
allow_unencrypted_plain_auth = true
storage = "memory"
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping"; "posix" }}
modules_disabled = {{ "s2s"; "offline" }}
log = {{ {{ levels = {{ min = "warn" }}, to = "file", filename = "{tmp}/prosody.log" }} }}
ssl = {{ key = "{tmp}/localhost.key"; certificate = "{tmp}/localhost.crt" }}

VirtualHost "{domain}"
    authentication = "anonymous"
{extra}"""


class ProsodyServer:
    name = "prosody"

    def __init__(self, workdir: str, binary: str, extra_config: str = "", script: str = "") -> None:
        self.workdir = os.path.join(workdir, "prosody")
        self.binary = binary
        self.extra_config = extra_config  # appended to the config file (after the VirtualHost)
        self.script = script or os.path.basename(sys.argv[0])
        self.proc: subprocess.Popen | None = None
        self.host, self.port, self.detail = HOST, 0, ""

    def start(self, timeout: float) -> None:
        tmp = self.workdir
        os.makedirs(os.path.join(tmp, "data"), exist_ok=True)
        write_self_signed(os.path.join(tmp, "localhost.key"), os.path.join(tmp, "localhost.crt"))
        self.port = free_port()
        cfg = os.path.join(tmp, "prosody.cfg.lua")
        with open(cfg, "w") as f:
            f.write(PROSODY_CONFIG.format(tmp=tmp, port=self.port, domain=DOMAIN, script=self.script,
                                          extra=self.extra_config))
        self.out = open(os.path.join(tmp, "prosody.console"), "wb")
        env = dict(os.environ, PROSODY_CONFIG=cfg)
        self.proc = subprocess.Popen([self.binary, "-F", "--config", cfg], stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=tmp)
        try:
            wait_port(HOST, self.port, self.proc, timeout)
        except BenchError as exc:
            stop_process(self.proc)
            raise BenchError(f"prosody: {exc}; log: {self.log_tail()}") from None
        self.detail = prosody_version(self.binary)

    def log_tail(self) -> str:
        text = ""
        for name in ("prosody.console", "prosody.log"):
            try:
                with open(os.path.join(self.workdir, name), "rb") as f:
                    text += f.read()[-2000:].decode(errors="replace")
            except OSError:
                pass
        return text

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.out.close()


def prosody_version(binary: str) -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "prosody"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        return f"prosody {out}" if out else "prosody"
    except (OSError, subprocess.SubprocessError):
        return "prosody"


# ---- load client --------------------------------------------------------------------------------

class Conn:
    """One raw XMPP c2s connection: connect() signs in; subclasses read what follows."""

    __slots__ = ("idx", "reader", "writer", "jid", "buf")

    def __init__(self, idx: int) -> None:
        self.idx = idx
        self.jid = ""
        self.buf = b""

    async def _until(self, *markers: bytes) -> bytes:
        """Read until one of `markers` is in the buffer; return and drop everything up to its end."""
        while True:
            for m in markers:
                i = self.buf.find(m)
                if i >= 0:
                    out, self.buf = self.buf[:i + len(m)], self.buf[i + len(m):]
                    return out
            if b"<stream:error" in self.buf or b"<failure" in self.buf:
                raise BenchError(f"client {self.idx}: server said {self.buf[:500]!r}")
            data = await self.reader.read(65536)
            if not data:
                raise BenchError(f"client {self.idx}: connection closed; buffer {self.buf[:500]!r}")
            self.buf += data

    async def connect(self, host: str, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection(host, port)
        w = self.writer
        w.write(STREAM_OPEN)
        await self._until(b"</stream:features>")
        w.write(AUTH)
        await self._until(b"<success")
        await self._until(b">")  # rest of the <success .../> or <success ...>...</success> start tag
        w.write(STREAM_OPEN)
        await self._until(b"</stream:features>")
        w.write(BIND)
        reply = await self._until(b"</iq>")
        i, j = reply.find(b"<jid>"), reply.find(b"</jid>")
        if i < 0 or j < 0:
            raise BenchError(f"client {self.idx}: bind failed: {reply[:500]!r}")
        self.jid = reply[i + 5:j].decode()
        w.write(PRESENCE)
        await w.drain()

    async def close(self) -> None:
        try:
            self.writer.write(STREAM_CLOSE)
            await asyncio.wait_for(self.writer.drain(), 2)
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except (OSError, asyncio.TimeoutError, ConnectionError):
            pass


# ---- report -------------------------------------------------------------------------------------

def fmt(v: float, digits: int) -> str:
    return "n/a" if v != v else f"{v:,.{digits}f}"


def median(vals) -> float:
    vals = [v for v in vals if v == v]
    return statistics.median(vals) if vals else float("nan")


def md_table(head: list[str], body: list[list[str]], left: int = 1) -> str:
    """A Markdown table; the first `left` columns left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(widths[i]) if i < left else c.rjust(widths[i])
                                 for i, c in enumerate(cells)) + " |"
    sep = "|" + "|".join("-" * (w + 1) + ("-" if i < left else ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), sep] + [line(r) for r in body])


def srv_log(srv) -> str:
    return srv.stderr_tail() if isinstance(srv, OurServer) else srv.log_tail()


def install_uvloop(disabled: bool) -> str:
    """Use uvloop for the load client when available; returns the loop's name."""
    if disabled:
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def default_prosody() -> str:
    return shutil.which("prosody") or "/usr/bin/prosody"


def prosody_usable(path: str) -> bool:
    return os.path.exists(path) and os.access(path, os.X_OK)
