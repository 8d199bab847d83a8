"""`python -m bridge --config FILE`: one more bridge, in its own process, for the same focus.

It logs in to the XMPP server named in [bridge] (`xmpp_host`, `xmpp_port`, `username`,
`password`), joins the brewery, and serves two HTTP ports of its own: the public one (`http_listen`,
`http_port`: health and the bridge channel participants connect to) and the admin one
(`admin_listen`, `admin_port`: stats and metrics, which name every conference; keep it
private). Give each bridge its own `bridge.id`.
"""
from __future__ import annotations

import sys

from aiohttp import web

from jitsi_base.process import is_loopback, run_process, start_site, until_signal, warn_if_exposed
from jitsi_py.process import load_from_args


async def serve(cfg) -> None:  # type: ignore[no-untyped-def]
    from .bridge import Bridge
    from .http_api import setup_admin, setup_public
    from .xmpp_agent import BridgeAgent

    b = cfg.bridge
    turn = cfg.turn
    stun = (f"[{turn.host}]:{turn.port}" if ":" in turn.host else f"{turn.host}:{turn.port}") if turn.host else ""
    bridge = Bridge(b, b.websocket_base, stun=stun)
    await bridge.start()
    runners: list[web.AppRunner] = []
    agent = None
    try:
        public = web.Application()
        setup_public(public, bridge)
        runner, (host, port) = await start_site(public, b.http_listen, b.http_port)
        runners.append(runner)
        admin = web.Application()
        setup_admin(admin, bridge)
        runner, (admin_host, admin_port) = await start_site(admin, b.admin_listen, b.admin_port)
        runners.append(runner)
        warn_if_exposed(f"Bridge {b.id}'s admin HTTP port ([bridge] admin_listen)", b.admin_listen)
        if not bridge.websocket_base:
            bridge.websocket_base = f"ws://{host}:{port}"
        domain = cfg.server.domain.lower()
        loopback = is_loopback(b.xmpp_host)
        agent = BridgeAgent(bridge, f"{b.username}@auth.{domain}/{b.id}", b.password,
                            f"jvbbrewery@internal.auth.{domain}", b.xmpp_host, b.xmpp_port,
                            cafile=cfg.tls.cert or None, starttls=not loopback)
        await agent.start()
        seen = f", public address {bridge.public_address}" if bridge.public_address else ""
        print(f"bridge {b.id}: ICE on {b.media_address}{seen}, HTTP http://{host}:{port}/ (health /about/health), "
              f"admin http://{admin_host}:{admin_port}/ (/colibri/stats, /metrics), "
              f"in jvbbrewery@internal.auth.{domain}", flush=True)
        await until_signal()
    finally:
        if agent is not None:
            await agent.stop()
        await bridge.stop()
        for runner in runners:
            await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    cfg = load_from_args("python -m bridge", __doc__, argv)
    if isinstance(cfg, int):
        return cfg
    if not cfg.bridge.password:
        print(f"{cfg.path}: key 'bridge.password': set the bridge account's password "
              f"(jitsi-py adduser {cfg.bridge.username}@auth.{cfg.server.domain})", file=sys.stderr)
        return 2
    return run_process("bridge", lambda: serve(cfg), cfg.server.log_level)


if __name__ == "__main__":
    raise SystemExit(main())
