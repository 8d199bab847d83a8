"""What every separately run component (`python -m bridge`, `python -m jicofo_py`) does the same
way: read its config, decide whether its XMPP server is on loopback, and run until a signal."""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import ssl
import sys
from typing import TYPE_CHECKING

from .config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Loopback servers may take PLAIN/SCRAM without TLS (and we then skip STARTTLS)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def warn_if_exposed(what: str, host: str) -> None:
    """An admin port shows every room name, meeting id and nick: say so when it may be public."""
    if not is_loopback(host):
        log.warning("%s listens on %s, which is not a loopback address: anyone who reaches it reads "
                    "every conference's room name, meeting id and participants; firewall it", what, host)


async def start_site(app: "web.Application", host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                     ) -> tuple["web.AppRunner", tuple[str, int]]:
    """Serve `app` on host:port (0: a free port); returns its runner and the address bound."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=128, ssl_context=ssl_context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    sock = site._server.sockets[0] if site._server else None  # type: ignore[union-attr]
    return runner, (tuple(sock.getsockname()[:2]) if sock else (host, port))  # type: ignore[return-value]


async def until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def load_from_args(prog: str, description: str | None, argv: list[str] | None) -> Config | int:
    """The config named by --config, or an exit code after printing why it cannot be used."""
    ap = argparse.ArgumentParser(prog=prog, description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    args = ap.parse_args(argv)
    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
