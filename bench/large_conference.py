"""One large conference through the real stack: hundreds of synthetic participants in one room.

    python bench/large_conference.py [--participants 200] [--speakers 2] [--workers 1]
                                     [--video-rate 30] [--last-n 5] [--duration 30]
                                     [--join-concurrency 20] [--timeout 300] [--pyspy PREFIX]
                                     [--bridges 2]
    python bench/large_conference.py --compare-xmpp [--participants 200]

Starts `jitsi-py run` (XMPP server, MUC, focus, bridge in one process) on free loopback ports
with `[bridge] last_n`, no anonymous sign-in rate limit and room for all connections from
127.0.0.1, then drives `--participants` `loadgen.synthetic.SyntheticParticipant`s from
`--workers` load processes (this file with `--worker`, JSON lines on stdin/stdout). Each
participant does the real sign-in, conference IQ, MUC join, Jingle session and ICE/DTLS-SRTP
with the bridge, sends audio (silent, except the `--speakers`, which sit in the middle of the
join order so the bridge's last-N has to move them up) and `--video-rate` packets/s of
thumbnail video, and counts what it receives.

`--bridges 2` cascades the conference: a second bridge process (`python -m bridge`, pinned to
the load processes' CPU) joins the brewery and the focus gets `max_bridge_participants` = half
the participants, so the first half joins the stack's bridge and the second half the other,
joined by a relay. Stats and CPU are then given per bridge and summed.

Printed:
- time from the first join until every participant's media is connected, and until every
  participant has received audio from every speaker (other than itself);
- during a `--duration` s window after that: packets/s offered to the bridge (what the
  participants sent), forwarded by it and its silence drops (`/colibri/stats` on the stack's
  admin HTTP port: `packets_forwarded`, `silence_dropped`, `packet_rate`, `endpoints`), and received
  by the participants;
- the stack process's CPU (bridge and focus share it): join phase and window, total and per s;
- per receiver, the loss of the speakers' audio (every audio packet is decrypted: the embedded
  counters give exact loss) as p50/p99/max over receivers, and the one-way latency the stack
  adds to it (send time embedded by the sender, arrival time at the receiver's socket callback,
  one machine so one clock) as p50/p99 over all packets; the latency includes the load
  process's own event-loop delays, so it is an upper bound for the stack's;
- the largest number of distinct video senders any receiver got in the window (last-N).

`--pyspy PREFIX` samples the stack with py-spy during the join phase (PREFIX-join.txt) and the
window (PREFIX.txt), raw stacks, and prints the top functions of each. Every wait is bounded; `--timeout` bounds the whole run.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from _xmpp_load import CLK_TCK, cpu_seconds, rss_mb  # noqa: E402  (bench/ is on sys.path as the script's dir)

ROOM = "large"
LAT_BUCKET_US = 10  # latency histogram resolution


def machine_busy(cpu: int | None = None) -> float:
    """CPU seconds all CPUs (or one) spent busy since boot (/proc/stat, idle and iowait excluded)."""
    tag = "cpu" if cpu is None else f"cpu{cpu}"
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts[0] == tag:
                v = [int(x) for x in parts[1:9]]
                return (sum(v) - v[3] - v[4]) / CLK_TCK
    return 0.0


async def wait_quiet(max_busy_pct: float, timeout: float) -> float:
    """Wait until the machine is at most max_busy_pct busy (of all CPUs) over 2 s; other
    processes on a shared machine would otherwise show up as our latency. Returns the last
    busy %."""
    deadline = time.monotonic() + timeout
    ncpu = os.cpu_count() or 1
    while True:
        b0 = machine_busy()
        await asyncio.sleep(2.0)
        busy = 100.0 * (machine_busy() - b0) / 2.0 / ncpu
        if busy <= max_busy_pct or time.monotonic() > deadline:
            return busy


def percentile(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(q / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def hist_percentile(hist: dict[int, int], q: float) -> float:
    """q-th percentile (ms) of a {bucket: count} latency histogram."""
    total = sum(hist.values())
    if not total:
        return float("nan")
    need = q / 100.0 * total
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= need:
            return (bucket + 0.5) * LAT_BUCKET_US / 1000.0
    return max(hist) * LAT_BUCKET_US / 1000.0


# =============================================================================================
# The stack
# =============================================================================================
def launch_prefix(cpu: int | None, nice: int) -> list[str]:
    """taskset/nice in front of a command: pinned to one CPU, and ahead of other processes on a
    shared machine (negative niceness needs root; otherwise left alone)."""
    prefix: list[str] = []
    if cpu is not None:
        prefix += ["taskset", "-c", str(cpu)]
    if nice and (nice > 0 or os.geteuid() == 0):
        prefix += ["nice", "-n", str(nice)]
    return prefix


async def start_stack(tmp: Path, last_n: int, log_level: str = "warning", log: str = "",
                      prefix: list[str] | None = None, bridge_cap: int = 0,
                      ) -> tuple[asyncio.subprocess.Process, str, int, str, str]:
    """`jitsi-py run` on free ports; returns (process, c2s host, c2s port, cafile, admin HTTP base).
    Its stderr goes to `log` (default: a file in `tmp`). `bridge_cap`: the focus's
    max_bridge_participants (0: one bridge takes everyone)."""
    prefix = prefix or []
    cfg = tmp / "stack.toml"
    cfg.write_text(f"""
