"""Shared fixtures: a real embedded server on 127.0.0.1 free ports, real slixmpp clients."""
from __future__ import annotations

import asyncio
import os
import re
import ssl
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
import slixmpp

sys.path.insert(0, os.path.dirname(__file__))

from jitsi_py.config import Config  # noqa: E402
from xmpp_plugins.server import Server  # noqa: E402
from xmpp_plugins.tls import ensure_certificate, server_ssl_context  # noqa: E402
from xmpp_plugins.users import UserStore  # noqa: E402

STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """One self-signed certificate for the whole run (key generation is the slow part)."""
    cfg = Config()
    return ensure_certificate(cfg, tmp_path_factory.mktemp("tls"))


def make_config(**overrides: Any) -> Config:
    """A config on free loopback ports; overrides as section__key=value."""
    cfg = Config()
    cfg.c2s.port = 0
    cfg.components.port = 0
    cfg.http.port = 0
    cfg.admin.port = 0
    cfg.auth.scram_iterations = 4096
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        target = getattr(cfg, section)
        if not hasattr(target, name):
            raise AttributeError(f"no config key {section}.{name}")
        setattr(target, name, value)
    return cfg


@pytest.fixture
async def xmpp_server(tmp_path, certificate) -> Callable[..., Awaitable[Server]]:
    """Factory: `srv = await xmpp_server(limits__stanza_size=1000, plugins=[...])`."""
    started: list[tuple[Server, UserStore]] = []

    async def make(plugins: Any = None, config: Config | None = None, **overrides: Any) -> Server:
        cfg = config or make_config(**overrides)
        users = UserStore(tmp_path / f"users{len(started)}.sqlite3", cfg.auth.scram_iterations)
        srv = Server(cfg, users, server_ssl_context(*certificate), plugins=plugins)
        await srv.start()
        started.append((srv, users))
        return srv

    yield make
    for srv, users in started:
        await srv.stop()
        users.close()


def client_ssl_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certificate[0]))
    return ctx


