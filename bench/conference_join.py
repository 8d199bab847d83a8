"""How long a newcomer waits for media: conference IQ to first decoded video frame.

    python bench/conference_join.py [--participants 50] [--marks 2,10,50] [--last-n 4]

Starts `jitsi-py run` (server, MUC, focus, bridge) in its own process on free loopback ports,
then participants join one room one after another from this process: the first sends a tone and
a small test pattern (160x120, so 50 receivers can decode it on two cores), the others only
receive. For the 2nd, 10th and 50th participant (`--marks`) it prints the time from the start of
`join()` (sign-in, conference IQ, MUC join, Jingle, ICE/DTLS) to media connected, and to the
first decoded video frame from the sender, plus the stack's CPU seconds for the whole run.
Loopback only; every wait has a timeout.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _xmpp_load import cpu_seconds  # noqa: E402  (bench/ is on sys.path as the script's dir)
from jitsi_py.participant import Participant, TestPatternTrack, ToneTrack  # noqa: E402


async def start_stack(tmp: Path, last_n: int) -> tuple[asyncio.subprocess.Process, str, int, str]:
    cfg = tmp / "stack.toml"
    cfg.write_text(f"""
[server]
data_dir = "{tmp / 'data'}"
log_level = "warning"
[c2s]
port = 0
[components]
port = 0
[http]
port = 0
[admin]
port = 0
[bridge]
last_n = {last_n}
audio_slots = 3
[limits]
anonymous_sessions_per_minute = 0
""")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "jitsi_py", "run", "--config", str(cfg),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    host = port = None
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        m = re.search(r"c2s, STARTTLS\): ([\d.]+):(\d+)", line)
        if m:
            host, port = m.group(1), int(m.group(2))
        if line.startswith("HTTP:"):
            break
    if host is None or port is None:
        raise RuntimeError("the stack did not print its c2s address")
    return proc, host, port, str(tmp / "data" / "tls" / "localhost.crt")


async def run(args: argparse.Namespace) -> None:
    marks = sorted({int(x) for x in args.marks.split(",") if x.strip()})
    n = max(max(marks), args.participants)
    with tempfile.TemporaryDirectory(prefix="conference-join-") as tmpdir:
        proc, host, port, cafile = await start_stack(Path(tmpdir), args.last_n)
        people: list[Participant] = []
        rows: list[tuple[int, float, float]] = []
        cpu0 = cpu_seconds(proc.pid)
        t_start = time.monotonic()
        try:
            sender = Participant(host, port, "bench", cafile=cafile, nick="sender00",
                                 audio=ToneTrack(), video=TestPatternTrack(160, 120))
            people.append(sender)
            join_task = asyncio.ensure_future(sender.join(timeout=120))  # waits for a second participant
            for k in range(2, n + 1):
                p = Participant(host, port, "bench", cafile=cafile, nick=f"recv{k:04d}")
                people.append(p)
                t0 = time.monotonic()
                await p.join(timeout=120)
                t_media = time.monotonic() - t0
                if k == 2:
                    await join_task
                await p.wait_frames(sender.nick, "video", 1, timeout=60)
                t_frame = time.monotonic() - t0
                if k in marks:
                    rows.append((k, t_media, t_frame))
                    print(f"participant {k}: media connected {t_media * 1000:.0f} ms, first frame "
                          f"{t_frame * 1000:.0f} ms", flush=True)
            wall = time.monotonic() - t_start
            cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            await asyncio.gather(*(p.leave() for p in people), return_exceptions=True)
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except asyncio.TimeoutError:
                proc.kill()
    print(f"\n# conference_join: {n} participants join one room one by one; participant 1 sends "
          f"a tone + 160x120 test pattern, the others receive (last-N {args.last_n})")
    print("| participant | join() to media connected ms | join() to first video frame ms |")
    print("|---:|---:|---:|")
    for k, t_media, t_frame in rows:
        print(f"| {k} | {t_media * 1000:.0f} | {t_frame * 1000:.0f} |")
    print(f"\nall {n} joined in {wall:.1f} s; stack CPU {cpu:.1f} s "
          f"(median first frame {statistics.median(r[2] for r in rows) * 1000:.0f} ms over the marks)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--participants", type=int, default=50)
    ap.add_argument("--marks", default="2,10,50")
    ap.add_argument("--last-n", type=int, default=4)
    args = ap.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(asyncio.wait_for(run(args), 900))


if __name__ == "__main__":
    main()
