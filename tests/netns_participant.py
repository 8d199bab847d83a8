"""A Python participant run by tests/test_turn.py inside a network namespace (the test process
itself cannot enter one): joins, waits for the other participant's audio and video, prints one
JSON line (its ICE servers and the selected candidate pair), then stays until stdin closes."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys

from jitsi_py.participant import Participant, TestPatternTrack, ToneTrack


async def main() -> int:
    import logging
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("room")
    ap.add_argument("nick")
    ap.add_argument("other")
    ap.add_argument("--turn-transport", default="udp")
    args = ap.parse_args()
    p = Participant(args.host, args.port, args.room, nick=args.nick, verify=False, audio=ToneTrack(),
                    video=TestPatternTrack(), turn_transport=args.turn_transport)
    result: dict = {"nick": args.nick}
    try:
        await p.join(timeout=60)
        for kind in ("video", "audio"):
            await p.wait_frames(args.other, kind, 3, timeout=60)
        result.update(ok=True, pair=p.selected_pair(), ice_servers=[s.urls for s in p.ice_servers])
    except Exception as exc:
        result.update(ok=False, error=f"{type(exc).__name__}: {exc}", pair=p.selected_pair())
    print(json.dumps(result), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the test closes it
    await p.leave()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
