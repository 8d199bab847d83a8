"""MUC (XEP-0045) benchmark: N occupants join one room, then groupchat; our server against Prosody.

    python bench/muc_join.py [--sizes 50,100,200] [--repeat 1] [--join-concurrency 1]
                             [--senders 10] [--messages 20] [--gc-rounds 3] [--public-jids]
                             [--only ours|prosody] [--timeout 900] [--step-timeout 60]

For each room size N, with a fresh server process per (server, N, repeat):

1. connect   N load clients connect over loopback (SASL ANONYMOUS, bind, initial presence), 25 at a
             time. Not part of the join figures.
2. join      client 0 joins bench@conference.localhost/nick0 and, once it has its own presence
             (status 110; 201 when it created the room), submits the instant-room form
             (muc#owner, empty `submit` data form) and waits for the result: rooms that a guest
             creates stay locked on our server until then (XEP-0045 10.1); on Prosody, which runs
             with `muc_room_locking = false`, it is harmless. Then clients 1..N-1 join, one after
             another (`--join-concurrency 1`: send the join, wait for its 110, next) or k at a time.
             Every join asks for no history (`<history maxstanzas='0'/>`). The phase ends when every
             client has received N presences: the N-1 others' and its own, so N*N presences in all.
             Reported: the last occupant's join latency (its join sent -> its 110 received), the
             median join latency, the wall time of the whole phase (client 0's join sent -> every
             client has seen all N presences), the server's CPU seconds in that time, and presences
             delivered per second.
3. groupchat clients 0..S-1 (`--senders`, default 10) each send M (`--messages`, default 20)
             groupchat messages to the room, all at once; every occupant, senders included, receives
             each, so a round is S*M*N deliveries and ends when every client has all S*M bodies.
             `--gc-rounds` rounds; deliveries per second is the median round, server CPU per 1000
             deliveries is over all rounds.

Also reported: server CPU busy % (CPU s / wall s) per phase, the load client's own CPU in the join
phase, bytes received per presence / per groupchat delivery (payload sizes differ: see
--public-jids), and the server's RSS at the end. Every count is checked (N*N presences, S*M*N
deliveries per round); error stanzas, a closed stream or a wait longer than --step-timeout fail the
run, and --timeout bounds the whole run.

--public-jids: client 0 submits muc#roomconfig_whois=anyone instead of the empty instant-room form,
so our room shows real JIDs to every occupant as Prosody's does (muc_room_default_public_jids);
by default our guest-made room is semi-anonymous (real JIDs to moderators only).

Server CPU is utime+stime of the server process from /proc/<pid>/stat (10 ms ticks). The load
clients (raw asyncio streams, see bench/_xmpp_load.py) run in this process and share the machine's
cores with the server; they only count a few byte markers (`<presence`, `code='110'`, `</body>`),
the same way for both servers.

Servers:
  ours     bench/_our_server.py (its config leaves the MUC plugin enabled on conference.localhost,
           default settings except that anyone may create rooms; no occupant limit, history of 20).
  prosody  /usr/bin/prosody with the loopback-only throw-away config of bench/_xmpp_load.py plus a
           `Component "conference.localhost" "muc"` (see PROSODY_MUC below). Prosody 0.12's mod_muc
           has no occupant limit of its own (that is the separate mod_muc_max_occupants, not loaded).
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

from _xmpp_load import (  # noqa: E402
    DOMAIN, BenchError, Conn, OurServer, ProsodyServer, cpu_seconds, default_prosody, fmt, install_uvloop,
    md_table, median, prosody_usable, rss_mb, srv_log)

MUC_DOMAIN = f"conference.{DOMAIN}"
ROOM = f"bench@{MUC_DOMAIN}"

PROSODY_MUC = f"""
Component "{MUC_DOMAIN}" "muc"
    restrict_room_creation = false
    muc_room_locking = false
    muc_room_default_public_jids = true
    max_history_messages = 20
