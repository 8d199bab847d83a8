"""Run our embedded XMPP server (c2s only) in a process of its own, for benchmarks.

    python bench/_our_server.py --port 0 [--loop auto|uvloop|asyncio]

Prints one line `READY <host> <port> <loop>` on stdout once it listens, then serves until
SIGTERM/SIGINT, when it stops the server cleanly and exits. Loopback only.

The MUC lets anyone create rooms (`muc.create_rooms = "anyone"`, not the default "admins"):
the load client creates its room itself, as it does on Prosody, with no focus running.

Per-address limits (anonymous sign-ins per minute, connections per address, unauthenticated
connections per address) and the per-connection byte and stanza rates are lifted: a load test
opens hundreds of anonymous sessions from 127.0.0.1 and sends as fast as the server takes it, and
the Prosody it is compared with runs without mod_limits. Logging is at WARNING, as the Prosody side logs warnings only.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jitsi_py.config import Config  # noqa: E402
from xmpp_plugins.server import Server  # noqa: E402


def build_config(host: str, port: int) -> Config:
    cfg = Config()
    cfg.c2s.listen = host
    cfg.c2s.port = port
    cfg.components.enabled = False
    cfg.http.enabled = False
    cfg.muc.create_rooms = "anyone"  # no focus here: client 0 creates the room
    cfg.limits.anonymous_sessions_per_minute = 0
    cfg.limits.connections_per_ip = 1_000_000
    cfg.limits.max_connections = 1_000_000
    cfg.limits.unauthenticated_per_ip = 0  # no cap of its own
    cfg.limits.c2s_rate = 0
    cfg.limits.c2s_stanza_rate = 0
    return cfg


async def serve(host: str, port: int, loop_name: str) -> None:
    srv = Server(build_config(host, port))
    await srv.start()
    assert srv.c2s_address is not None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("READY", srv.c2s_address[0], srv.c2s_address[1], loop_name, flush=True)
    try:
        await stop.wait()
    finally:
        await srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    args = ap.parse_args()
    assert args.host in ("127.0.0.1", "::1", "localhost"), "loopback only"
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    loop_name = "asyncio"
    if args.loop in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if args.loop == "uvloop":
                raise
        else:
            uvloop.install()
            loop_name = "uvloop"
    asyncio.run(serve(args.host, args.port, loop_name))


if __name__ == "__main__":
    main()
