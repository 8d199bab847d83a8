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


def cmd_check(args: argparse.Namespace) -> int:
    from .check import run_checks

    cfg = _load(args.config)
    logging.basicConfig(level=logging.ERROR)  # the lines say it all; aioice's retries would only add noise
    results = asyncio.run(run_checks(cfg))
    for r in results:
        print(r.line(), flush=True)
    failed = sum(r.status == "FAIL" for r in results)
    print(f"{failed} of {len(results)} checks failed" if failed else f"all {len(results)} checks passed")
    return 1 if failed else 0


def cmd_turn_config(args: argparse.Namespace) -> int:
    from .turn import coturn_config

    cfg = _load(args.config)
    try:
        sys.stdout.write(coturn_config(cfg))
    except ValueError as exc:
        print(f"jitsi-py turn-config: {exc}", file=sys.stderr)
        return 2
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


def _join_target(args: argparse.Namespace) -> tuple[str, int, str, str | None]:
    """(host, port, domain, cafile) for `join`: flags win over --config, which wins over defaults."""
    from pathlib import Path

    host, port, domain, cafile = "127.0.0.1", 5222, "localhost", None
    if args.config:
        cfg = _load(args.config)
        listen = cfg.c2s.listen
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(listen, listen)
        port, domain = cfg.c2s.port, cfg.server.domain.lower()
        if not cfg.tls.cert:  # the self-signed certificate `jitsi-py run` generated
            cafile = str(data_dir(cfg) / "tls" / f"{domain}.crt")
    if args.server:
        h, sep, p = args.server.rpartition(":")
        if not sep or not p.isdigit() or not 0 < int(p) < 65536 or not h:
            raise ValueError(f"--server {args.server!r}: expected HOST:PORT, e.g. 127.0.0.1:5222")
        host, port = h.strip("[]"), int(p)
    elif port == 0:
        raise ValueError(f"{args.config}: c2s.port is 0 (any free port); pass --server HOST:PORT")
    domain = (args.domain or domain).lower()
    if args.cafile:
        cafile = args.cafile
    elif not args.config and not args.insecure:
        import platformdirs  # a stack run without a config keeps its certificate here
        default = Path(platformdirs.user_data_dir("jitsi-py")) / "tls" / f"{domain}.crt"
        cafile = str(default) if default.is_file() else None
    if args.insecure:
        cafile = None
    elif cafile and not Path(cafile).is_file():
        raise ValueError(f"no certificate file {cafile} (pass --cafile FILE or --insecure)")
    return host, port, domain, cafile


def _join_auth(args: argparse.Namespace) -> dict:
    """How `join` signs in ([auth] mode): --user (password from --password-file or a prompt),
    --token, or as a guest (on the config's guest domain; without a config the participant
    tries the domain, then guest.<domain>)."""
    import getpass
    from pathlib import Path

    if args.user is not None:
        if args.password_file:
            try:
                password = Path(args.password_file).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ValueError(f"--password-file {args.password_file}: {exc.strerror or exc}") from None
        else:
            password = getpass.getpass(f"password for {args.user}: ")
        return {"user": args.user, "password": password}
    if args.password_file:
        raise ValueError("--password-file goes with --user NAME")
    if args.token is not None:
        return {"token": args.token.strip()}
    if args.config:
        from xmpp_plugins.config import guest_domain
        cfg = _load(args.config)
        return {"guest_domain": guest_domain(cfg) or None}
    return {}


