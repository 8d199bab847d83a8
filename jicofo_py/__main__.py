"""`python -m jicofo_py --config FILE`: the focus alone, against any server hosting our MUC.

It logs in as focus@auth.<domain> ([focus] xmpp_host, xmpp_port, password) and attaches
focus.<domain> as a component ([focus] component_host, component_port, component_secret). The
MUC must list focus@auth.<domain> among its admins (our MUC does by default).
"""
from __future__ import annotations

import sys

from jitsi_base.process import is_loopback, run_process, until_signal
from jitsi_py.config import focus_auth
from jitsi_py.process import load_from_args


async def serve(cfg) -> None:  # type: ignore[no-untyped-def]
    from .focus import Focus

    f = cfg.focus
    loopback = is_loopback(f.xmpp_host)
    focus = Focus(cfg.server.domain.lower(), f.password, (f.xmpp_host, f.xmpp_port),
                  (f.component_host, f.component_port), f.component_secret,
                  cafile=cfg.tls.cert or None, starttls=not loopback,
                  muc_domain=cfg.muc.domain or None, min_participants=f.min_participants,
                  start_muted=(f.start_audio_muted, f.start_video_muted),
                  max_bridge_participants=f.max_bridge_participants, max_bridge_stress=f.max_bridge_stress,
                  colibri_timeout=f.colibri_timeout,
                  conference_requests_per_minute=f.conference_requests_per_minute,
                  empty_room_timeout=f.empty_room_timeout, max_waiting_rooms=f.max_waiting_rooms,
                  **focus_auth(cfg))
    await focus.start()
    print(f"focus: {focus.jid} serving {focus.service}", flush=True)
    try:
        await until_signal()
    finally:
        await focus.stop()


def main(argv: list[str] | None = None) -> int:
    cfg = load_from_args("python -m jicofo_py", __doc__, argv)
    if isinstance(cfg, int):
        return cfg
    for key in ("password", "component_secret"):
        if not getattr(cfg.focus, key):
            print(f"{cfg.path}: key 'focus.{key}': must be set to run the focus on its own", file=sys.stderr)
            return 2
    return run_process("focus", lambda: serve(cfg), cfg.server.log_level)


if __name__ == "__main__":
    raise SystemExit(main())
