"""Forwarding throughput of OUR bridge (bridge/): N synthetic video senders, N-to-N, real ICE + DTLS-SRTP.

    python bench/bridge_forward.py [--sizes 5,10,20] [--repeat 1] [--duration 10] [--rate 350]
                                   [--warmup 2] [--bridge-cpu 0] [--load-cpu 1] [--nice -10]
                                   [--quiet 15] [--pyspy /tmp/prefix [--pyspy-native]] [--json out.json]

Columns: offered = RTP packets/s the participants sent; bridge in/out = the bridge's own counters
(transport packets_in, conference packets_forwarded) over the measured window; loss = over the
whole run (warm-up + window + drain), 1 - datagrams received / (sent x (N-1)), and "of which at
bridge" the part the bridge never forwarded (the rest was lost at the participants' sockets, i.e.
in the load generator); CPU-s/1000 fwd and fwd per CPU-s = bridge process utime+stime per
forwarded packet; achieved/ceiling = fwd per CPU-s divided by the crypto ceiling (below), and
achieved/that the same against the crypto+sendto ceiling (one blocking sendto per output too).

Two processes:

- the bridge (this file with ``--serve``, started once per conference size): ``bridge.bridge.Bridge``
  on uvloop, pinned to one core, driven over a JSON-lines control channel on its stdin/stdout
  (``modify``: a COLIBRI2 ``<conference-modify/>`` in, ``<conference-modified/>`` out, parsed and
  built with ``jitsi_protocols.colibri2``; ``stats``: counters). Its CPU is read from
  ``/proc/<pid>/stat``.
- the load (this process, pinned to the other core): N participants without RTCPeerConnection.
  Each is ``loadgen.synthetic.ClientTransport``: the bridge's transport with the roles swapped
  (ICE controlled, DTLS client, ``setup=active``), so ICE, the DTLS handshake and the SRTP keys are real. A participant
  announces one video source (its SSRC) and its transport in a COLIBRI2 update, like the focus
  does, then sends pre-built VP8-like RTP packets (12-byte header + 1100-byte payload), SRTP-protected
  with its own session, ``rate`` packets/s in bursts every 20 ms (7 packets at 350 pkt/s),
  phase-shifted per participant.

Received media is counted at the participants' sockets WITHOUT decrypting every packet (that would
cost the load process as much crypto as the bridge): once connected, the selected pair's
``datagram_received`` is replaced by a counter of SRTP datagrams (STUN and DTLS still go to aioice).
Every 64th RTP datagram is decrypted with the participant's SRTP session to check it is valid SRTP
addressed to one of that participant's slot SSRCs. Kernel socket drops (``/proc/net/udp``) are read
for the bridge's and the participants' sockets, so loss can be placed.

Crypto ceiling: in this process, before traffic, the same pylibsrtp calls as the forwarding needs
(1 unprotect + N-1 protect per input packet, N-1 different sessions, the packet size sent and
the SRTP profile the DTLS handshakes actually negotiated), no I/O, one core.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import statistics
import struct
import subprocess
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import pylibsrtp  # noqa: E402
from lxml import etree  # noqa: E402

from loadgen.synthetic import ClientTransport  # noqa: E402  (the participant side of a bridge transport)
from jitsi_protocols import colibri2  # noqa: E402
from jitsi_protocols.model import IceTransport, Source  # noqa: E402
from jitsi_protocols.sdp import default_media  # noqa: E402

MEETING = "benchconf"
PAYLOAD = 1100
TICK = 0.020
CLK_TCK = os.sysconf("SC_CLK_TCK")
VP8_PT = 100


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_times(cpu: int | None) -> tuple[float, float]:
    """(busy incl. steal, steal) jiffies-as-seconds of one CPU (or all) from /proc/stat."""
    tag = "cpu" if cpu is None else f"cpu{cpu}"
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts[0] == tag:
                v = [int(x) for x in parts[1:9]]
                idle = v[3] + v[4]
                return (sum(v) - idle) / CLK_TCK, v[7] / CLK_TCK
    return 0.0, 0.0


def udp_drops(ports: set[int]) -> int:
    """Sum of the kernel's per-socket drop counters for 127.0.0.1 UDP sockets on these ports."""
    total = 0
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            parts = line.split()
            port = int(parts[1].split(":")[1], 16)
            if port in ports:
                total += int(parts[-1])
    return total