[server]
data_dir = "{tmp / 'data'}"
log_level = "{log_level}"
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
[focus]
max_bridge_participants = {bridge_cap}
max_bridge_stress = 100.0
[limits]
anonymous_sessions_per_minute = 0
connections_per_ip = 100000
unauthenticated_per_ip = 100000
max_connections = 100000
""")
    errpath = Path(log) if log else tmp / "stack.stderr"
    errlog = open(errpath, "wb")
    proc = await asyncio.create_subprocess_exec(*prefix, sys.executable, "-m", "jitsi_py", "run", "--config", str(cfg),
                                                stdout=asyncio.subprocess.PIPE, stderr=errlog)
    host = port = http = None
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if not line:
            break
        m = re.search(r"c2s, STARTTLS\): ([\d.]+):(\d+)", line)
        if m:
            host, port = m.group(1), int(m.group(2))
        m = re.match(r"Admin HTTP.*: (https?://[\d.]+:\d+)/", line)
        if m:
            http = m.group(1)
            break
    if host is None or port is None or http is None:
        proc.kill()
        raise RuntimeError(f"the stack did not print its addresses; stderr: {errpath.read_text()[-2000:]}")
    return proc, host, port, str(tmp / "data" / "tls" / "localhost.crt"), http


async def start_second_bridge(tmp: Path, host: str, port: int, last_n: int, log_level: str,
                              prefix: list[str]) -> tuple[asyncio.subprocess.Process, str]:
    """`python -m bridge` as jvb2 for the stack at host:port; returns (process, admin HTTP base)."""
    password = "jvb2-bench-secret"
    cfg = tmp / "jvb2.toml"
    cfg.write_text(f"""
