"""What every separately run component (`python -m bridge`, `python -m jicofo_py`) does the same
way: read its config, decide whether its XMPP server is on loopback, and run until a signal."""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import sys

from .config import Config, ConfigError, load_config


def is_loopback(host: str) -> bool:
    """Loopback servers may take PLAIN/SCRAM without TLS (and we then skip STARTTLS)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


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
