"""XMPP c2s routing benchmark: our embedded server against Debian's Prosody, same run, same load.

    python bench/xmpp_routing.py [--clients 50] [--messages 200] [--only ours|prosody]

N load clients connect over loopback, authenticate with SASL ANONYMOUS on `localhost` (plain TCP,
no STARTTLS), bind a resource and send initial presence. Then client i sends `--messages` chat
messages to the full JID of client (i + 1) % N, and the run waits until every client has received
all messages addressed to it.

The load clients are raw asyncio streams speaking just enough XMPP (stream header, <auth
mechanism='ANONYMOUS'/>, stream restart, bind, presence); incoming bytes are only scanned for a few
markers (`</message>` is counted), so the client is cheap and byte-for-byte identical for both
servers. It runs in this process, on uvloop when available.

Servers:
  ours     bench/_our_server.py as a subprocess (prints `READY host port loop`, stops on SIGTERM).
  prosody  /usr/bin/prosody with a throw-away loopback-only config written into a temporary
           directory (anonymous auth, no s2s/http/components, self-signed certificate, log to a
           file there), stopped with SIGTERM. Skipped with a note when prosody is not installed.

Reported per server: connects+auth+bind per second, messages delivered per second, the server
process's CPU time (utime+stime from /proc/<pid>/stat) for the connect phase and per 1000
messages in the message phase, and its resident memory afterwards. The load generator shares the
machine with the server, so absolute figures depend on the core count; the ratios are the point.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _xmpp_load import (  # noqa: E402  (shared with bench/muc_join.py)
    BenchError, Conn, OurServer, ProsodyServer, cpu_seconds, default_prosody, fmt, install_uvloop,
    prosody_usable, rss_mb, srv_log)

MSG_END = b"</message>"


# ---- load client --------------------------------------------------------------------------------

class Client(Conn):
    """One raw XMPP c2s connection (see _xmpp_load.Conn) that counts the chat messages it receives."""

    __slots__ = ("received", "expected", "done", "errors")

    def __init__(self, idx: int) -> None:
        super().__init__(idx)
        self.received = 0
        self.expected = 0
        self.done: asyncio.Event | None = None
        self.errors = 0

    async def read_loop(self) -> None:
        """Count `</message>` (and error stanzas) until the stream ends; sets self.done when
        self.received reaches self.expected. Starts with what connect() left in self.buf."""
        data, self.buf = self.buf, b""
        tail = b""
        while True:
            if data:
                chunk = tail + data
                n = chunk.count(MSG_END)
                if n:
                    self.received += n
                    if self.received >= self.expected:
                        self.done.set()
                if b"error" in chunk:  # stanza errors are counted; a stream error ends the client
                    self.errors += chunk.count(b"type='error'") + chunk.count(b'type="error"')
                    if b"<stream:error" in chunk:
                        self.errors += 1
                        self.done.set()
                        return
                # '</message>' has one '<' and no border, so a 9-byte tail never re-counts a match
                tail = chunk[-(len(MSG_END) - 1):]
            data = await self.reader.read(262144)
            if not data:
                self.done.set()
                return

    async def send_messages(self, to: str, count: int, batch: int) -> None:
        w = self.writer
        head = f"<message to='{to}' type='chat' id='".encode()
        for start in range(0, count, batch):
            parts = [head + b"%d'><body>message %d from client %d</body></message>" % (k, k, self.idx)
                     for k in range(start, min(count, start + batch))]
            w.write(b"".join(parts))
            await w.drain()


@dataclass
class Result:
    server: str
    detail: str = ""
    clients: int = 0
    rounds: int = 0
    connect_wall: float = float("nan")
    connect_cpu: float = float("nan")
    round_walls: list[float] = field(default_factory=list)
    msg_cpu: float = 0.0          # server CPU over all message rounds
    client_cpu: float = 0.0       # this (load) process's CPU over all message rounds
    delivered: int = 0            # over all message rounds
    errors: int = 0
    rss_mb: float = float("nan")

    @property
    def connects_per_s(self) -> float:
        return self.clients / self.connect_wall

    @property
    def msgs_per_s(self) -> float:
        """Median over rounds of (messages in the round / round wall time)."""
        if not self.round_walls or not self.rounds:
            return float("nan")
        per_round = self.delivered / len(self.round_walls)
        return statistics.median(per_round / w for w in self.round_walls)

    @property
    def msg_wall(self) -> float:
        return sum(self.round_walls) if self.round_walls else float("nan")

    @property
    def cpu_per_1000_msgs(self) -> float:
        return self.msg_cpu / self.delivered * 1000 if self.delivered else float("nan")

    @property
    def client_cpu_per_1000_msgs(self) -> float:
        return self.client_cpu / self.delivered * 1000 if self.delivered else float("nan")

    @property
    def server_busy_pct(self) -> float:
        """Server CPU time / wall time in the message phase: ~100 means one core saturated."""
        return self.msg_cpu / self.msg_wall * 100 if self.round_walls else float("nan")

    @property
    def cpu_ms_per_connect(self) -> float:
        return self.connect_cpu / self.clients * 1000


async def run_load(pid: int, host: str, port: int, args: argparse.Namespace, res: Result) -> None:
    n, m = args.clients, args.messages
    clients = [Client(i) for i in range(n)]
    sem = asyncio.Semaphore(args.concurrency)

    async def connect(c: Client) -> None:
        async with sem:
            await c.connect(host, port)

    readers: list[asyncio.Future] = []
    try:
        # -- phase 1: connect, authenticate, bind, initial presence
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        await asyncio.gather(*(connect(c) for c in clients))
        t1 = time.perf_counter()
        res.clients, res.connect_wall, res.connect_cpu = n, t1 - t0, cpu_seconds(pid) - cpu0

        for c in clients:
            c.expected, c.done = m, asyncio.Event()
        readers = [asyncio.ensure_future(c.read_loop()) for c in clients]
        await asyncio.sleep(0.2)  # presence echoes arrive and are read; the server goes idle

        # -- phase 2: every client sends m messages to the next one; repeated args.rounds times
        for _ in range(args.rounds):
            for c in clients:
                c.received, c.done = 0, asyncio.Event()
            cpu2, own2, t2 = cpu_seconds(pid), time.process_time(), time.perf_counter()
            senders = [asyncio.ensure_future(c.send_messages(clients[(c.idx + 1) % n].jid, m, args.batch))
                       for c in clients]
            waits = [asyncio.ensure_future(c.done.wait()) for c in clients]  # type: ignore[union-attr]
            try:
                await asyncio.gather(*senders, *waits)
            finally:
                t3 = time.perf_counter()
                res.msg_cpu += cpu_seconds(pid) - cpu2
                res.client_cpu += time.process_time() - own2
                res.errors = sum(c.errors for c in clients)
                for t in senders + waits:
                    t.cancel()
            short = [c.idx for c in clients if c.received < m]
            if short:
                raise BenchError(f"{len(short)} clients did not get all messages (first: {short[:5]})")
            res.round_walls.append(t3 - t2)
            res.delivered += sum(c.received for c in clients)
            res.rounds += 1
        res.rss_mb = rss_mb(pid)
    finally:
        await asyncio.gather(*(c.close() for c in clients if hasattr(c, "writer")), return_exceptions=True)
        for r in readers:
            r.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


def bench_server(server, args: argparse.Namespace, deadline: float) -> Result:
    res = Result(server.name)
    remaining = deadline - time.monotonic()
    if remaining <= 1.0:
        raise BenchError("overall timeout reached before this server was started")
    server.start(timeout=min(30.0, remaining))
    try:
        res.detail = server.detail
        assert server.proc is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchError("overall timeout reached before the run started")
        coro = run_load(server.proc.pid, server.host, server.port, args, res)
        try:
            asyncio.run(asyncio.wait_for(coro, remaining))
        except asyncio.TimeoutError:
            raise BenchError(f"timed out after {args.timeout:.0f}s overall "
                             f"({res.rounds} of {args.rounds} message rounds done)") from None
        if server.proc.poll() is not None:
            raise BenchError(f"server exited with status {server.proc.returncode} during the run")
    finally:
        server.stop()
    return res


# ---- report -------------------------------------------------------------------------------------

def median_of(runs: list[Result] | None, attr: str) -> float:
    vals = [getattr(r, attr) for r in runs or ()]
    vals = [v for v in vals if v == v]
    return statistics.median(vals) if vals else float("nan")


def table(results: dict[str, list[Result]]) -> str:
    """One row per metric; with --repeat, every cell is the median over the repeats."""
    ours, pros = results.get("ours"), results.get("prosody")
    rows = [
        ("connects+auth+bind per s", "connects_per_s", 0),
        ("server CPU ms per connect", "cpu_ms_per_connect", 2),
        ("server CPU s, connect phase", "connect_cpu", 2),
        ("messages delivered per s", "msgs_per_s", 0),
        ("server CPU s per 1000 msgs", "cpu_per_1000_msgs", 3),
        ("server CPU s, message phase (all rounds)", "msg_cpu", 2),
        ("message phase wall s (all rounds)", "msg_wall", 2),
        ("server CPU busy % in message phase", "server_busy_pct", 0),
        ("load client CPU s per 1000 msgs", "client_cpu_per_1000_msgs", 3),
        ("server RSS MB after", "rss_mb", 1),
    ]
    head = ["metric", "ours", "prosody", "ours/prosody"]
    body = []
    for label, attr, digits in rows:
        a, b = median_of(ours, attr), median_of(pros, attr)
        ratio = a / b if (ours and pros and b) else float("nan")
        body.append([label, fmt(a, digits), fmt(b, digits), fmt(ratio, 2)])
    widths = [max(len(r[i]) for r in [head] + body) for i in range(4)]
    lines = ["| " + " | ".join(h.ljust(widths[i]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(head)) + " |",
             "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"]
    for r in body:
        lines.append("| " + " | ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50, help="number of load clients (default 50)")
    ap.add_argument("--messages", type=int, default=200, help="messages each client sends (default 200)")
    ap.add_argument("--only", choices=("ours", "prosody"), help="bench one server only")
    ap.add_argument("--concurrency", type=int, default=25,
                    help="connection attempts in flight during the connect phase (default 25)")
    ap.add_argument("--batch", type=int, default=20,
                    help="messages written per write()+drain() by each client (default 20)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="message rounds on the same connections; msgs/s is the median (default 3)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run everything (fresh server processes) this many times, alternating servers; "
                         "table cells are medians (default 1)")
    ap.add_argument("--timeout", type=float, default=300.0, help="overall time limit in seconds (default 300)")
    ap.add_argument("--prosody", default=default_prosody(), help="prosody binary")
    ap.add_argument("--no-uvloop", action="store_true", help="run the load client on plain asyncio")
    args = ap.parse_args()
    if args.clients < 2 or args.messages < 1 or args.rounds < 1 or args.repeat < 1:
        ap.error("need at least 2 clients, 1 message, 1 round and 1 repeat")

    client_loop = install_uvloop(args.no_uvloop)

    deadline = time.monotonic() + args.timeout
    results: dict[str, list[Result]] = {}
    failed = False
    with tempfile.TemporaryDirectory(prefix="xmpp-bench-") as tmp:
        servers = []
        if args.only in (None, "ours"):
            servers.append(OurServer(tmp))
        if args.only in (None, "prosody"):
            if prosody_usable(args.prosody):
                servers.append(ProsodyServer(tmp, args.prosody))
            else:
                print(f"note: prosody not found at {args.prosody}; benching our server only", file=sys.stderr)
        for rep_no in range(args.repeat):
            for srv in servers:
                tag = f"[{srv.name}]" if args.repeat == 1 else f"[{srv.name} {rep_no + 1}/{args.repeat}]"
                print(f"{tag} {args.clients} clients x {args.messages} messages x {args.rounds} rounds ...",
                      file=sys.stderr, flush=True)
                try:
                    r = bench_server(srv, args, deadline)
                except BenchError as exc:
                    failed = True
                    print(f"{tag} FAILED: {exc}", file=sys.stderr)
                    extra = srv_log(srv)
                    if extra.strip():
                        print(f"{tag} server output:\n{extra}", file=sys.stderr)
                    continue
                results.setdefault(srv.name, []).append(r)
                print(f"{tag} ok: {r.connects_per_s:,.0f} connects/s; {r.delivered} messages, rounds "
                      f"{', '.join(f'{w:.3f}' for w in r.round_walls)} s, {r.msgs_per_s:,.0f} msgs/s; "
                      f"{r.errors} errors", file=sys.stderr, flush=True)
                if r.errors:
                    failed = True
                    print(f"{tag} error stanzas received: {srv_log(srv)}", file=sys.stderr)
            if failed:
                break

    print(f"# xmpp_routing: {args.clients} clients x {args.messages} messages x {args.rounds} rounds "
          f"(= {args.clients * args.messages} messages per round), client i -> client (i+1) % N")
    print(f"# load client: {client_loop}, connect concurrency {args.concurrency}, batch {args.batch}; "
          f"{os.cpu_count()} CPUs; loopback TCP, SASL ANONYMOUS, no TLS")
    for name, runs in results.items():
        spread = ""
        if len(runs) > 1:
            rates = sorted(r.msgs_per_s for r in runs)
            conns = sorted(r.connects_per_s for r in runs)
            spread = (f"; over {len(runs)} repeats: msgs/s {rates[0]:,.0f}..{rates[-1]:,.0f}, "
                      f"connects/s {conns[0]:,.0f}..{conns[-1]:,.0f}")
        print(f"# {name}: {runs[0].detail}{spread}")
    if results:
        print(table(results))
    else:
        print("# no results")
    print("# ratio > 1: ours is higher (better for per-s rows, worse for CPU/RSS rows)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