"""

INSTANT_ROOM = (f"<iq type='set' to='{ROOM}' id='cfg'><query xmlns='http://jabber.org/protocol/muc#owner'>"
                "<x xmlns='jabber:x:data' type='submit'/></query></iq>").encode()
# --public-jids: the same owner submission, but asking for a non-anonymous room (real JIDs to everyone),
# which is what Prosody's `muc_room_default_public_jids = true` already gives
PUBLIC_JIDS_ROOM = (f"<iq type='set' to='{ROOM}' id='cfg'><query xmlns='http://jabber.org/protocol/muc#owner'>"
                    "<x xmlns='jabber:x:data' type='submit'>"
                    "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"
                    "<field var='muc#roomconfig_whois'><value>anyone</value></field>"
                    "</x></query></iq>").encode()

PRESENCE_START = b"<presence"       # never part of '</presence>'
BODY_END = b"</body>"               # only groupchat messages carry a body here
SELF_110 = (b"code='110'", b'code="110"')
CREATED_201 = (b"code='201'", b'code="201"')
CFG_ID = (b"id='cfg'", b'id="cfg"')


def join_stanza(idx: int) -> bytes:
    return (f"<presence to='{ROOM}/nick{idx}'><x xmlns='http://jabber.org/protocol/muc'>"
            "<history maxstanzas='0'/></x></presence>").encode()


def groupchat(idx: int, rnd: int, count: int) -> bytes:
    return b"".join(
        f"<message type='groupchat' to='{ROOM}' id='g{idx}-{rnd}-{k}'><body>groupchat {k} of round {rnd} "
        f"from occupant {idx}</body></message>".encode() for k in range(count))


# ---- load client --------------------------------------------------------------------------------

class MucClient(Conn):
    """A connection that counts presences and groupchat bodies and notes its own join (110)."""

    __slots__ = ("presences", "pres_expected", "pres_done", "bodies", "body_expected", "body_done",
                 "joined", "t_join_sent", "t_joined", "created", "cfg_done", "cfg_ok", "errors",
                 "error_sample", "closed", "nbytes")

    def __init__(self, idx: int) -> None:
        super().__init__(idx)
        self.presences = 0
        self.pres_expected = 1 << 60
        self.pres_done = asyncio.Event()
        self.bodies = 0
        self.body_expected = 1 << 60
        self.body_done = asyncio.Event()
        self.joined = asyncio.Event()
        self.t_join_sent = self.t_joined = float("nan")
        self.created = False
        self.cfg_done = asyncio.Event()
        self.cfg_ok = False
        self.errors = 0
        self.error_sample = b""
        self.closed = False
        self.nbytes = 0  # bytes received since connect() returned

    def _scan(self, part: bytes) -> None:
        """`part` ends at a '>', so no tag in it is cut: every marker here lies inside one tag."""
        n = part.count(PRESENCE_START)
        if n:
            self.presences += n
            if self.presences >= self.pres_expected:
                self.pres_done.set()
        # the status may come in a later read than its presence's start tag: look at every part
        if not self.joined.is_set() and (SELF_110[0] in part or SELF_110[1] in part):
            self.t_joined = time.perf_counter()
            self.joined.set()
        if not self.created and (CREATED_201[0] in part or CREATED_201[1] in part):
            self.created = True
        n = part.count(BODY_END)
        if n:
            self.bodies += n
            if self.bodies >= self.body_expected:
                self.body_done.set()
        if self.idx == 0 and not self.cfg_done.is_set():
            for marker in CFG_ID:
                i = part.find(marker)
                if i >= 0:
                    tag = part[part.rfind(b"<", 0, i):part.find(b">", i)]
                    self.cfg_ok = b"result" in tag
                    self.cfg_done.set()
                    break
        if b"error" in part:
            k = part.count(b"type='error'") + part.count(b'type="error"') + part.count(b"<stream:error")
            if k:
                self.errors += k
                if not self.error_sample:
                    i = max(part.find(b"type='error'"), part.find(b'type="error"'), part.find(b"<stream:error"))
                    self.error_sample = part[max(0, i - 300):i + 500]

    async def read_loop(self) -> None:
        data, self.buf = self.buf, b""
        tail = b""
        try:
            while True:
                if data:
                    self.nbytes += len(data)
                    chunk = tail + data if tail else data
                    cut = chunk.rfind(b">") + 1
                    if cut:
                        self._scan(chunk if cut == len(chunk) else chunk[:cut])
                    tail = chunk[cut:]
                data = await self.reader.read(262144)
                if not data:
                    break
        except (OSError, ConnectionError):
            pass
        self.closed = True
        for ev in (self.pres_done, self.body_done, self.joined, self.cfg_done):
            ev.set()  # whoever waits notices self.closed

    def send_join(self) -> None:
        self.t_join_sent = time.perf_counter()
        self.writer.write(join_stanza(self.idx))


# ---- one run --------------------------------------------------------------------------------------

@dataclass
class Run:
    server: str
    n: int
    detail: str = ""
    connect_wall: float = float("nan")
    join_latencies: list[float] = field(default_factory=list)  # clients 1..N-1, in join order
    last_join: float = float("nan")     # the last joiner: join sent -> its 110
    first_join: float = float("nan")    # client 0: join sent -> 110 (room creation)
    config_rtt: float = float("nan")    # client 0: instant-room form sent -> result
    join_wall: float = float("nan")     # client 0's join sent -> every client has all N presences
    join_cpu: float = float("nan")
    join_client_cpu: float = float("nan")
    presences: int = 0
    extra_presences: int = 0            # beyond N*N: presences a server re-sent to client 0 on configuration
    join_bytes: int = 0                 # received by all clients in the join phase
    created_201: bool = False
    gc_walls: list[float] = field(default_factory=list)
    gc_delivered: int = 0
    gc_cpu: float = 0.0
    gc_client_cpu: float = 0.0
    gc_bytes: int = 0
    errors: int = 0
    rss_mb: float = float("nan")

    # derived figures (the table's rows)
    @property
    def last_join_ms(self) -> float:
        return self.last_join * 1000

    @property
    def median_join_ms(self) -> float:
        return statistics.median(self.join_latencies) * 1000 if self.join_latencies else float("nan")

    @property
    def presences_per_s(self) -> float:
        return self.presences / self.join_wall

    @property
    def join_cpu_us_per_presence(self) -> float:
        return self.join_cpu / self.presences * 1e6 if self.presences else float("nan")

    @property
    def join_busy_pct(self) -> float:
        return self.join_cpu / self.join_wall * 100

    @property
    def bytes_per_presence(self) -> float:
        return self.join_bytes / self.presences if self.presences else float("nan")

    @property
    def bytes_per_delivery(self) -> float:
        return self.gc_bytes / self.gc_delivered if self.gc_delivered else float("nan")

    @property
    def gc_busy_pct(self) -> float:
        return self.gc_cpu / self.gc_wall * 100 if self.gc_walls else float("nan")

    @property
    def gc_per_s(self) -> float:
        if not self.gc_walls:
            return float("nan")
        per_round = self.gc_delivered / len(self.gc_walls)
        return statistics.median(per_round / w for w in self.gc_walls)

    @property
    def gc_cpu_per_1000(self) -> float:
        return self.gc_cpu / self.gc_delivered * 1000 if self.gc_delivered else float("nan")

    @property
    def gc_wall(self) -> float:
        return sum(self.gc_walls) if self.gc_walls else float("nan")


async def _wait(ev: asyncio.Event, timeout: float, what: str) -> None:
    try:
        await asyncio.wait_for(ev.wait(), timeout)
    except asyncio.TimeoutError:
        raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}") from None


async def run_room(pid: int, host: str, port: int, n: int, args: argparse.Namespace, res: Run) -> None:
    clients = [MucClient(i) for i in range(n)]
    sem = asyncio.Semaphore(25)

    async def connect(c: MucClient) -> None:
        async with sem:
            await asyncio.wait_for(c.connect(host, port), args.step_timeout)

    def check(c: MucClient, what: str) -> None:
        if c.closed:
            raise BenchError(f"client {c.idx}: connection closed while waiting for {what}; "
                             f"first error: {c.error_sample[:800]!r}")

    readers: list[asyncio.Future] = []
    try:
        # -- 1: connect (not timed in the join figures)
        t0 = time.perf_counter()
        await asyncio.gather(*(connect(c) for c in clients))
        res.connect_wall = time.perf_counter() - t0
        readers = [asyncio.ensure_future(c.read_loop()) for c in clients]
        await asyncio.sleep(0.3)  # initial-presence echoes are read; the server goes idle
        for c in clients:
            c.presences, c.nbytes = 0, 0
            c.pres_expected = n

        # -- 2: joins
        first = clients[0]
        cpu0, own0 = cpu_seconds(pid), time.process_time()
        first.send_join()
        t_start = first.t_join_sent
        await _wait(first.joined, args.step_timeout, "client 0's own presence (110)")
        check(first, "its join")
        res.first_join = first.t_joined - first.t_join_sent
        res.created_201 = first.created
        t_cfg = time.perf_counter()
        first.writer.write(PUBLIC_JIDS_ROOM if args.public_jids else INSTANT_ROOM)
        await _wait(first.cfg_done, args.step_timeout, "the result of the instant-room form")
        check(first, "the instant-room result")
        res.config_rtt = time.perf_counter() - t_cfg
        if not first.cfg_ok:
            raise BenchError(f"the instant-room form was refused: {first.error_sample[:800]!r}")
        if first.presences != 1:
            # a server that re-sends the owner's presence on configuration (our server when the room
            # becomes non-anonymous, --public-jids): expect those too. Both servers send them before
            # the IQ result, so they have arrived by now.
            res.extra_presences = first.presences - 1
            first.pres_expected = first.presences + n - 1

        join_sem = asyncio.Semaphore(args.join_concurrency)
        order: list[MucClient] = []

        async def join(c: MucClient) -> None:
            async with join_sem:
                order.append(c)
                c.send_join()
                await _wait(c.joined, args.step_timeout, f"client {c.idx}'s own presence (110)")
                check(c, "its join")

        await asyncio.gather(*(join(c) for c in clients[1:]))
        remaining = max(1.0, args.step_timeout)
        for c in clients:
            await _wait(c.pres_done, remaining, f"client {c.idx}'s presences ({c.presences} of {c.pres_expected})")
            check(c, "presences")
        t_end = time.perf_counter()
        res.join_cpu = cpu_seconds(pid) - cpu0
        res.join_client_cpu = time.process_time() - own0
        res.join_wall = t_end - t_start
        res.join_latencies = [c.t_joined - c.t_join_sent for c in order]
        res.last_join = res.join_latencies[-1] if res.join_latencies else float("nan")
        res.presences = sum(c.presences for c in clients)
        res.join_bytes = sum(c.nbytes for c in clients)
        res.errors = sum(c.errors for c in clients)
        if res.presences != n * n + res.extra_presences:
            raise BenchError(f"{res.presences} presences received, expected {n * n + res.extra_presences}")
        if res.errors:
            bad = next(c for c in clients if c.errors)
            raise BenchError(f"{res.errors} error stanzas in the join phase; first: {bad.error_sample[:800]!r}")
        await asyncio.sleep(0.2)  # subject messages and the like are read; the server goes idle
        for c in clients:
            c.nbytes = 0

        # -- 3: groupchat
        senders = clients[:min(args.senders, n)]
        per_round = len(senders) * args.messages
        for rnd in range(args.gc_rounds):
            for c in clients:
                c.bodies, c.body_expected, c.body_done = 0, per_round, asyncio.Event()
            payloads = [groupchat(c.idx, rnd, args.messages) for c in senders]
            cpu2, own2, t2 = cpu_seconds(pid), time.process_time(), time.perf_counter()
            for c, data in zip(senders, payloads):
                c.writer.write(data)
            for c in clients:
                await _wait(c.body_done, args.step_timeout,
                            f"client {c.idx}'s groupchat messages ({c.bodies} of {per_round}, round {rnd + 1})")
                check(c, "groupchat messages")
            t3 = time.perf_counter()
            res.gc_cpu += cpu_seconds(pid) - cpu2
            res.gc_client_cpu += time.process_time() - own2
            res.gc_walls.append(t3 - t2)
            res.gc_delivered += sum(c.bodies for c in clients)
            res.gc_bytes += sum(c.nbytes for c in clients)
            for c in clients:
                c.nbytes = 0
            if sum(c.bodies for c in clients) != per_round * n:
                raise BenchError(f"round {rnd + 1}: {sum(c.bodies for c in clients)} groupchat deliveries, "
                                 f"expected {per_round * n}")
        res.errors = sum(c.errors for c in clients)
        if res.errors:
            bad = next(c for c in clients if c.errors)
            raise BenchError(f"{res.errors} error stanzas; first: {bad.error_sample[:800]!r}")
        res.rss_mb = rss_mb(pid)
    finally:
        await asyncio.gather(*(c.close() for c in clients if hasattr(c, "writer")), return_exceptions=True)
        for r in readers:
            r.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


def bench_once(server, n: int, args: argparse.Namespace, deadline: float) -> Run:
    res = Run(server.name, n)
    remaining = deadline - time.monotonic()
    if remaining <= 1.0:
        raise BenchError("overall timeout reached before this server was started")
    server.start(timeout=min(30.0, remaining))
    try:
        res.detail = server.detail
        assert server.proc is not None
        remaining = deadline - time.monotonic()
        try:
            asyncio.run(asyncio.wait_for(run_room(server.proc.pid, server.host, server.port, n, args, res),
                                         max(1.0, remaining)))
        except asyncio.TimeoutError:
            raise BenchError(f"overall timeout ({args.timeout:.0f}s) reached") from None
        if server.proc.poll() is not None:
            raise BenchError(f"server exited with status {server.proc.returncode} during the run")
    finally:
        server.stop()
    return res


# ---- report -------------------------------------------------------------------------------------

ROWS = [
    # label, attribute, digits, lower is better
    ("last join latency ms (join -> own 110)", "last_join_ms", 1, True),
    ("median join latency ms", "median_join_ms", 1, True),
    ("join phase wall s (all saw N presences)", "join_wall", 2, True),
    ("server CPU s, join phase", "join_cpu", 2, True),
    ("presences delivered per s", "presences_per_s", 0, False),
    ("server CPU us per presence delivered", "join_cpu_us_per_presence", 1, True),
    ("server CPU busy % in join phase", "join_busy_pct", 0, True),
    ("load client CPU s, join phase", "join_client_cpu", 2, True),
    ("bytes received per presence", "bytes_per_presence", 0, True),
    ("groupchat deliveries per s", "gc_per_s", 0, False),
    ("server CPU s per 1000 deliveries", "gc_cpu_per_1000", 3, True),
    ("groupchat wall s (all rounds)", "gc_wall", 2, True),
    ("server CPU busy % in groupchat", "gc_busy_pct", 0, True),
    ("bytes received per groupchat delivery", "bytes_per_delivery", 0, True),
    ("server RSS MB after", "rss_mb", 1, True),
]


def table(results: dict[tuple[str, int], list[Run]], sizes: list[int]) -> str:
    body = []
    for n in sizes:
        ours, pros = results.get(("ours", n)), results.get(("prosody", n))
        if not ours and not pros:
            continue
        for label, attr, digits, _ in ROWS:
            a = median(getattr(r, attr) for r in ours or ())
            b = median(getattr(r, attr) for r in pros or ())
            ratio = a / b if (ours and pros and b) else float("nan")
            body.append([str(n), label, fmt(a, digits), fmt(b, digits), fmt(ratio, 2)])
    return md_table(["N", "metric", "ours", "prosody", "ours/prosody"], body, left=2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="50,100,200", help="room sizes N, comma-separated (default 50,100,200)")
    ap.add_argument("--join-concurrency", type=int, default=1,
                    help="joins in flight after the first (default 1: one after another)")
    ap.add_argument("--senders", type=int, default=10, help="occupants that send groupchat (default 10)")
    ap.add_argument("--messages", type=int, default=20, help="groupchat messages per sender per round (default 20)")
    ap.add_argument("--gc-rounds", type=int, default=3,
                    help="groupchat rounds; deliveries/s is the median round (default 3)")
    ap.add_argument("--public-jids", action="store_true",
                    help="configure the room non-anonymous (muc#roomconfig_whois = anyone) instead of the "
                         "plain instant room; Prosody runs with muc_room_default_public_jids = true either way")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run everything (fresh server processes) this many times, alternating servers; "
                         "table cells are medians (default 1)")
    ap.add_argument("--only", choices=("ours", "prosody"), help="bench one server only")
    ap.add_argument("--timeout", type=float, default=900.0, help="overall time limit in seconds (default 900)")
    ap.add_argument("--step-timeout", type=float, default=60.0,
                    help="time limit for each wait (a connect, a join, a phase's completion; default 60)")
    ap.add_argument("--prosody", default=default_prosody(), help="prosody binary")
    ap.add_argument("--no-uvloop", action="store_true", help="run the load client on plain asyncio")
    args = ap.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error("--sizes: comma-separated integers")
    if not sizes or min(sizes) < 2 or args.join_concurrency < 1 or args.senders < 1 or args.messages < 1 \
            or args.gc_rounds < 1 or args.repeat < 1:
        ap.error("need sizes >= 2 and at least 1 for concurrency, senders, messages, rounds and repeat")

    client_loop = install_uvloop(args.no_uvloop)
    deadline = time.monotonic() + args.timeout
    results: dict[tuple[str, int], list[Run]] = {}
    failed = False
    with tempfile.TemporaryDirectory(prefix="muc-bench-") as tmp:
        servers = []
        if args.only in (None, "ours"):
            servers.append(OurServer(tmp))
        if args.only in (None, "prosody"):
            if prosody_usable(args.prosody):
                servers.append(ProsodyServer(tmp, args.prosody, extra_config=PROSODY_MUC, script="bench/muc_join.py"))
            else:
                print(f"note: prosody not found at {args.prosody}; benching our server only", file=sys.stderr)
        for rep_no in range(args.repeat):
            for n in sizes:
                for srv in servers:
                    tag = f"[{srv.name} N={n}]" if args.repeat == 1 else f"[{srv.name} N={n} {rep_no + 1}/{args.repeat}]"
                    print(f"{tag} ...", file=sys.stderr, flush=True)
                    try:
                        r = bench_once(srv, n, args, deadline)
                    except BenchError as exc:
                        failed = True
                        print(f"{tag} FAILED: {exc}", file=sys.stderr)
                        extra = srv_log(srv)
                        if extra.strip():
                            print(f"{tag} server output:\n{extra}", file=sys.stderr)
                        continue
                    results.setdefault((srv.name, n), []).append(r)
                    print(f"{tag} ok: connect {r.connect_wall:.2f}s; first join {r.first_join * 1000:.1f} ms "
                          f"(201: {'yes' if r.created_201 else 'no'}), config {r.config_rtt * 1000:.1f} ms; "
                          f"last join {r.last_join_ms:.1f} ms, joins {r.join_wall:.2f}s wall / {r.join_cpu:.2f}s "
                          f"server CPU / {r.join_client_cpu:.2f}s client CPU, {r.presences} presences; groupchat "
                          f"{r.gc_delivered} deliveries, rounds {', '.join(f'{w:.3f}' for w in r.gc_walls)} s, "
                          f"{r.gc_per_s:,.0f}/s", file=sys.stderr, flush=True)
            if failed:
                break

    print(f"# muc_join: N occupants join {ROOM} (join concurrency {args.join_concurrency}, no history, "
          f"{'whois=anyone form' if args.public_jids else 'instant room'}), then {args.senders} senders x {args.messages} groupchat messages x {args.gc_rounds} rounds")
    print(f"# load client: {client_loop}, {os.cpu_count()} CPUs; loopback TCP, SASL ANONYMOUS, no TLS; "
          f"fresh server process per (server, N, repeat)")
    details = {}
    for (name, _), runs in results.items():
        details.setdefault(name, runs[0].detail)
    for name, detail in details.items():
        print(f"# {name}: {detail}" + (f"; cells are medians of {args.repeat} repeats" if args.repeat > 1 else ""))
    if results:
        print(table(results, sizes))
    else:
        print("# no results")
    print("# ratio < 1 is better for ours in the ms/s/CPU/RSS rows, > 1 in the per-s rows")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
