"""What every process entry point does the same way: decide whether a server is on loopback,
serve an HTTP app, run until a signal, and turn start-up failures into one line and an exit code."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import ssl
import sys
from typing import TYPE_CHECKING, Any, Awaitable, Callable

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


def run_process(name: str, main: Callable[[], Awaitable[Any]], log_level: str = "info") -> int:
    """Run one component's `main()` as a process: logging, uvloop (unless JITSI_PY_NO_UVLOOP),
    and an exit code: 0 after a signal, 1 when it cannot start (a port taken, a server that
    refuses or does not answer), printed as one line naming the component."""
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not os.environ.get("JITSI_PY_NO_UVLOOP"):
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
    try:
        asyncio.run(main())  # type: ignore[arg-type]
    except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
        print(f"{name}: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
