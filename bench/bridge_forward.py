"""Forwarding throughput of OUR bridge (bridge/): N synthetic video senders, N-to-N, real ICE + DTLS-SRTP.

    python bench/bridge_forward.py [--sizes 5,10,20] [--duration 10] [--rate 350] [--warmup 2]
                                   [--bridge-cpu 0] [--load-cpu 1]

Two processes:

- the bridge (this file with ``--serve``, started once per conference size): ``bridge.bridge.Bridge``
  on uvloop, pinned to one core, driven over a JSON-lines control channel on its stdin/stdout
  (``modify``: a COLIBRI2 ``<conference-modify/>`` in, ``<conference-modified/>`` out, parsed and
  built with ``xmpp_plugins.conference.colibri2``; ``stats``: counters). Its CPU is read from
  ``/proc/<pid>/stat``.
- the load (this process, pinned to the other core): N participants without RTCPeerConnection.
  Each is ``bridge.transport.EndpointTransport`` with the roles swapped (ICE controlled, DTLS
  client, ``setup=active``), so ICE, the DTLS handshake and the SRTP keys are real. A participant
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

from bridge.transport import EndpointTransport  # noqa: E402
from xmpp_plugins.conference import colibri2  # noqa: E402
from xmpp_plugins.conference.model import Fingerprint, IceTransport, Source  # noqa: E402
from xmpp_plugins.conference.sdp import default_media  # noqa: E402

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
class ClientTransport(EndpointTransport):
    """The participant's side: ICE controlled, DTLS client (``setup=active``)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._connection.ice_controlling = False
        self._dtls._set_role("client")

    def local_description(self) -> IceTransport:
        t = super().local_description()
        t.fingerprints = [Fingerprint(hash=f.hash, value=f.value, setup="active") for f in t.fingerprints]
        return t


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
    count = 20000 if n <= 5 else max(2000, 60000 // n)
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


class BridgeProc:
    def __init__(self, last_n: int, cpu: int | None) -> None:
        cmd = [sys.executable, os.path.abspath(__file__), "--serve", "--last-n", str(last_n)]
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu)] + cmd
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
    bp = BridgeProc(last_n=n, cpu=args.bridge_cpu)
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
                    "bdrops": udp_drops(bridge_ports), "cdrops": udp_drops(client_ports)}

        def bridge_counts(st: dict[str, Any]) -> dict[str, int]:
            return {"fwd": st["bridge"]["packets_forwarded"],
                    "in": sum(e.get("packets_in", 0) for e in st["endpoints"]),
                    "out": sum(e.get("packets_out", 0) for e in st["endpoints"]),
                    "tdrop": sum(e.get("dropped", 0) for e in st["endpoints"]),
                    "epdrop": sum(e.get("dropped_ep", 0) for e in st["endpoints"])}

        task = asyncio.ensure_future(sender())
        await asyncio.sleep(args.warmup)
        a = snapshot_local()
        ab = bridge_counts(await bp.call({"op": "stats"}))
        await asyncio.sleep(args.duration)
        stop.set()
        await task
        t_stop = time.monotonic()
        sent_end = sum(p.sent for p in parts)
        await asyncio.sleep(0.5)  # drain what is in flight / queued in socket buffers
        b = snapshot_local()
        bb = bridge_counts(await bp.call({"op": "stats"}))

        wall = t_stop - a["t"]
        wall_all = b["t"] - a["t"]
        offered = (sent_end - a["sent"]) / wall
        b_in = (bb["in"] - ab["in"]) / wall
        fwd = bb["fwd"] - ab["fwd"]
        b_out = fwd / wall
        expected = (sent_end - a["sent"]) * (n - 1)
        received = b["rx"] - a["rx"]
        bcpu = b["bcpu"] - a["bcpu"]
        result = {
            "n": n, "profile": profile, "connect_s": connect_s, "offered": offered, "bridge_in": b_in,
            "bridge_out": b_out, "expected_out": b_in * (n - 1),
            "received": received / wall,
            "loss_pct": 100.0 * (1 - received / expected) if expected else 0.0,
            "in_loss_pct": 100.0 * (1 - (bb["in"] - ab["in"]) / max(1, sent_end - a["sent"])),
            "bridge_cpu_pct": 100.0 * bcpu / wall_all,
            "cpu_s_per_1000": 1000.0 * bcpu / fwd if fwd else float("nan"),
            "fwd_per_cpu_s": fwd / bcpu if bcpu else float("nan"),
            "load_cpu_pct": 100.0 * (b["lcpu"] - a["lcpu"]) / wall_all,
            "ceiling": ceiling, "ceiling_us_per_in": us_per_in,
            "bridge_sock_drops": b["bdrops"] - a["bdrops"], "client_sock_drops": b["cdrops"] - a["cdrops"],
            "transport_dropped": bb["tdrop"] - ab["tdrop"], "ep_dropped": bb["epdrop"] - ab["epdrop"],
            "checked": sum(p.checked for p in parts), "check_bad": sum(p.check_bad for p in parts),
            "rtcp_rx": b["rx_rtcp"] - a["rx_rtcp"],
        }
        result["ratio"] = result["fwd_per_cpu_s"] / ceiling
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
    cols = [("N", "n", "{:d}"), ("offered in/s", "offered", "{:,.0f}"), ("bridge in/s", "bridge_in", "{:,.0f}"),
            ("bridge out/s", "bridge_out", "{:,.0f}"), ("expected out/s", "expected_out", "{:,.0f}"),
            ("recv/s", "received", "{:,.0f}"), ("loss %", "loss_pct", "{:.2f}"),
            ("bridge CPU %", "bridge_cpu_pct", "{:.0f}"), ("CPU-s/1000 fwd", "cpu_s_per_1000", "{:.4f}"),
            ("fwd per CPU-s", "fwd_per_cpu_s", "{:,.0f}"), ("crypto ceiling fwd/s", "ceiling", "{:,.0f}"),
            ("achieved/ceiling", "ratio", "{:.2f}"), ("load CPU %", "load_cpu_pct", "{:.0f}")]
    rows = [[fmt.format(r[key]) for _, key, fmt in cols] for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, (h, _, _) in enumerate(cols)]
    print("| " + " | ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, ((h, _, _), w) in enumerate(zip(cols, widths))) + " |")
    print("|" + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths)) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) + " |")
    print("# details per N:")
    for r in results:
        print(f"#  N={r['n']}: profile {r['profile']}, connect {r['connect_s']:.1f} s, input loss "
              f"{r['in_loss_pct']:.2f} %, kernel drops bridge sockets {r['bridge_sock_drops']} / participant "
              f"sockets {r['client_sock_drops']}, bridge send drops {r['transport_dropped']}, unrouted "
              f"{r['ep_dropped']}, RTCP received {r['rtcp_rx']}, sampled decrypts {r['checked']} "
              f"(bad {r['check_bad']}), ceiling {r['ceiling_us_per_in']:.1f} µs per input")