[server]
data_dir = "{tmp / 'jvb2'}"
log_level = "{log_level}"
[bridge]
id = "jvb2"
last_n = {last_n}
xmpp_host = "{host}"
xmpp_port = {port}
username = "jvb2"
password = "{password}"
http_port = 0
admin_port = 0
""")
    # the account, in the stack's user store (its data_dir)
    add = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jitsi_py", "adduser", "jvb2@auth.localhost", "--config", str(tmp / "stack.toml"),
        "--password-stdin", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL)
    await add.communicate(password.encode() + b"\n")
    errlog = open(tmp / "jvb2.stderr", "wb")
    proc = await asyncio.create_subprocess_exec(*prefix, sys.executable, "-m", "bridge", "--config", str(cfg),
                                                stdout=asyncio.subprocess.PIPE, stderr=errlog)
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    m = re.search(r"admin (https?://[\d.]+:\d+)/", line)
    if m is None:
        proc.kill()
        raise RuntimeError(f"jvb2 did not start: {line!r} {(tmp / 'jvb2.stderr').read_text()[-2000:]}")
    return proc, m.group(1)


async def stop_process(proc: asyncio.subprocess.Process, timeout: float = 20) -> None:
    if proc.returncode is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout)
    except (asyncio.TimeoutError, ProcessLookupError):
        try:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 5)
        except (ProcessLookupError, asyncio.TimeoutError):
            pass


async def colibri_stats(http: str) -> dict[str, Any]:
    import aiohttp
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{http}/colibri/stats", timeout=aiohttp.ClientTimeout(total=10)) as r:
            return await r.json()


async def bridge_stats(https: list[str]) -> dict[str, Any]:
    """/colibri/stats of every bridge, counters summed (and each bridge's under "each")."""
    each = await asyncio.gather(*(colibri_stats(h) for h in https))
    total: dict[str, Any] = {k: sum(st[k] for st in each) for k in
                             ("endpoints", "packets_forwarded", "silence_dropped", "packet_rate",
                              "relay_packets_out", "relayed_endpoints")}
    total["each"] = each
    return total


# =============================================================================================
# The load worker (this file with --worker)
# =============================================================================================
async def worker_main() -> None:
    """Reads one JSON command per line on stdin, writes JSON events on stdout."""
    import logging

    from loadgen.synthetic import SyntheticParticipant

    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def emit(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    people: list[SyntheticParticipant] = []
    state: dict[int, str] = {}  # index -> joining | joined | failed
    errors: list[str] = []
    speakers: list[int] = []  # speaker audio SSRCs
    join_task: asyncio.Task | None = None
    progress_task: asyncio.Task | None = None
    window = {"cpu": 0.0, "t": 0.0}
    lags: list[float] = []  # this process's event-loop lag in the window, ms

    async def lag_monitor() -> None:
        # received packets wait this long in our own loop before their arrival time is taken:
        # the part of the measured latency that is the load's, not the stack's
        while True:
            t = time.monotonic()  # not loop.time(): uvloop's has millisecond resolution
            await asyncio.sleep(0.01)
            lags.append(max(0.0, time.monotonic() - t - 0.01) * 1000)

    lag_task = asyncio.ensure_future(lag_monitor())

    def receiving(p: SyntheticParticipant) -> bool:
        return all(p.heard(s) for s in speakers if s != p.audio_ssrc)

    async def join_all(cfg: dict[str, Any]) -> None:
        sem = asyncio.Semaphore(cfg["concurrency"])

        async def one(i: int, p: SyntheticParticipant) -> None:
            try:
                await p.join(cfg["join_timeout"])
                state[i] = "joined"
            except Exception as exc:
                state[i] = "failed"
                errors.append(str(exc)[:300])
            finally:
                sem.release()

        tasks = []
        for spec in cfg["participants"]:
            await sem.acquire()
            i = spec["index"]
            p = SyntheticParticipant(cfg["host"], cfg["port"], ROOM, cafile=cfg["cafile"], nick=f"p{i:04d}",
                                     send_audio=True, send_video=cfg["video_rate"] > 0,
                                     speaking=spec["speaking"], video_rate=cfg["video_rate"],
                                     audio_sample=1, video_sample=cfg["video_sample"],
                                     audio_ssrc=spec["audio_ssrc"], video_ssrc=spec["video_ssrc"])
            p.index = i  # type: ignore[attr-defined]
            people.append(p)
            state[i] = "joining"
            tasks.append(asyncio.ensure_future(one(i, p)))
        await asyncio.gather(*tasks)

    async def progress() -> None:
        last = None
        while True:
            now = {"ev": "progress", "joined": sum(1 for s in state.values() if s == "joined"),
                   "failed": sum(1 for s in state.values() if s == "failed"),
                   "receiving": sum(1 for p in people if state.get(p.index) == "joined"  # type: ignore[attr-defined]
                                    and receiving(p)),
                   "errors": errors[:3]}
            if now != last:
                emit(now)
                last = now
            await asyncio.sleep(0.25)

    def report() -> dict[str, Any]:
        wall = time.monotonic() - window["t"]
        cpu = time.process_time() - window["cpu"]
        joined = [p for p in people if state.get(p.index) == "joined"]  # type: ignore[attr-defined]
        losses, hist, video_senders, missing = [], {}, [], 0
        expected = decrypted = 0
        for p in joined:
            exp = got = 0
            for s in speakers:
                if s == p.audio_ssrc:
                    continue
                st = p.senders.get(s)
                if st is None:
                    missing += 1
                    continue
                exp += st.expected()
                got += st.decrypted
                for us in st.latency_us:
                    b = us // LAT_BUCKET_US
                    hist[b] = hist.get(b, 0) + 1
            expected += exp
            decrypted += got
            losses.append(max(0.0, 1 - got / exp) if exp else 1.0)
            video_senders.append(len(p.senders_of("video")))
        non_speaker_audio = sum(1 for p in joined for s in p.senders_of("audio") if s not in speakers)
        lag = sorted(lags)
        return {"ev": "report", "wall": wall, "cpu": cpu, "joined": len(joined),
                "lag": [percentile(lag, 50), percentile(lag, 99), lag[-1] if lag else float("nan")],
                "sent_audio": sum(p.sent_audio for p in people), "sent_video": sum(p.sent_video for p in people),
                "rx": sum(p.rx_packets for p in joined), "rx_rtcp": sum(p.rx_rtcp for p in joined),
                "losses": losses, "hist": hist, "video_senders": video_senders, "missing": missing,
                "expected": expected, "decrypted": decrypted, "non_speaker_audio": non_speaker_audio,
                "decrypt_errors": sum(p.decrypt_errors for p in joined),
                "sessions": sum(p.sessions for p in people), "timings": [p.timings for p in joined]}

    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "join":
                speakers = cmd["speakers"]
                join_task = asyncio.ensure_future(join_all(cmd))
                progress_task = asyncio.ensure_future(progress())
            elif op == "reset":
                for p in people:
                    p.reset_stats()
                window.update(cpu=time.process_time(), t=time.monotonic())
                lags.clear()
                emit({"ev": "reset"})
            elif op == "report":
                emit(report())
            elif op == "leave":
                if progress_task is not None:
                    progress_task.cancel()
                if join_task is not None:
                    join_task.cancel()
                await asyncio.wait_for(asyncio.gather(*(p.leave() for p in people), return_exceptions=True), 30)
                emit({"ev": "left"})
                break
    finally:
        lag_task.cancel()
        for p in people:
            if not p.left:
                try:
                    await asyncio.wait_for(p.leave(), 2)
                except Exception:
                    pass


class Worker:
    """One load process, driven over JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process, index: int) -> None:
        self.proc = proc
        self.index = index
        self.progress: dict[str, Any] = {"joined": 0, "failed": 0, "receiving": 0, "errors": []}
        self.replies: asyncio.Queue = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, index: int, prefix: list[str]) -> "Worker":
        cmd = prefix + [sys.executable, os.path.abspath(__file__), "--worker"]
        proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, limit=1 << 26)
        return cls(proc, index)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                await self.replies.put({"ev": "exit"})
                return
            msg = json.loads(line)
            if msg.get("ev") == "progress":
                self.progress = msg
            else:
                await self.replies.put(msg)

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())

    async def call(self, obj: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        self.send(obj)
        msg = await asyncio.wait_for(self.replies.get(), timeout)
        if msg.get("ev") == "exit":
            raise RuntimeError(f"worker {self.index} exited")
        return msg

    async def stop(self) -> None:
        try:
            await self.call({"op": "leave"}, timeout=40)
        except Exception:
            pass
        await stop_process(self.proc, 10)
        self.reader.cancel()


# =============================================================================================
# The coordinator
# =============================================================================================
def summarize_pyspy(path: str, top: int = 20) -> list[str]:
    """Self and inclusive shares per function from py-spy's raw (collapsed) stack output."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return [f"no py-spy output at {path}"]
    self_c: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = [f.replace(ROOT + "/", "").split("site-packages/")[-1] for f in stack.split(";")]
        self_c[frames[-1]] = self_c.get(frames[-1], 0) + c
        for f in set(frames):
            incl[f] = incl.get(f, 0) + c
    if not total:
        return ["py-spy: no samples"]
    out = [f"py-spy: {total} samples ({path})", "  self %  incl %  function (file:line)"]
    for f, c in sorted(self_c.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * c / total:6.1f}  {100 * incl[f] / total:6.1f}  {f}")
    out.append("  -- top inclusive --")
    for f, c in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * self_c.get(f, 0) / total:6.1f}  {100 * c / total:6.1f}  {f}")
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from loadgen.synthetic import prepare_room

    n, k = args.participants, min(args.speakers, args.participants)
    # speakers sit in the middle of the join order: the bridge has to rank them up into last-N
    speaker_idx = sorted({(i + 1) * n // (k + 1) for i in range(k)})
    base = random.randrange(0x10000000, 0x70000000)
    specs = [{"index": i, "speaking": i in speaker_idx, "audio_ssrc": base + 2 * i, "video_ssrc": base + 2 * i + 1}
             for i in range(n)]
    speakers = [s["audio_ssrc"] for s in specs if s["speaking"]]
    result: dict[str, Any] = {"n": n, "speakers": k, "workers": args.workers, "video_rate": args.video_rate,
                              "last_n": args.last_n, "bridges": args.bridges}
    with tempfile.TemporaryDirectory(prefix="large-conference-") as tmpdir:
        ncpu = os.cpu_count() or 1
        pin = args.pin and ncpu >= 2
        proc, host, port, cafile, http = await start_stack(Path(tmpdir), args.last_n, args.stack_log_level,
                                                           args.stack_log, launch_prefix(0 if pin else None, args.nice),
                                                           bridge_cap=(n + 1) // 2 if args.bridges > 1 else 0)
        workers: list[Worker] = []
        jvb2: asyncio.subprocess.Process | None = None
        https = [http]
        try:
            if args.bridges > 1:
                jvb2, http2 = await start_second_bridge(Path(tmpdir), host, port, args.last_n, args.stack_log_level,
                                                        launch_prefix(1 if pin else None, args.nice))
                https.append(http2)  # it is in the brewery once it printed its address
            for w in range(args.workers):
                # the stack alone on CPU 0, the load processes on the others
                cpu = 1 + w % (ncpu - 1) if pin else None
                workers.append(await Worker.start(w, launch_prefix(cpu, args.nice)))
            cpu0 = cpu_seconds(proc.pid)
            t0 = time.monotonic()
            # the focus sets up the room first (see loadgen.synthetic.prepare_room for why)
            await prepare_room(host, port, ROOM, cafile=cafile)
            join_spy = None
            if args.pyspy:  # the join phase, until everyone hears the speakers (stopped by SIGINT)
                join_spy = subprocess.Popen(["py-spy", "record", "--pid", str(proc.pid), "--duration",
                                             str(int(args.join_phase_timeout) + 10), "--rate", "200", "--nonblocking",
                                             "--format", "raw", "-o", f"{args.pyspy}-join.txt"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            per = max(1, args.join_concurrency // args.workers)
            for w, worker in enumerate(workers):
                worker.send({"op": "join", "host": host, "port": port, "cafile": cafile, "speakers": speakers,
                             "participants": [s for s in specs if s["index"] % args.workers == w],
                             "concurrency": per, "join_timeout": args.join_timeout, "video_rate": args.video_rate,
                             "video_sample": args.video_sample})
            t_joined = t_receiving = None
            deadline = t0 + args.join_phase_timeout
            last_print = 0.0
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                joined = sum(w.progress["joined"] for w in workers)
                failed = sum(w.progress["failed"] for w in workers)
                recv = sum(w.progress["receiving"] for w in workers)
                now = time.monotonic()
                if t_joined is None and joined + failed >= n:
                    t_joined = now - t0
                if t_joined is not None and recv >= joined:
                    t_receiving = now - t0
                    break
                if now - last_print > 5:
                    last_print = now
                    print(f"# {now - t0:5.1f} s: {joined} joined, {failed} failed, {recv} receiving both speakers; "
                          f"stack CPU {cpu_seconds(proc.pid) - cpu0:.1f} s", flush=True)
            joined = sum(w.progress["joined"] for w in workers)
            failed = sum(w.progress["failed"] for w in workers)
            recv = sum(w.progress["receiving"] for w in workers)
            join_cpu = cpu_seconds(proc.pid) - cpu0
            join_wall = time.monotonic() - t0
            if join_spy is not None:
                join_spy.send_signal(signal.SIGINT)
                await asyncio.get_running_loop().run_in_executor(None, join_spy.wait)
                result["pyspy_join"] = summarize_pyspy(f"{args.pyspy}-join.txt")
            errors = [e for w in workers for e in w.progress.get("errors", [])]
            result.update(joined=joined, failed=failed, receiving=recv, t_joined=t_joined, t_receiving=t_receiving,
                          join_cpu=join_cpu, join_wall=join_wall, errors=errors[:5])
            print(f"# join phase: {joined}/{n} joined ({failed} failed) in "
                  f"{'%.1f s' % t_joined if t_joined is not None else 'timeout'}, {recv} receiving both speakers at "
                  f"{'%.1f s' % t_receiving if t_receiving is not None else 'timeout'}; stack CPU {join_cpu:.1f} s "
                  f"over {join_wall:.1f} s", flush=True)
            if errors:
                print(f"# first errors: {errors[:3]}", flush=True)
            # the measured window, after the speaker ranking settled
            await asyncio.sleep(args.settle)
            await asyncio.gather(*(w.call({"op": "reset"}) for w in workers))
            st0 = await bridge_stats(https)
            b0 = cpu_seconds(jvb2.pid) if jvb2 is not None else 0.0
            c0, tw0, m0, me0 = cpu_seconds(proc.pid), time.monotonic(), machine_busy(), time.process_time()
            core0 = machine_busy(0)
            spy = None
            if args.pyspy:
                spy = subprocess.Popen(["py-spy", "record", "--pid", str(proc.pid), "--duration",
                                        str(int(args.duration)), "--rate", "200", "--nonblocking", "--format", "raw",
                                        "-o", f"{args.pyspy}.txt"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            await asyncio.sleep(args.duration)
            reports = await asyncio.gather(*(w.call({"op": "report"}) for w in workers))
            st1 = await bridge_stats(https)
            b1 = cpu_seconds(jvb2.pid) if jvb2 is not None else 0.0
            c1, tw1, m1, me1 = cpu_seconds(proc.pid), time.monotonic(), machine_busy(), time.process_time()
            core1 = machine_busy(0)
            if spy is not None:
                await asyncio.get_running_loop().run_in_executor(None, spy.wait)
            wall = tw1 - tw0
            losses = sorted(x for r in reports for x in r["losses"])
            hist: dict[int, int] = {}
            for r in reports:
                for b, c in r["hist"].items():
                    hist[int(b)] = hist.get(int(b), 0) + c
            sent = sum(r["sent_audio"] + r["sent_video"] for r in reports)
            result.update(
                wall=wall, stack_cpu=c1 - c0, stack_cpu_pct=100 * (c1 - c0) / wall,
                stack_rss=rss_mb(proc.pid), endpoints=st1["endpoints"],
                offered_in=sent / wall, audio_in=sum(r["sent_audio"] for r in reports) / wall,
                video_in=sum(r["sent_video"] for r in reports) / wall,
                forwarded=(st1["packets_forwarded"] - st0["packets_forwarded"]) / wall,
                silence_dropped=(st1["silence_dropped"] - st0["silence_dropped"]) / wall,
                packet_rate=st1["packet_rate"], received=sum(r["rx"] for r in reports) / wall,
                relay_out=(st1["relay_packets_out"] - st0["relay_packets_out"]) / wall,
                per_bridge=[(st["id"], st["endpoints"], st["relayed_endpoints"]) for st in st1["each"]],
                bridge2_cpu_pct=100 * (b1 - b0) / wall if jvb2 is not None else None,
                bridge2_rss=rss_mb(jvb2.pid) if jvb2 is not None else None,
                load_cpu_pct=[100 * r["cpu"] / r["wall"] for r in reports],
                load_lag=[max(r["lag"][i] for r in reports) for i in range(3)],
                loss_p50=100 * percentile(losses, 50), loss_p99=100 * percentile(losses, 99),
                loss_max=100 * (losses[-1] if losses else float("nan")),
                lat_p50=hist_percentile(hist, 50), lat_p99=hist_percentile(hist, 99),
                lat_max=(max(hist) + 1) * LAT_BUCKET_US / 1000 if hist else float("nan"),
                video_senders_max=max((x for r in reports for x in r["video_senders"]), default=0),
                missing=sum(r["missing"] for r in reports), expected=sum(r["expected"] for r in reports),
                decrypted=sum(r["decrypted"] for r in reports),
                non_speaker_audio=sum(r["non_speaker_audio"] for r in reports),
                decrypt_errors=sum(r["decrypt_errors"] for r in reports),
                sessions=sum(r["sessions"] for r in reports), ncpu=ncpu,
                # CPU of everything else on the machine in the window, in % of one core
                other_pct=100 * max(0.0, (m1 - m0) - (c1 - c0) - (b1 - b0) - sum(r["cpu"] for r in reports)
                                    - (me1 - me0)) / wall,
                machine_pct=100 * (m1 - m0) / wall / ncpu,
                # pinned: what else ran on the stack's CPU (its own kernel work is mostly in its CPU time)
                stack_core_other_pct=100 * max(0.0, (core1 - core0) - (c1 - c0)) / wall if pin else float("nan"),
                pin=pin, nice=args.nice)
            timings = [t for r in reports for t in r["timings"] if "media" in t]
            if timings:
                result["join_media_p50"] = statistics.median(t["media"] for t in timings)
                result["join_media_max"] = max(t["media"] for t in timings)
                # where a join's time goes, median / max s per step (each step from the previous)
                steps = ["signed_in", "conference", "in_room", "offer", "accepted", "media"]
                result["join_steps"] = {}
                for a, b in zip(["start"] + steps, steps):
                    d = sorted(t[b] - t.get(a, 0.0) for t in timings if b in t and (a == "start" or a in t))
                    if d:
                        result["join_steps"][b] = (statistics.median(d), d[-1])
            if args.pyspy:
                result["pyspy"] = summarize_pyspy(f"{args.pyspy}.txt")
        finally:
            await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
            if jvb2 is not None:
                await stop_process(jvb2)
            await stop_process(proc)
    return result


def print_result(r: dict[str, Any]) -> None:
    def f(v: Any, d: int = 1) -> str:
        return "n/a" if v is None or v != v else f"{v:,.{d}f}"

    print(f"\n# large_conference: {r['n']} participants, {r['speakers']} speaking, video {r['video_rate']} pkt/s "
          f"each, last-N {r['last_n']}, {r['workers']} load process(es), {r.get('ncpu', '?')} CPUs"
          + (", stack pinned to CPU 0, load to the others" if r.get("pin") else "")
          + (f", nice {r['nice']}" if r.get("nice") else "")
          + (f", {r['bridges']} bridges (jvb2 on CPU 1)" if r.get("bridges", 1) > 1 else ""))
    rows = [
        ("participants joined (media connected)", f"{r['joined']} / {r['n']}"),
        ("time until all joined, s", f(r["t_joined"])),
        ("time until all receive both speakers, s", f(r["t_receiving"])),
        ("join() to media connected, median / max s", f"{f(r.get('join_media_p50'), 2)} / {f(r.get('join_media_max'), 2)}"),
        ("stack CPU during joins, s (per s)", f"{f(r['join_cpu'])} ({f(100 * r['join_cpu'] / r['join_wall'], 0)} %)"),
        ("packets/s offered to the bridge (audio + video)", f"{f(r.get('offered_in'), 0)} ({f(r.get('audio_in'), 0)} + {f(r.get('video_in'), 0)})"),
        ("packets/s dropped as silence at the bridge", f(r.get("silence_dropped"), 0)),
        ("packets/s forwarded by the bridge (its packet_rate)", f"{f(r.get('forwarded'), 0)} ({f(r.get('packet_rate'), 0)})"),
        ("packets/s received by the participants", f(r.get("received"), 0)),
        *([("participants per bridge (local + relayed)",
            ", ".join(f"{b}: {e} + {x}" for b, e, x in r.get("per_bridge", []))),
           ("packets/s sent over the relays", f(r.get("relay_out"), 0)),
           ("jvb2 process CPU in the window, % of a core", f(r.get("bridge2_cpu_pct"), 0)),
           ("jvb2 RSS MB", f(r.get("bridge2_rss"), 0))] if r.get("bridges", 1) > 1 else []),
        ("stack CPU in the window, s (per s)", f"{f(r.get('stack_cpu'))} ({f(r.get('stack_cpu_pct'), 0)} %)"),
        ("load process CPU per s", ", ".join(f"{x:.0f} %" for x in r.get("load_cpu_pct", []))),
        ("speakers' audio loss per receiver p50 / p99 / max %", f"{f(r.get('loss_p50'), 2)} / {f(r.get('loss_p99'), 2)} / {f(r.get('loss_max'), 2)}"),
        ("speakers' audio latency added p50 / p99 / max ms", f"{f(r.get('lat_p50'), 2)} / {f(r.get('lat_p99'), 2)} / {f(r.get('lat_max'), 1)}"),
        ("load process event-loop lag p50 / p99 / max ms", " / ".join(f(x, 2) for x in r.get("load_lag", []))),
        ("most video senders at one receiver", str(r.get("video_senders_max"))),
        ("non-speaker audio streams received", str(r.get("non_speaker_audio"))),
        ("stack RSS MB", f(r.get("stack_rss"), 0)),
        ("other processes' CPU in the window (% of a core)", f(r.get("other_pct"), 0)),
        ("of which on the stack's CPU, %", f(r.get("stack_core_other_pct"), 0)),
    ]
    w = max(len(a) for a, _ in rows)
    print(f"| {'metric'.ljust(w)} | value |")
    print(f"|{'-' * (w + 2)}|------:|")
    for a, b in rows:
        print(f"| {a.ljust(w)} | {b} |")
    if r.get("join_steps"):
        print("# join steps, median / max s (each from the previous step): " + ", ".join(
            f"{k} {a:.2f}/{b:.2f}" for k, (a, b) in r["join_steps"].items()))
    print(f"# speaker audio: {r.get('decrypted', 0):,} of {r.get('expected', 0):,} packets received; "
          f"{r.get('missing', 0)} receiver/speaker pairs never heard; decrypt errors {r.get('decrypt_errors', 0)}; "
          f"sessions {r.get('sessions', 0)} for {r['joined']} participants; failures {r['failed']}")
    if r.get("pyspy_join"):
        print("# stack profile, join phase:")
        for line in r["pyspy_join"]:
            print("# " + line)
    if r.get("pyspy"):
        print("# stack profile, measured window:")
        for line in r["pyspy"]:
            print("# " + line)


# =============================================================================================
# --compare-xmpp: the signalling client choice, measured
# =============================================================================================
async def compare_xmpp(args: argparse.Namespace) -> None:
    """N clients sign in and join one MUC room, with slixmpp and with XmppLink; load CPU each."""
    import ssl

    import xml.etree.ElementTree as ET

    import slixmpp
    from lxml import etree

    from loadgen.synthetic import XmppLink, client_ssl_context, prepare_room
    from jitsi_protocols import focus_iq

    n = args.participants
    for kind in ("slixmpp", "raw"):
        with tempfile.TemporaryDirectory(prefix="large-conference-xmpp-") as tmpdir:
            proc, host, port, cafile, _ = await start_stack(Path(tmpdir), args.last_n)
            clients: list[Any] = []
            try:
                c0, s0, t0 = time.process_time(), cpu_seconds(proc.pid), time.monotonic()
                room = "cmp@conference.localhost"
                for i in range(n):
                    if kind == "slixmpp":
                        c = slixmpp.ClientXMPP("localhost", "")
                        c.ssl_context = ssl.create_default_context(cafile=cafile)
                        c.enable_direct_tls = False
                        c.register_plugin("xep_0045")
                        started = asyncio.get_running_loop().create_future()
                        c.add_event_handler("session_start", lambda _, f=started: f.done() or f.set_result(True))
                        c.connect(host, port)
                        await asyncio.wait_for(started, 30)
                        if i == 0:  # the focus creates and configures the room, as in a conference
                            iq = c.make_iq_set(ito="focus.localhost")
                            iq.xml.append(ET.fromstring(etree.tostring(focus_iq.request_element(
                                focus_iq.ConferenceRequest(room)))))
                            await iq.send(timeout=30)
                        await c.plugin["xep_0045"].join_muc_wait(slixmpp.JID(room), f"n{i}", timeout=30, maxstanzas=0)
                    else:
                        ctx = client_ssl_context(cafile)
                        got = asyncio.get_running_loop().create_future()
                        nick = f"{room}/n{i}"

                        def on(el: Any, got: asyncio.Future = got, nick: str = nick) -> bool:
                            if el.tag == "presence" and el.get("from") == nick and not got.done():
                                got.set_result(True)
                            return el.tag != "iq"
                        c = XmppLink(host, port, "localhost", ctx, on)
                        await asyncio.wait_for(c.connect(), 30)
                        if i == 0:
                            await prepare_room(host, port, room, cafile=cafile)
                        c.send(f"<presence to='{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>".encode())
                        await asyncio.wait_for(got, 30)
                    clients.append(c)
                await asyncio.sleep(1.0)  # the last presences arrive
                load_cpu = time.process_time() - c0
                print(f"# {kind}: {n} clients signed in and joined one room in {time.monotonic() - t0:.1f} s; "
                      f"load process CPU {load_cpu:.2f} s, stack CPU {cpu_seconds(proc.pid) - s0:.2f} s", flush=True)
            finally:
                for c in clients:
                    try:
                        if kind == "slixmpp":
                            c.abort()
                        else:
                            await c.close()
                    except Exception:
                        pass
                await stop_process(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", action="store_true", help="internal: run a load process")
    ap.add_argument("--compare-xmpp", action="store_true", help="measure slixmpp vs the raw XMPP client")
    ap.add_argument("--participants", type=int, default=200)
    ap.add_argument("--speakers", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="load processes")
    ap.add_argument("--video-rate", type=float, default=30.0, help="video packets/s per participant")
    ap.add_argument("--video-sample", type=int, default=10, help="decrypt every n-th video packet")
    ap.add_argument("--last-n", type=int, default=5)
    ap.add_argument("--bridges", type=int, choices=(1, 2), default=1,
                    help="2: cascade the conference over the stack's bridge and a second bridge process")
    ap.add_argument("--join-concurrency", type=int, default=20, help="joins in flight at once (all workers)")
    ap.add_argument("--join-timeout", type=float, default=120.0, help="per participant join() timeout, s")
    ap.add_argument("--join-phase-timeout", type=float, default=180.0,
                    help="longest wait for everyone to join and hear the speakers, s")
    ap.add_argument("--settle", type=float, default=2.0, help="wait after the join phase before measuring, s")
    # 30 s: at 200 participants the stack's full (gen 2) garbage collections stall it for
    # ~120 ms about every 20 s, and a shorter window's p99 depends on whether it caught one
    ap.add_argument("--duration", type=float, default=30.0, help="measured window, s")
    ap.add_argument("--timeout", type=float, default=300.0, help="the whole run, s")
    ap.add_argument("--pyspy", default="", help="profile the stack with py-spy in the window: PREFIX.txt")
    ap.add_argument("--quiet", type=float, default=25.0,
                    help="first wait until the machine is at most this %% busy (100: do not wait)")
    ap.add_argument("--quiet-wait", type=float, default=120.0, help="longest wait for --quiet, s")
    ap.add_argument("--nice", type=int, default=-10,
                    help="niceness of the stack and load processes (negative needs root; 0: leave it)")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="do not pin the stack to CPU 0 and the load processes to the others")
    ap.add_argument("--stack-log", default="", help="keep the stack's log (stderr) in this file")
    ap.add_argument("--stack-log-level", default="warning", help="the stack's [server] log_level")
    ap.add_argument("--json", default="", help="also write the result here")
    args = ap.parse_args()
    import uvloop
    if args.worker:
        uvloop.run(worker_main())
        return
    if args.compare_xmpp:
        uvloop.run(asyncio.wait_for(compare_xmpp(args), args.timeout))
        return
    if args.quiet < 100:
        busy = uvloop.run(wait_quiet(args.quiet, args.quiet_wait))
        print(f"# machine {busy:.0f} % busy before the run", flush=True)
    if args.pin and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)))  # the coordinator stays off the stack's CPU
    result = uvloop.run(asyncio.wait_for(run(args), args.timeout))
    print_result(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
