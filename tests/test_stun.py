"""The bridge learns its public address by STUN ([bridge] stun, or the stack's [turn] host).

Loopback tests use a real coturn where one is needed (skipped where it is not installed); the
NAT test builds network namespaces (a bridge host behind a masquerading router, coturn on the
"public" side) and skips with a message where they cannot be made.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aioice import stun

from bridge.bridge import Bridge
from bridge.config import BridgeSection
from bridge.stun import mapped_address
from bridge.transport import EndpointTransport
from netns import remove_namespaces

SECRET = "0123456789abcdef-test-secret"


class MappingStunServer(asyncio.DatagramProtocol):
    """A STUN server that says every request comes from `mapped` (as a NAT's would)."""

    def __init__(self, mapped: str) -> None:
        self.mapped = mapped
        self.requests = 0

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[no-untyped-def]
        request = stun.parse_message(data)
        self.requests += 1
        answer = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, transaction_id=request.transaction_id)
        answer.attributes["XOR-MAPPED-ADDRESS"] = (self.mapped, addr[1])
        self.transport.sendto(bytes(answer), addr)


async def serve_stun(mapped: str):
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(lambda: MappingStunServer(mapped),
                                                           local_addr=("127.0.0.1", 0))
    return transport, proto, "127.0.0.1:%d" % transport.get_extra_info("sockname")[1]


async def test_a_mapped_address_is_advertised_as_a_server_reflexive_candidate():
    transport, proto, where = await serve_stun("203.0.113.9")
    bridge = Bridge(BridgeSection(stun=where, port_min=0, port_max=0))
    ep = None
    try:
        await bridge.start()
        assert proto.requests >= 1 and bridge.public_address == "203.0.113.9"
        ep = EndpointTransport("127.0.0.1", lambda d: None, lambda d: None, **bridge._transport_options())
        await ep.gather()
        host, public = ep.local_description().candidates
        assert (host.type, host.ip) == ("host", "127.0.0.1")
        assert (public.type, public.ip, public.port) == ("srflx", "203.0.113.9", host.port)
    finally:
        if ep is not None:
            await ep.stop()
        await bridge.stop()
        transport.close()


async def test_a_configured_public_address_wins_and_no_stun_is_asked():
    transport, proto, where = await serve_stun("203.0.113.9")
    bridge = Bridge(BridgeSection(stun=where, public_address="198.51.100.1"))
    try:
        await bridge.start()
        assert bridge.public_address == "198.51.100.1" and proto.requests == 0
    finally:
        await bridge.stop()
        transport.close()


async def test_a_silent_stun_server_leaves_the_bridge_without_public_address():
    """No answer: the bridge starts all the same, after the bounded wait, with only its host address."""
    import socket
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # bound, never answers
    bridge = Bridge(BridgeSection(), stun="127.0.0.1:%d" % silent.getsockname()[1])
    try:
        await asyncio.wait_for(bridge.start(), 10)
        assert bridge.public_address == ""
    finally:
        await bridge.stop()
        silent.close()


async def test_coturn_answers_with_the_address_it_sees(tmp_path, certificate):
    """Against a real coturn on loopback there is no NAT: the answer equals the media address,
    which the bridge then does not advertise twice."""
    from conftest import make_config
    from turn_server import Coturn
    if not Coturn.available():
        pytest.skip("coturn is not installed (apt-get install coturn): no turnserver binary")
    cfg = make_config(turn__host="127.0.0.1", turn__secret=SECRET, turn__turns=False)
    coturn = Coturn(tmp_path / "coturn", cfg, *certificate)
    coturn.tmp.mkdir()
    try:
        await coturn.start()
        assert await mapped_address(("127.0.0.1", cfg.turn.port), "127.0.0.1") == "127.0.0.1"
        bridge = Bridge(BridgeSection(), stun=f"127.0.0.1:{cfg.turn.port}")
        await bridge.start()
        assert bridge.public_address == ""
        await bridge.stop()
    finally:
        await coturn.stop()


# ---- a bridge host behind NAT (network namespaces) -----------------------------------------

PUBLIC_TURN, NAT_PUBLIC, NAT_INSIDE, BRIDGE_HOST = "203.0.113.1", "203.0.113.2", "10.99.0.1", "10.99.0.2"


def _run(*cmd: str, stdin: str | None = None) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=20, input=stdin)


