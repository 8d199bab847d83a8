"""The `jitsi-py` command: run the stack, check a config, manage users.

Errors an admin can fix (a bad config, an unknown user) are printed as one clear message with
a non-zero exit code, never as a traceback.
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sqlite3
import sys

from .config import Config, ConfigError, data_dir, load_config


def _load(path: str | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(2) from None


def _setup_logging(cfg: Config) -> None:
    logging.basicConfig(level=getattr(logging, cfg.server.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def _run_stack(cfg: Config) -> None:
    from .stack import Stack

    stack = Stack(cfg)
    try:
        await stack.start()
        for line in stack.listening():
            print(line, flush=True)
        await stack.serve_forever()
    finally:
        await stack.stop()


def _run_async(coro) -> None:  # type: ignore[no-untyped-def]
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    _setup_logging(cfg)
    try:
        _run_async(_run_stack(cfg))
    except OSError as exc:  # a port in use, a missing certificate...
        print(f"jitsi-py: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


async def _run_muc(cfg: Config) -> None:
    import signal

    from xmpp_plugins.muc.external import run_forever

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"MUC component for {cfg.muc.domain or 'conference.' + cfg.server.domain} -> "
          f"{cfg.muc.server_host}:{cfg.muc.server_port}", flush=True)
    await run_forever(cfg, stop)


def cmd_muc(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    if not cfg.muc.secret:
        print(f"{args.config}: key 'muc.secret': set the component secret the XMPP server has for the MUC",
              file=sys.stderr)
        return 2
    _setup_logging(cfg)
    try:
        _run_async(_run_muc(cfg))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    _load(args.file)
    print(f"{args.file}: OK")
    return 0


def _account(cfg: Config, jid: str) -> tuple[str, str]:
    user, _, host = jid.partition("@")
    return user, (host or cfg.server.domain).lower()


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise ValueError("The passwords do not match")
    if not password:
        raise ValueError("The password is empty")
    return password


def cmd_users(args: argparse.Namespace) -> int:
    from xmpp_plugins.users import UserError, UserStore

    cfg = _load(args.config)
    user, host = _account(cfg, args.jid)
    try:
        store = UserStore(data_dir(cfg) / "users.sqlite3", cfg.auth.scram_iterations)
    except (OSError, sqlite3.Error) as exc:  # e.g. server.data_dir is not a writable directory
        print(f"jitsi-py {args.command}: cannot open the user database: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command == "adduser":
            store.add(user, host, _read_password(args))
            print(f"added {user}@{host}")
        elif args.command == "passwd":
            if not store.exists(user, host):
                raise UserError(f"{user}@{host} does not exist")
            store.set_password(user, host, _read_password(args))
            print(f"changed the password of {user}@{host}")
        else:
            store.delete(user, host)
            print(f"deleted {user}@{host}")
    except (UserError, ValueError) as exc:
        print(f"jitsi-py {args.command}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jitsi-py", description="A self-hostable video conferencing stack.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole stack (XMPP server, web) on this machine")
    run.add_argument("--config", help="TOML config file (default: the embedded defaults)")
    run.set_defaults(func=cmd_run)
    muc = sub.add_parser("muc", help="run only the MUC, as an XEP-0114 component of another XMPP server")
    muc.add_argument("--config", required=True, help="TOML config file with [muc] server_host/server_port/secret")
    muc.set_defaults(func=cmd_muc)
    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file")
    check.set_defaults(func=cmd_check_config)
    for name, text in (("adduser", "add a registered user"), ("passwd", "change a user's password"),
                       ("deluser", "delete a registered user")):
        p = sub.add_parser(name, help=text)
        p.add_argument("jid", help="user or user@host (default host: the configured domain)")
        p.add_argument("--config", help="TOML config file")
        if name != "deluser":
            p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        p.set_defaults(func=cmd_users)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SystemExit as exc:
        return int(exc.code or 0)