async def load_main(args: argparse.Namespace) -> None:
    import aiortc
    import uvloop  # noqa: F401
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"# bridge_forward: sizes {sizes}, {args.rate} pkt/s per participant in bursts every 20 ms, "
          f"{12 + PAYLOAD}-byte RTP, {args.duration} s measured after {args.warmup} s warm-up")
    print(f"# python {sys.version.split()[0]}, uvloop, aiortc {aiortc.__version__}, pylibsrtp "
          f"{pylibsrtp.__version__}; {os.cpu_count()} CPUs; bridge on CPU {args.bridge_cpu}, load on CPU "
          f"{args.load_cpu}; participant SO_RCVBUF {args.rcvbuf}")
    results = []
    for n in sizes:
        r = await run_size(n, args)
        results.append(r)
        print(f"# N={n}: in {r['bridge_in']:,.0f}/s out {r['bridge_out']:,.0f}/s loss {r['loss_pct']:.2f} % "
              f"bridge CPU {r['bridge_cpu_pct']:.0f} %", flush=True)
    print_table(results, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", action="store_true", help="internal: run the bridge process")
    ap.add_argument("--last-n", type=int, default=20)
    ap.add_argument("--audio-slots", type=int, default=2)
    ap.add_argument("--sizes", default="5,10,20")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rate", type=float, default=350.0, help="RTP packets/s per participant")
    ap.add_argument("--bridge-cpu", type=int, default=0 if (os.cpu_count() or 1) >= 2 else None)
    ap.add_argument("--load-cpu", type=int, default=1 if (os.cpu_count() or 1) >= 2 else None)
    ap.add_argument("--rcvbuf", type=int, default=4 * 1024 * 1024, help="participant socket SO_RCVBUF")
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args()
    import uvloop
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.serve:
        uvloop.run(serve(args))
        return
    if args.load_cpu is not None:
        os.sched_setaffinity(0, {args.load_cpu})
    uvloop.run(load_main(args))


if __name__ == "__main__":
    main()