@pytest.fixture
def nat_network():
    """Three namespaces: "host" (10.99.0.2, default route via the router), "router" (10.99.0.1
    inside, 203.0.113.2 outside, masquerading what leaves outside) and "public" (203.0.113.1,
    no route into 10.99/16). Removed afterwards; skipped where they cannot be made."""
    import secrets
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (`ip`)")
    if shutil.which("nft") is None:
        pytest.skip("nftables is not installed (apt-get install nftables): cannot masquerade")
    tag = secrets.token_hex(3)
    host, router, public = f"jps-h-{tag}", f"jps-r-{tag}", f"jps-p-{tag}"
    made: list[str] = []
    try:
        for ns_name in (host, router, public):
            _run("ip", "netns", "add", ns_name)
            made.append(ns_name)
            _run("ip", "-n", ns_name, "link", "set", "lo", "up")
        _run("ip", "link", "add", f"sh{tag}", "netns", host, "type", "veth", "peer", "name", f"si{tag}",
             "netns", router)
        _run("ip", "link", "add", f"so{tag}", "netns", router, "type", "veth", "peer", "name", f"sp{tag}",
             "netns", public)
        for ns_name, dev, addr in ((host, f"sh{tag}", f"{BRIDGE_HOST}/24"), (router, f"si{tag}", f"{NAT_INSIDE}/24"),
                                   (router, f"so{tag}", f"{NAT_PUBLIC}/24"), (public, f"sp{tag}", f"{PUBLIC_TURN}/24")):
            _run("ip", "-n", ns_name, "addr", "add", addr, "dev", dev)
            _run("ip", "-n", ns_name, "link", "set", dev, "up")
        _run("ip", "-n", host, "route", "add", "default", "via", NAT_INSIDE)
        _run("ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        _run("ip", "netns", "exec", router, "nft", "-f", "-", stdin=(
            "table ip nat {\n chain post {\n  type nat hook postrouting priority 100; policy accept;\n"
            f"  oifname \"so{tag}\" masquerade\n }}\n}}\n"))
    except (subprocess.CalledProcessError, OSError) as exc:
        remove_namespaces(made)
        pytest.skip(f"cannot build the network namespaces here: {getattr(exc, 'stderr', '') or exc}")
    try:
        yield host, public
    finally:
        remove_namespaces(made)


@pytest.mark.parametrize("source", ["turn", "stun"])
async def test_bridge_behind_nat_learns_the_nat_address(nat_network, tmp_path, certificate, source):
    """`jitsi-py run` on a host behind NAT, with coturn on the public side named by [turn] host
    (or by [bridge] stun): its listening line shows the router's public address."""
    from conftest import make_config
    from turn_server import Coturn
    if not Coturn.available():
        pytest.skip("coturn is not installed (apt-get install coturn): no turnserver binary")
    host_ns, public_ns = nat_network
    cfg = make_config(turn__secret=SECRET, turn__turns=False, bridge__media_address=BRIDGE_HOST)
    coturn = Coturn(tmp_path / "coturn", cfg, *certificate, address=PUBLIC_TURN, netns=public_ns)
    coturn.tmp.mkdir()
    where = (f'[turn]\nhost = "{PUBLIC_TURN}"\nsecret = "{SECRET}"\nturns = false\n' if source == "turn"
             else f'[bridge]\nmedia_address = "{BRIDGE_HOST}"\nstun = "{PUBLIC_TURN}:3478"\n')
    media = f'[bridge]\nmedia_address = "{BRIDGE_HOST}"\n' if source == "turn" else ""
    conf = tmp_path / "jitsi-py.toml"
    conf.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n[auth]\nscram_iterations = 4096\n'
                    f'[c2s]\nport = 0\n[components]\nport = 0\n[http]\nport = 0\n[admin]\nport = 0\n'
                    + media + where)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), HOME=str(tmp_path))
    proc = None
    try:
        await coturn.start()
        proc = subprocess.Popen(["ip", "netns", "exec", host_ns, sys.executable, "-m", "jitsi_py", "run",
                                 "--config", str(conf)], env=env, stdout=subprocess.PIPE,
                                stderr=open(tmp_path / "stack.log", "wb"), stdin=subprocess.DEVNULL, text=True)
        line = ""
        while "Media bridge" not in line:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
            assert line, f"the stack ended: {(tmp_path / 'stack.log').read_text(errors='replace')[-3000:]}"
        assert f"ICE on {BRIDGE_HOST} (public address {NAT_PUBLIC}, by STUN from {PUBLIC_TURN}:3478)" in line, line
        log = (tmp_path / "stack.log").read_text(errors="replace")
        assert f"public address {NAT_PUBLIC} (by STUN from {PUBLIC_TURN}:3478)" in log, log[-3000:]
        # the operator's check, run on the bridge host, sees the same address (and TURN through the NAT)
        check = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", host_ns, sys.executable, "-m", "jitsi_py", "check", "--config", str(conf),
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(check.communicate(), 60)
        lines = out.decode().splitlines()
        assert f"OK   Participants send media to {NAT_PUBLIC} (by STUN from {PUBLIC_TURN}:3478; forward UDP " \
               f"10000-20000 to {BRIDGE_HOST}) and {BRIDGE_HOST}" in lines, (lines, err.decode()[-2000:])
        if source == "turn":
            assert any(line.startswith(f"OK   TURN turn:{PUBLIC_TURN}:3478 over UDP accepts our credentials")
                       for line in lines), lines
    finally:
        if proc is not None:
            proc.terminate()
            try:
                await asyncio.wait_for(asyncio.to_thread(proc.wait), 10)
            except asyncio.TimeoutError:
                proc.kill()
                proc.wait()
        await coturn.stop()