# =============================================================================================
# The bridge process
# =============================================================================================
async def serve(args: argparse.Namespace) -> None:
    from bridge.bridge import Bridge
    from jitsi_py.config import BridgeSection

    bridge = Bridge(BridgeSection(id="benchjvb", last_n=args.last_n, audio_slots=args.audio_slots,
                                  endpoint_timeout=120))
    await bridge.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout

    def reply(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    while True:
        line = await reader.readline()
        if not line:
            break
        req = json.loads(line)
        op = req.get("op")
        try:
            if op == "modify":
                mod = colibri2.parse_modify(etree.fromstring(req["xml"].encode()))
                res = await bridge.handle(mod, requester="bench")
                reply({"xml": etree.tostring(colibri2.modified_element(res)).decode()})
            elif op == "stats":
                eps = []
                for conf in bridge.conferences.values():
                    for ep in conf.endpoints.values():
                        t = ep.transport
                        prof = None
                        ports = []
                        if t is not None:
                            ssl = getattr(t._dtls, "_ssl", None)
                            if ssl is not None and t.state == "connected":
                                prof = (ssl.get_selected_srtp_profile() or b"").decode()
                            ports = [p.transport.get_extra_info("sockname")[1]
                                     for p in t._connection._protocols if p.transport is not None]
                        eps.append({"id": ep.id, "state": t.state if t else "none", "profile": prof,
                                    "ports": ports, **(dict(t.stats) if t else {}),
                                    "dropped_ep": ep.packets_dropped})
                reply({"bridge": bridge.stats(), "endpoints": eps})
            elif op == "quit":
                reply({"ok": True})
                break
            else:
                reply({"error": f"unknown op {op!r}"})
        except Exception as exc:  # report to the load process, keep serving
            reply({"error": f"{type(exc).__name__}: {exc}"})
    await bridge.stop()


# =============================================================================================
# The load process
# =============================================================================================
class Participant:
    def __init__(self, ep_id: str, ssrc: int) -> None:
        self.id = ep_id
        self.ssrc = ssrc
        self.transport = ClientTransport("127.0.0.1", on_rtp=self._early, on_rtcp=lambda d: None)
        self.bridge_transport: IceTransport | None = None
        self.slot_ssrcs: set[int] = set()
        self.rx_rtp = 0
        self.rx_rtcp = 0
        self.checked = 0
        self.check_bad = 0
        self.seq = secrets.randbits(16)
        self.ts = secrets.randbits(32)
        self.sent = 0
        self.port = 0
        self.rx_srtp: Any = None

    def _early(self, data: bytes) -> None:  # media that came through aiortc before the counter
        self.rx_rtp += 1

    def fast_path(self, rcvbuf: int) -> None:
        """Count SRTP datagrams on the selected socket; STUN/DTLS still go to aioice."""
        t = self.transport
        pair = t._connection._nominated[1]
        proto = pair.protocol
        sock = proto.transport.get_extra_info("socket")
        try:
            import socket
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        except OSError:
            pass
        self.port = proto.transport.get_extra_info("sockname")[1]
        previous = proto.datagram_received
        self.rx_srtp = t._dtls._rx_srtp
        unprotect = self.rx_srtp.unprotect
        slots = self.slot_ssrcs

        def datagram_received(data: bytes, addr: Any) -> None:
            b0 = data[0] if data else 0
            if 127 < b0 < 192:
                if 191 < data[1] < 224:
                    self.rx_rtcp += 1
                    return
                n = self.rx_rtp = self.rx_rtp + 1
                if n & 63 == 0:
                    self.checked += 1
                    try:
                        plain = unprotect(data)
                        if int.from_bytes(plain[8:12], "big") not in slots:
                            self.check_bad += 1
                    except pylibsrtp.Error:
                        self.check_bad += 1
                return
            previous(data, addr)

        proto.datagram_received = datagram_received

    def send_burst(self, count: int, payload: bytes, hdr: struct.Struct) -> None:
        t = self.transport
        protect = t._tx_srtp.protect
        sendto = t._udp.sendto
        peer = t._peer
        seq, ts, ssrc = self.seq, self.ts, self.ssrc
        for i in range(count):
            marker = 0x80 if i == count - 1 else 0
            pkt = hdr.pack(0x80, marker | VP8_PT, seq, ts, ssrc) + payload
            sendto(protect(pkt), peer)
            seq = (seq + 1) & 0xFFFF
        self.seq = seq
        self.ts = (ts + 1800) & 0xFFFFFFFF  # 90 kHz, one frame per 20 ms burst
        self.sent += count


def vp8_like_payload() -> bytes:
    # VP8 payload descriptor (X=1, S=1, PID=0; I=1, 15-bit picture id) + a payload header, then noise
    desc = bytes([0x90, 0x80, 0x80, 0x01]) + bytes([0x10, 0x02, 0x00])
    return desc + os.urandom(PAYLOAD - len(desc))


def crypto_ceiling(profile_name: str, n: int, size: int, seconds: float = 1.0) -> tuple[float, float]:
    """Forwarded (protected) packets/s on one core for 1 unprotect + (n-1) protect per input,
    and the µs per input packet. Median of 3 runs."""
    prof = getattr(pylibsrtp.Policy, "SRTP_PROFILE_" + profile_name.replace("SRTP_", "", 1))
    keylen = {"AEAD_AES_256_GCM": 44, "AEAD_AES_128_GCM": 28, "AES128_CM_SHA1_80": 30}[profile_name.replace("SRTP_", "", 1)]

    def session(key: bytes, direction: int) -> pylibsrtp.Session:
        p = pylibsrtp.Policy(key=key, ssrc_type=direction, srtp_profile=prof)
        p.allow_repeat_tx = True
        p.window_size = 1024
        return pylibsrtp.Session(p)

    key = os.urandom(keylen)
    hdr = struct.Struct("!BBHII")
    body = os.urandom(size - 12)
    count = max(5000, 100000 // n)
    sender = session(key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    srtp = [sender.protect(hdr.pack(0x80, VP8_PT, i & 0xFFFF, i * 1800, 0x1234) + body) for i in range(count)]
    results = []
    for _ in range(3):
        rx = session(key, pylibsrtp.Policy.SSRC_ANY_INBOUND)
        txs = [session(os.urandom(keylen), pylibsrtp.Policy.SSRC_ANY_OUTBOUND).protect for _ in range(n - 1)]
        done = 0
        t0 = time.perf_counter()
        while True:
            for s in srtp[done % count:done % count + 500]:
                p = rx.unprotect(s)
                for protect in txs:
                    protect(p)
            done += 500
            if time.perf_counter() - t0 >= seconds / 3 or done >= count:
                break
        dt = time.perf_counter() - t0
        results.append(done / dt)
    per_in = statistics.median(results)
    return per_in * (n - 1), 1e6 / per_in


def crypto_sendto_ceiling(profile_name: str, n: int, size: int, batches: int = 40) -> tuple[float, float]:
    """Like crypto_ceiling, plus one blocking socket.sendto per output to n-1 loopback sockets
    (drained between timed batches, untimed): what a Python loop with one syscall per datagram can
    forward per core at best. On loopback, sendto also does the receiving socket's delivery work.
    Returns (forwarded/s, µs per sendto alone)."""
    import socket
    prof = getattr(pylibsrtp.Policy, "SRTP_PROFILE_" + profile_name.replace("SRTP_", "", 1))
    keylen = {"AEAD_AES_256_GCM": 44, "AEAD_AES_128_GCM": 28, "AES128_CM_SHA1_80": 30}[profile_name.replace("SRTP_", "", 1)]

    def session(key: bytes, direction: int) -> pylibsrtp.Session:
        p = pylibsrtp.Policy(key=key, ssrc_type=direction, srtp_profile=prof)
        p.allow_repeat_tx = True
        p.window_size = 1024
        return pylibsrtp.Session(p)

    sinks = []
    for _ in range(n - 1):
        r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        r.bind(("127.0.0.1", 0))
        r.setblocking(False)
        sinks.append(r)
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    addrs = [r.getsockname() for r in sinks]
    key = os.urandom(keylen)
    hdr = struct.Struct("!BBHII")
    body = os.urandom(size - 12)
    per_batch = max(1, 1000 // (n - 1))  # inputs per batch: about 1000 datagrams, fits the sinks
    sender = session(key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    srtp = [sender.protect(hdr.pack(0x80, VP8_PT, i & 0xFFFF, i * 1800, 0x1234) + body)
            for i in range(per_batch * batches)]
    rx = session(key, pylibsrtp.Policy.SSRC_ANY_INBOUND)
    txs = [(session(os.urandom(keylen), pylibsrtp.Policy.SSRC_ANY_OUTBOUND).protect, addr) for addr in addrs]
    sendto = out.sendto

    def drain() -> None:
        for r in sinks:
            try:
                while True:
                    r.recv(2048)
            except BlockingIOError:
                pass

    full = 0.0
    plain_send = 0.0
    sends = 0
    fixed = srtp[0]
    for b in range(batches):
        t0 = time.perf_counter()
        for pkt in srtp[b * per_batch:(b + 1) * per_batch]:
            p = rx.unprotect(pkt)
            for protect, addr in txs:
                sendto(protect(p), addr)
        full += time.perf_counter() - t0
        drain()
        t0 = time.perf_counter()
        for _ in range(per_batch):
            for _, addr in txs:
                sendto(fixed, addr)
        plain_send += time.perf_counter() - t0
        sends += per_batch * (n - 1)
        drain()
    for r in sinks:
        r.close()
    out.close()
    return sends / full, 1e6 * plain_send / sends


class BridgeProc:
    def __init__(self, last_n: int, cpu: int | None, nice: int = 0) -> None:
        cmd = [sys.executable, os.path.abspath(__file__), "--serve", "--last-n", str(last_n)]
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu)] + cmd
        if nice and (nice > 0 or os.geteuid() == 0):
            cmd = ["nice", "-n", str(nice)] + cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.pid = self.proc.pid
        self.lock = asyncio.Lock()

    async def call(self, obj: dict[str, Any]) -> dict[str, Any]:
        async with self.lock:
            def rpc() -> dict[str, Any]:
                assert self.proc.stdin and self.proc.stdout
                self.proc.stdin.write(json.dumps(obj) + "\n")
                self.proc.stdin.flush()
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError("bridge process exited")
                return json.loads(line)
            res = await asyncio.get_running_loop().run_in_executor(None, rpc)
        if "error" in res:
            raise RuntimeError(res["error"])
        return res

    async def modify(self, req: colibri2.ConferenceModify) -> colibri2.ConferenceModified:
        res = await self.call({"op": "modify", "xml": etree.tostring(colibri2.modify_element(req)).decode()})
        return colibri2.parse_modified(etree.fromstring(res["xml"].encode()))

    def cpu(self) -> float:
        return proc_cpu(self.pid)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.call({"op": "quit"}), 10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def run_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    bp = BridgeProc(last_n=n, cpu=args.bridge_cpu, nice=args.nice)
    parts = [Participant(f"ep{i}", 0x10000000 + i * 7919) for i in range(n)]
    media = default_media()
    try:
        # 1. allocate every endpoint (what the focus does when someone joins)
        for p in parts:
            res = await bp.modify(colibri2.ConferenceModify(
                meeting_id=MEETING, name=f"{MEETING}@conference.localhost", create=True,
                endpoints=[colibri2.Endpoint(id=p.id, create=True, media=media)]))
            mine = res.endpoints[0]
            p.bridge_transport = mine.transport
            p.slot_ssrcs = {s.ssrc for s in mine.sources}
        # 2. participants gather, answer with their transport + source, connect
        await asyncio.gather(*(p.transport.gather() for p in parts))

        async def connect(p: Participant) -> None:
            await bp.modify(colibri2.ConferenceModify(meeting_id=MEETING, endpoints=[colibri2.Endpoint(
                id=p.id, media=media, transport=p.transport.local_description(), sources_given=True,
                sources=[Source(ssrc=p.ssrc, kind="video", owner=p.id, name=f"{p.id}-v0")])]))
            assert p.bridge_transport is not None
            await p.transport.start(p.bridge_transport)
            p.fast_path(args.rcvbuf)

        t_conn = time.monotonic()
        await asyncio.gather(*(connect(p) for p in parts))
        for _ in range(100):
            st = await bp.call({"op": "stats"})
            if all(e["state"] == "connected" for e in st["endpoints"]):
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"bridge endpoints not connected: {[e['state'] for e in st['endpoints']]}")
        connect_s = time.monotonic() - t_conn
        profiles = {e["profile"] for e in st["endpoints"]}
        client_prof = {(p.transport._dtls._ssl.get_selected_srtp_profile() or b"").decode() for p in parts}
        profile = sorted(profiles | client_prof)[0]
        bridge_ports = {port for e in st["endpoints"] for port in e["ports"]}
        client_ports = {p.port for p in parts}

        # 3. crypto ceiling, same profile and packet size, in this process (no I/O)
        size = 12 + PAYLOAD
        ceiling, us_per_in = crypto_ceiling(profile, n, size)
        io_ceiling, sendto_us = crypto_sendto_ceiling(profile, n, size)

        # 4. traffic: bursts every 20 ms, participant i phase-shifted by i/n of a tick
        payload = vp8_like_payload()
        hdr = struct.Struct("!BBHII")
        per_tick = args.rate * TICK
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        async def sender() -> None:
            start = loop.time() + 0.05
            due = [start + TICK * i / n for i in range(n)]
            owed = [0.0] * n
            step = max(0.001, TICK / n)
            while not stop.is_set():
                now = loop.time()
                for i, p in enumerate(parts):
                    while due[i] <= now:
                        owed[i] += per_tick
                        k = int(owed[i])
                        if k:
                            owed[i] -= k
                            p.send_burst(k, payload, hdr)
                        due[i] += TICK
                nxt = min(due)
                await asyncio.sleep(max(0.0, min(nxt, now + step) - loop.time()))

        def snapshot_local() -> dict[str, Any]:
            return {"t": time.monotonic(), "sent": sum(p.sent for p in parts),
                    "rx": sum(p.rx_rtp for p in parts), "rx_rtcp": sum(p.rx_rtcp for p in parts),
                    "bcpu": bp.cpu(), "lcpu": proc_cpu(os.getpid()),
                    "core": cpu_times(args.bridge_cpu),
                    "bdrops": udp_drops(bridge_ports), "cdrops": udp_drops(client_ports)}

        def bridge_counts(st: dict[str, Any]) -> dict[str, int]:
            return {"fwd": st["bridge"]["packets_forwarded"],
                    "in": sum(e.get("packets_in", 0) for e in st["endpoints"]),
                    "out": sum(e.get("packets_out", 0) for e in st["endpoints"]),
                    "tdrop": sum(e.get("dropped", 0) for e in st["endpoints"]),
                    "epdrop": sum(e.get("dropped_ep", 0) for e in st["endpoints"])}

        async def snapshot() -> dict[str, Any]:
            # the bridge's counters first (under load it answers late), then ours right after
            snap = bridge_counts(await bp.call({"op": "stats"}))
            snap.update(snapshot_local())
            return snap

        z = await snapshot()  # before any media: loss and drops are counted from here, so exact
        rss_before = rss_mb(bp.pid)
        task = asyncio.ensure_future(sender())
        await asyncio.sleep(args.warmup)
        spy = None
        if args.pyspy:
            # sample the bridge during the measured window, from the load core
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(bp.pid), "--duration", str(int(args.duration)),
                                    "--rate", "250", "--function", "--format", "raw",
                                    # native stacks need the target paused per sample (slows it down)
                                    *(["--native"] if args.pyspy_native else ["--nonblocking"]),
                                    "-o", f"{args.pyspy}-N{n}.txt"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        a = await snapshot()
        await asyncio.sleep(args.duration)
        s = await snapshot()  # rates and CPU: a -> s, while sending
        stop.set()
        await task
        await asyncio.sleep(0.5)  # let in-flight and queued packets arrive
        b = await snapshot()  # loss: z -> b, everything sent and everything that arrived
        rss_after = rss_mb(bp.pid)
        if spy is not None:
            await loop.run_in_executor(None, spy.wait)

        wall = s["t"] - a["t"]
        fwd = s["fwd"] - a["fwd"]
        bcpu = s["bcpu"] - a["bcpu"]
        sent_all = b["sent"] - z["sent"]
        expected_all = sent_all * (n - 1)
        received_all = b["rx"] - z["rx"]
        result = {
            "n": n, "profile": profile, "connect_s": connect_s,
            "offered": (s["sent"] - a["sent"]) / wall, "bridge_in": (s["in"] - a["in"]) / wall,
            "bridge_out": fwd / wall, "expected_out": (s["in"] - a["in"]) / wall * (n - 1),
            "received": (s["rx"] - a["rx"]) / wall,
            "loss_pct": 100.0 * (1 - received_all / expected_all) if expected_all else 0.0,
            "in_loss_pct": 100.0 * (1 - (b["in"] - z["in"]) / max(1, sent_all)),
            # not forwarded by the bridge (dropped before it read them, or not sent); the rest of
            # the loss happened at the participants' sockets, i.e. in the load generator
            "bridge_loss_pct": 100.0 * (1 - (b["fwd"] - b["tdrop"] - z["fwd"] + z["tdrop"]) / expected_all)
            if expected_all else 0.0,
            "bridge_cpu_pct": 100.0 * bcpu / wall,
            "cpu_s_per_1000": 1000.0 * bcpu / fwd if fwd else float("nan"),
            "fwd_per_cpu_s": fwd / bcpu if bcpu else float("nan"),
            "load_cpu_pct": 100.0 * (s["lcpu"] - a["lcpu"]) / wall,
            "core_busy_pct": 100.0 * (s["core"][0] - a["core"][0]) / wall,
            "steal_pct": 100.0 * (s["core"][1] - a["core"][1]) / wall,
            "ceiling": ceiling, "ceiling_us_per_in": us_per_in,
            "io_ceiling": io_ceiling, "sendto_us": sendto_us,
            "bridge_sock_drops": b["bdrops"] - z["bdrops"], "client_sock_drops": b["cdrops"] - z["cdrops"],
            "transport_dropped": b["tdrop"] - z["tdrop"], "ep_dropped": b["epdrop"] - z["epdrop"],
            "checked": sum(p.checked for p in parts), "check_bad": sum(p.check_bad for p in parts),
            "rtcp_rx": b["rx_rtcp"] - z["rx_rtcp"], "rss_before": rss_before, "rss_after": rss_after, "sent_all": sent_all, "received_all": received_all,
        }
        result["ratio"] = result["fwd_per_cpu_s"] / ceiling
        result["io_ratio"] = result["fwd_per_cpu_s"] / io_ceiling
        return result
    finally:
        try:
            await asyncio.wait_for(bp.modify(colibri2.ConferenceModify(meeting_id=MEETING, expire=True)), 10)
        except Exception:
            pass
        for p in parts:
            try:
                await asyncio.wait_for(p.transport.stop(), 5)
            except Exception:
                pass
        await bp.close()


def print_table(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    cols = [("N", "n", "{:d}"), ("run", "run", "{:d}"), ("offered in/s", "offered", "{:,.0f}"), ("bridge in/s", "bridge_in", "{:,.0f}"),
            ("bridge out/s", "bridge_out", "{:,.0f}"), ("expected out/s", "expected_out", "{:,.0f}"),
            ("recv/s", "received", "{:,.0f}"), ("loss %", "loss_pct", "{:.2f}"),
            ("of which at bridge %", "bridge_loss_pct", "{:.2f}"),
            ("bridge CPU %", "bridge_cpu_pct", "{:.0f}"), ("CPU-s/1000 fwd", "cpu_s_per_1000", "{:.4f}"),
            ("fwd per CPU-s", "fwd_per_cpu_s", "{:,.0f}"), ("crypto ceiling fwd/s", "ceiling", "{:,.0f}"),
            ("achieved/ceiling", "ratio", "{:.2f}"),
            ("crypto+sendto ceiling fwd/s", "io_ceiling", "{:,.0f}"), ("achieved/that", "io_ratio", "{:.2f}"),
            ("load CPU %", "load_cpu_pct", "{:.0f}")]
    rows = [[fmt.format(r[key]) for _, key, fmt in cols] for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, (h, _, _) in enumerate(cols)]
    print("| " + " | ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, ((h, _, _), w) in enumerate(zip(cols, widths))) + " |")
    print("|" + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths)) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) + " |")
    print("# details per N:")
    for r in results:
        print(f"#  N={r['n']} run {r['run']}: machine {r['busy_before']:.0f} % busy before, bridge core busy {r['core_busy_pct']:.0f} % (steal {r['steal_pct']:.1f} %), "
              f"bridge RSS {r['rss_before']:.0f} -> {r['rss_after']:.0f} MB, profile {r['profile']}, connect {r['connect_s']:.1f} s, input loss "
              f"{r['in_loss_pct']:.2f} %, kernel drops bridge sockets {r['bridge_sock_drops']} / participant "
              f"sockets {r['client_sock_drops']}, bridge send drops {r['transport_dropped']}, unrouted "
              f"{r['ep_dropped']}, RTCP received {r['rtcp_rx']}, sampled decrypts {r['checked']} "
              f"(bad {r['check_bad']}), crypto ceiling {r['ceiling_us_per_in']:.1f} µs per input, "
              f"loopback sendto alone {r['sendto_us']:.2f} µs; whole run incl. warm-up: sent {r['sent_all']:,}, "
              f"received {r['received_all']:,} of {r['sent_all'] * (r['n'] - 1):,}")


def summarize_pyspy(path: str, n: int, top: int = 25) -> None:
    """Self and inclusive sample shares per function from py-spy's raw (collapsed) stacks."""
    try:
        lines = open(path).read().splitlines()
    except OSError:
        print(f"# py-spy N={n}: no output at {path}")
        return
    self_c: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        total += c
        frames = [f.replace(ROOT + "/", "").replace(sys.prefix + "/", "") for f in stack.split(";")]
        frames = [f.split("site-packages/")[-1] for f in frames]
        self_c[frames[-1]] = self_c.get(frames[-1], 0) + c
        for f in set(frames):
            incl[f] = incl.get(f, 0) + c
    print(f"# py-spy N={n}: {total} samples ({path})")
    print("#   self %  incl %  function (file:line)")
    for f, c in sorted(self_c.items(), key=lambda kv: -kv[1])[:top]:
        print(f"#   {100 * c / total:6.1f}  {100 * incl[f] / total:6.1f}  {f}")
    print("#   -- top inclusive --")
    for f, c in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        print(f"#   {100 * self_c.get(f, 0) / total:6.1f}  {100 * c / total:6.1f}  {f}")


async def wait_quiet(max_busy: float, timeout: float) -> float:
    """Wait until the machine's CPUs are at most max_busy % busy over 1 s (others share it)."""
    deadline = time.monotonic() + timeout
    while True:
        b0 = cpu_times(None)[0]
        await asyncio.sleep(1.0)
        busy = 100.0 * (cpu_times(None)[0] - b0) / (os.cpu_count() or 1)
        if busy <= max_busy or time.monotonic() > deadline:
            return busy


async def load_main(args: argparse.Namespace) -> None:
    import aiortc
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"# bridge_forward: sizes {sizes}, {args.rate} pkt/s per participant in bursts every 20 ms, "
          f"{12 + PAYLOAD}-byte RTP, {args.duration} s measured after {args.warmup} s warm-up")
    print(f"# python {sys.version.split()[0]}, uvloop, aiortc {aiortc.__version__}, pylibsrtp "
          f"{pylibsrtp.__version__}; {os.cpu_count()} CPUs; bridge on CPU {args.bridge_cpu}, load on CPU "
          f"{args.load_cpu}; nice {args.nice}; participant SO_RCVBUF {args.rcvbuf}")
    results = []
    for n in sizes:
        for rep in range(args.repeat):
            busy = await wait_quiet(args.quiet, args.quiet_wait) if args.quiet < 100 else 0.0
            r = await run_size(n, args)
            r["busy_before"] = busy
            r["run"] = rep + 1
            results.append(r)
            print(f"# N={n} run {rep + 1}: in {r['bridge_in']:,.0f}/s out {r['bridge_out']:,.0f}/s "
                  f"loss {r['loss_pct']:.2f} % bridge CPU {r['bridge_cpu_pct']:.0f} %", flush=True)
    print_table(results, args)
    if args.pyspy:
        for r in results:
            summarize_pyspy(f"{args.pyspy}-N{r['n']}.txt", r["n"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", action="store_true", help="internal: run the bridge process")
    ap.add_argument("--last-n", type=int, default=20)
    ap.add_argument("--audio-slots", type=int, default=2)
    ap.add_argument("--sizes", default="5,10,20")
    ap.add_argument("--repeat", type=int, default=1, help="runs per size, each with a fresh bridge process")
    ap.add_argument("--quiet", type=float, default=15.0,
                    help="before each run wait until the machine is at most this %% busy (100: don't wait)")
    ap.add_argument("--quiet-wait", type=float, default=180.0, help="longest wait for --quiet, s")
    ap.add_argument("--nice", type=int, default=-10,
                    help="niceness of the bridge and load processes (negative needs root; 0: leave it): on a "
                         "shared machine other processes would otherwise take time from the bridge's core")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rate", type=float, default=350.0, help="RTP packets/s per participant")
    ap.add_argument("--bridge-cpu", type=int, default=0 if (os.cpu_count() or 1) >= 2 else None)
    ap.add_argument("--load-cpu", type=int, default=1 if (os.cpu_count() or 1) >= 2 else None)
    ap.add_argument("--rcvbuf", type=int, default=4 * 1024 * 1024, help="participant socket SO_RCVBUF")
    ap.add_argument("--json", default="", help="also write the results here")
    ap.add_argument("--pyspy", default="", help="profile the bridge with py-spy during the measured window: "
                    "raw stacks to PREFIX-N<n>.txt, top functions printed")
    ap.add_argument("--pyspy-native", action="store_true", help="py-spy --native (C frames too)")
    args = ap.parse_args()
    import uvloop
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.serve:
        uvloop.run(serve(args))
        return
    if args.load_cpu is not None:
        os.sched_setaffinity(0, {args.load_cpu})
    if args.nice and (args.nice > 0 or os.geteuid() == 0):
        os.nice(args.nice)
    uvloop.run(load_main(args))


if __name__ == "__main__":
    main()