class Clients:
    """Connects slixmpp clients to a server and disconnects them all at the end of a test."""

    def __init__(self, certificate: tuple[Path, Path]) -> None:
        self.certificate = certificate
        self.all: list[slixmpp.ClientXMPP] = []

    async def connect(self, srv: Server, jid: str = "localhost", password: str = "", *,
                      tls: bool = True, mech: str | None = None, plugins: tuple[str, ...] = (),
                      timeout: float = 10.0, verify: bool = True) -> slixmpp.ClientXMPP:
        c = slixmpp.ClientXMPP(jid, password, sasl_mech=mech)
        c.ssl_context = client_ssl_context(self.certificate)
        if not verify:  # the shared test certificate names only the default hosts
            c.ssl_context.check_hostname = False
            c.ssl_context.verify_mode = ssl.CERT_NONE
        c.enable_direct_tls = False
        c.enable_starttls = tls
        c.enable_plaintext = not tls
        for name in plugins:
            c.register_plugin(name)
        loop = asyncio.get_running_loop()
        started = loop.create_future()
        failed = loop.create_future()
        c.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
        c.add_event_handler("failed_all_auth", lambda _: failed.done() or failed.set_result("auth failed"))
        c.add_event_handler("stream_error", lambda e: failed.done() or failed.set_result(f"stream error {e}"))
        self.all.append(c)
        assert srv.c2s_address is not None
        c.connect(*srv.c2s_address)
        done, _ = await asyncio.wait({started, failed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if failed in done:
            raise ConnectionError(failed.result())
        if started not in done:
            raise TimeoutError("session did not start")
        return c

    async def close(self) -> None:
        async def one(c: slixmpp.ClientXMPP) -> None:
            if c.transport is None:
                return
            try:
                await asyncio.wait_for(c.disconnect(wait=0), 2)
            except Exception:
                c.abort()
        await asyncio.gather(*(one(c) for c in self.all))


@pytest.fixture
async def clients(certificate):
    pool = Clients(certificate)
    yield pool
    await pool.close()


class RawClient:
    """Speaks bytes to a server port, to send what no well-behaved library would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.received = b""

    @classmethod
    async def connect(cls, address: tuple[str, int]) -> "RawClient":
        reader, writer = await asyncio.open_connection(*address)
        return cls(reader, writer)

    def send(self, data: str | bytes) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)

    async def open_stream(self, to: str = "localhost") -> str:
        self.send(f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                  f"xmlns:stream='http://etherx.jabber.org/streams' to='{to}' version='1.0'>")
        return await self.read_until(b"</stream:features>")

    async def read_until(self, marker: bytes, timeout: float = 5.0) -> str:
        async def loop() -> None:
            while marker not in self.received:
                chunk = await self.reader.read(65536)
                if not chunk:
                    raise ConnectionError(f"closed before {marker!r}; got {self.received[-500:]!r}")
                self.received += chunk
        await asyncio.wait_for(loop(), timeout)
        return self.received.decode(errors="replace")

    async def read_to_close(self, timeout: float = 5.0) -> str:
        """Everything until the server closes the connection (fails the test if it never does)."""
        async def loop() -> None:
            while True:
                try:
                    chunk = await self.reader.read(65536)
                except ConnectionResetError:
                    return
                if not chunk:
                    return
                self.received += chunk
        await asyncio.wait_for(loop(), timeout)
        return self.received.decode(errors="replace")

    def stream_error(self) -> str | None:
        m = re.search(rb"<stream:error[^>]*>\s*<([a-z-]+)", self.received)
        return m.group(1).decode() if m else None

    async def login_anonymous(self, to: str = "localhost") -> str:
        await self.open_stream(to)
        self.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>")
        await self.read_until(b"<success")
        self.received = b""
        await self.open_stream(to)
        self.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        out = await self.read_until(b"</iq>")
        jid = re.search(r"<jid>([^<]+)</jid>", out)
        assert jid, out
        self.received = b""
        return jid.group(1)

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def http_front():
    """Serve BOSH and WebSocket for a started server: `base_url = await http_front(srv)`
    (`http_front.apps[base_url]` is its aiohttp app)."""
    from aiohttp import web

    from xmpp_plugins.http import setup_http
    runners = []
    apps: dict[str, web.Application] = {}  # base URL -> its app (BOSH sessions live there)

    async def make(srv: Server) -> str:
        app = web.Application()
        setup_http(app, srv)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        apps[base] = app
        return base

    make.apps = apps  # type: ignore[attr-defined]
    yield make
    for runner in runners:
        await runner.cleanup()


async def until(cond: Callable[[], Any], timeout: float = 5.0, what: str = "the condition",
                step: float = 0.02) -> None:
    """Poll `cond` for state that changes with no event to await (counters, another task's
    bookkeeping, a datagram delivered in a later loop iteration); fail after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(step)


class BridgeProcess:
    """Another bridge (`python -m bridge`) in its own process, joined to a Stack's brewery."""

    def __init__(self, stack: Any, tmp_path: Path, bridge_id: str, **bridge: Any) -> None:
        self.stack = stack
        self.bridge = bridge  # more [bridge] keys, e.g. last_n=5
        self.dir = tmp_path / bridge_id
        self.id = bridge_id
        self.proc: asyncio.subprocess.Process | None = None
        self.http_base = ""  # its public port (health, bridge channel), as it printed it
        self.admin_base = ""  # its admin port (stats, metrics)

    async def start(self, timeout: float = 30.0) -> "BridgeProcess":
        self.stack.users.add(self.id, "auth.localhost", f"{self.id}-secret")
        host, port = self.stack.server.c2s_address
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = self.dir / "bridge.toml"
        cfg.write_text(f"""
[server]
data_dir = "{self.dir / 'data'}"
log_level = "warning"
[bridge]
id = "{self.id}"
xmpp_host = "{host}"
xmpp_port = {port}
username = "{self.id}"
password = "{self.id}-secret"
http_port = 0
admin_port = 0
""" + "".join(f"{key} = {value!r}\n" for key, value in self.bridge.items()))
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", "--config", str(cfg), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        assert self.proc.stdout is not None and self.proc.stderr is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        assert f"bridge {self.id}".encode() in line, line + await self.proc.stderr.read(2000)
        self.http_base = re.search(rb"HTTP (http://[^ ]+:\d+)/", line).group(1).decode()  # type: ignore[union-attr]
        self.admin_base = re.search(rb"admin (http://[^ ]+:\d+)/", line).group(1).decode()  # type: ignore[union-attr]
        selector = self.stack.focus.selector
        await until(lambda: any(j.endswith("/" + self.id) for j in selector.bridges), 15,
                    f"bridge {self.id} in the brewery")
        return self

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