def cmd_join(args: argparse.Namespace) -> int:
    """Join a conference as a participant; leave cleanly on Ctrl-C / SIGTERM."""
    import signal

    from .participant import Event, Participant, ParticipantError, TestPatternTrack, ToneTrack, open_media

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # the media libraries are chatty about every late packet
        for name in ("aioice", "aiortc", "slixmpp", "libav"):  # (failures reach the user as one message)
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        host, port, domain, cafile = _join_target(args)
        auth = _join_auth(args)
    except ValueError as exc:
        print(f"jitsi-py join: {exc}", file=sys.stderr)
        return 2
    player = None
    audio = video = None
    if args.send:
        try:
            player = open_media(args.send)
        except Exception as exc:  # av: no such file, unknown format
            print(f"jitsi-py join: cannot open {args.send}: {exc}", file=sys.stderr)
            return 2
        audio, video = player.audio, player.video
    elif args.test_pattern:
        audio, video = ToneTrack(), TestPatternTrack()

    async def main() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        p = Participant(host, port, args.room, domain=domain, nick=args.nick, display_name=args.name or "",
                        cafile=cafile, verify=not args.insecure, audio=audio, video=video,
                        reconnect_timeout=args.reconnect_timeout, turn_transport=args.turn_transport,
                        relay_only=args.relay, **auth)

        def show(e: Event) -> None:
            who = f"{e.nick}" + (f" ({p.occupants.get(e.nick)})" if p.occupants.get(e.nick) else "")
            line = {"occupant-joined": f"{e.nick}" + (f" ({e.text})" if e.text else "") + " joined the room",
                    "occupant-left": f"{e.nick} left the room",
                    "media": f"receiving {e.kind} from {who}",
                    "source-remove": f"{e.nick} stopped sending "
                                     + ", ".join(sorted({s.kind for s in e.sources or []})),
                    "session-terminate": f"the focus ended the media session ({e.text})",
                    "kicked": f"{e.text} from the room",
                    "disconnected": f"lost the connection to the server {e.text}".rstrip(),
                    "reconnecting": f"lost the connection to the server ({e.text}); reconnecting",
                    "reconnected": f"reconnected: back in {e.text} as {e.nick}",
                    "chat": f"<{e.nick}> {e.text}",
                    "waiting-for-host": f"{e.text}; waiting (up to --timeout {args.timeout:g} s)"}.get(e.type)
            if e.type == "connection" and e.text == "failed":
                line = "the media connection failed; asking the focus for a new one"
            if line:
                print(line, flush=True)
            if e.type in ("kicked", "disconnected") or (e.type == "session-terminate"
                                                        and e.text.split(":")[0] in ("success", "gone")):
                stop.set()

        joining = asyncio.ensure_future(p.join(timeout=args.timeout))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({joining, stopping}, return_when=asyncio.FIRST_COMPLETED)
        try:
            if not joining.done():  # interrupted while joining
                step = p._step
                joining.cancel()
                await asyncio.gather(joining, return_exceptions=True)
                print(f"interrupted while {step}", flush=True)
                return 0
            try:
                joining.result()
            except (ParticipantError, OSError) as exc:
                print(f"jitsi-py join: {exc}", file=sys.stderr)
                return 1
            sending = ", ".join(k for k, t in (("audio", audio), ("video", video)) if t is not None) or "nothing"
            others = ", ".join(f"{n} ({d})" if d else n for n, d in sorted(p.occupants.items())) or "nobody else yet"
            print(f"in the conference {p.room_jid} as {p.nick} (sending {sending}; with {others}); "
                  "Ctrl-C to leave", flush=True)
            p.add_listener(show)
            if args.record:
                try:
                    await p.record(args.record)
                except ParticipantError as exc:
                    print(f"jitsi-py join: {exc}", file=sys.stderr)
                    return 1
                print(f"recording to {args.record}", flush=True)
            await stopping
            return 1 if p._failure is not None else 0
        finally:
            stopping.cancel()
            await p.leave()
            if player is not None:
                player.stop()

    try:
        code = asyncio.run(main())
    except KeyboardInterrupt:
        return 0
    if code == 0:
        print("left the conference", flush=True)
    return code


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
    chk = sub.add_parser("check", help="check ports, certificate, TURN and the bridge's address (exit 1 on a failure)")
    chk.add_argument("--config", required=True, help="TOML config file")
    chk.set_defaults(func=cmd_check)
    turn = sub.add_parser("turn-config", help="print the coturn configuration matching [turn] of a config")
    turn.add_argument("--config", required=True, help="TOML config file with [turn] host and secret")
    turn.set_defaults(func=cmd_turn_config)
    for name, text in (("adduser", "add a registered user"), ("passwd", "change a user's password"),
                       ("deluser", "delete a registered user")):
        p = sub.add_parser(name, help=text)
        p.add_argument("jid", help="user or user@host (default host: the configured domain)")
        p.add_argument("--config", help="TOML config file")
        if name != "deluser":
            p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        p.set_defaults(func=cmd_users)
    join = sub.add_parser("join", help="join a conference as a participant (test media, a file, recording)")
    join.add_argument("room", help="room name (or name@conference.domain)")
    join.add_argument("--server", metavar="HOST:PORT", help="XMPP c2s address (default 127.0.0.1:5222)")
    join.add_argument("--domain", help="XMPP domain (default localhost)")
    join.add_argument("--nick", help="occupant nick (default: 8 random hex digits)")
    join.add_argument("--name", help="display name")
    media = join.add_mutually_exclusive_group()
    media.add_argument("--send", metavar="FILE", help="send the audio and video of a media file (looped)")
    media.add_argument("--test-pattern", action="store_true", help="send a tone and moving colour bars")
    join.add_argument("--record", metavar="OUT", help="record what is received (.mkv or .mp4)")
    tls = join.add_mutually_exclusive_group()
    tls.add_argument("--cafile", help="trust this certificate (file) for the server")
    tls.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    join.add_argument("--config", help="take server, domain and certificate from this stack config")
    who = join.add_mutually_exclusive_group()
    who.add_argument("--user", metavar="NAME", help="sign in as this registered user (asks for the password); "
                     "in [auth] mode \"secure\" only users open meetings")
    who.add_argument("--token", metavar="JWT", help="sign in with this token ([auth] mode \"token\")")
    join.add_argument("--password-file", metavar="FILE", help="read --user's password from this file")
    join.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the conference (30)")
    join.add_argument("--reconnect-timeout", type=float, default=300.0, metavar="SECONDS",
                      help="after a lost connection (a server restart), keep trying to get back this long "
                           "(300; 0: exit at once)")
    join.add_argument("--turn-transport", choices=("udp", "tcp", "tls"), default="udp",
                      help="TURN transport to use when the server offers TURN (default udp; tcp or tls "
                           "where a firewall drops UDP)")
    join.add_argument("--relay", action="store_true",
                      help="send media only through the server's TURN relay (to check that TURN works)")
    join.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    join.set_defaults(func=cmd_join)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SystemExit as exc:
        return int(exc.code or 0)
