"""TURN for participants whose network drops UDP: XEP-0215 credentials, coturn, relayed calls.

The credential tests need no coturn; the others start a real `turnserver` (Debian `coturn`) on
127.0.0.1 free ports and skip with a message where it is not installed.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from xml.etree import ElementTree

import pytest
from slixmpp.exceptions import IqError

from conftest import RawClient, make_config
from netns import remove_namespaces
from jitsi_base import ns
from xmpp_plugins.plugins.extdisco import turn_credentials

SECRET = "0123456789abcdef-test-secret"


def turn_config(**overrides):
    return make_config(turn__host="turn.localhost", turn__secret=SECRET, **overrides)


async def ask(client, payload: str, to: str = "localhost"):
    iq = client.make_iq_get(ito=to)
    iq.xml.append(ElementTree.fromstring(payload))
    res = await iq.send(timeout=5)
    return res.xml


def services_of(el) -> list[dict]:
    return [dict(s.attrib) for s in el.iter("{%s}service" % ns.EXTDISCO)]


# ---- XEP-0215 from the embedded server ------------------------------------------------------

def test_credentials_follow_coturns_rest_scheme():
    username, password, expiry = turn_credentials(SECRET, "guest@localhost", 3600, now=1_000_000)
    assert (username, expiry) == ("1003600:guest@localhost", 1_003_600)
    assert password == base64.b64encode(hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()).decode()
    # a user part coturn would split on (':') or that is too long becomes a hash
    assert turn_credentials(SECRET, "a:b@x", 10, now=0)[0].count(":") == 1
    assert len(turn_credentials(SECRET, "u" * 500, 10, now=0)[0]) < 100


async def test_signed_in_guest_gets_stun_turn_and_turns(xmpp_server, clients):
    srv = await xmpp_server(config=turn_config(turn__credential_lifetime=600))
    guest = await clients.connect(srv, mech="ANONYMOUS")
    before = int(time.time())
    el = await ask(guest, f"<services xmlns='{ns.EXTDISCO}'/>")
    got = services_of(el)
    assert [(s["type"], s["transport"], s["port"]) for s in got] == [
        ("stun", "udp", "3478"), ("turn", "udp", "3478"), ("turn", "tcp", "3478"), ("turns", "tcp", "5349")]
    assert all(s["host"] == "turn.localhost" for s in got)
    assert "username" not in got[0] and "password" not in got[0]
    for s in got[1:]:
        expiry, _, user = s["username"].partition(":")
        assert user == guest.boundjid.bare
        assert before + 600 <= int(expiry) <= int(time.time()) + 600
        digest = hmac.new(SECRET.encode(), s["username"].encode(), hashlib.sha1).digest()
        assert s["password"] == base64.b64encode(digest).decode()
        assert s["restricted"] == "1" and s["expires"].endswith("Z")
    # only one type
    el = await ask(guest, f"<services xmlns='{ns.EXTDISCO}' type='turns'/>")
    assert [s["type"] for s in services_of(el)] == ["turns"]
    # credentials for one service
    el = await ask(guest, f"<credentials xmlns='{ns.EXTDISCO}'><service type='turn' host='turn.localhost'/></credentials>")
    assert el.find("{%s}credentials" % ns.EXTDISCO) is not None
    assert {s["transport"] for s in services_of(el)} == {"udp", "tcp"} and all("password" in s for s in services_of(el))
    with pytest.raises(IqError) as info:
        await ask(guest, f"<credentials xmlns='{ns.EXTDISCO}'><service type='turn' host='elsewhere.example'/></credentials>")
    assert info.value.condition == "item-not-found"
    with pytest.raises(IqError) as info:
        await ask(guest, f"<credentials xmlns='{ns.EXTDISCO}'/>")
    assert info.value.condition == "bad-request"
    # disco#info lists the feature
    el = await ask(guest, f"<query xmlns='{ns.DISCO_INFO}'/>")
    assert ns.EXTDISCO in [f.get("var") for f in el.iter("{%s}feature" % ns.DISCO_INFO)]


async def test_without_turn_host_there_is_no_service(xmpp_server, clients):
    srv = await xmpp_server()
    guest = await clients.connect(srv, mech="ANONYMOUS")
    with pytest.raises(IqError) as info:
        await ask(guest, f"<services xmlns='{ns.EXTDISCO}'/>")
    assert info.value.condition == "service-unavailable"
    el = await ask(guest, f"<query xmlns='{ns.DISCO_INFO}'/>")
    assert ns.EXTDISCO not in [f.get("var") for f in el.iter("{%s}feature" % ns.DISCO_INFO)]


async def test_no_credentials_before_sign_in_or_for_a_set(xmpp_server, clients):
    srv = await xmpp_server(config=turn_config())
    raw = await RawClient.connect(srv.c2s_address)
    await raw.open_stream()
    raw.send(f"<iq type='get' id='x1' to='localhost'><services xmlns='{ns.EXTDISCO}'/></iq>")
    # before authentication the stream is closed: never a password
    text = await raw.read_until(b"</stream:stream>")
    assert "<not-authorized" in text and "password=" not in text
    guest = await clients.connect(srv, mech="ANONYMOUS")
    iq = guest.make_iq_set(ito="localhost")
    iq.xml.append(ElementTree.fromstring(f"<services xmlns='{ns.EXTDISCO}'/>"))
    with pytest.raises(IqError) as info:
        await iq.send(timeout=5)
    assert info.value.condition == "bad-request"


async def test_a_component_gets_no_credentials(xmpp_server):
    """Components (the MUC on another server, the focus service) are not people in a meeting."""
    from jitsi_py.config import ComponentSecret
    from test_xmpp_components import start_component
    cfg = turn_config()
    cfg.component = [ComponentSecret(domain="echo.localhost", secret="s3cret")]
    srv = await xmpp_server(config=cfg)
    comp, ok, error = await start_component(srv)
    assert ok, error
    try:
        iq = comp.make_iq_get(ito="localhost", ifrom="echo.localhost")
        iq.xml.append(ElementTree.fromstring(f"<services xmlns='{ns.EXTDISCO}'/>"))
        with pytest.raises(IqError) as info:
            await iq.send(timeout=5)
        # (slixmpp reads errors on a component stream in the wrong namespace: look at the XML)
        text = str(info.value.iq)
        assert "<forbidden " in text and "Only signed-in clients" in text and "password" not in text, text
    finally:
        comp.disconnect()


# ---- jitsi-py turn-config ---------------------------------------------------------------------

def run_cli(tmp_path, *args):
    import os
    import subprocess
    import sys
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "home" / "data"))
    return subprocess.run([sys.executable, "-m", "jitsi_py", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=20)


def test_turn_config_prints_a_coturn_config_that_relays_only_to_public_peers_and_the_bridge(tmp_path):
    path = tmp_path / "jitsi-py.toml"
    path.write_text(f"""
[turn]
host = "turn.example.org"
secret = "{SECRET}"
tls_port = 443
[bridge]
media_address = "10.0.0.5"
public_address = "203.0.113.7"
""")
    result = run_cli(tmp_path, "turn-config", "--config", path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for line in ("listening-port=3478", "tls-listening-port=443", "realm=turn.example.org", "use-auth-secret",
                 f"static-auth-secret={SECRET}", "no-multicast-peers", "no-tcp-relay", "no-cli",
                 "denied-peer-ip=10.0.0.0-10.255.255.255", "denied-peer-ip=169.254.0.0-169.254.255.255",
                 "denied-peer-ip=192.168.0.0-192.168.255.255", "denied-peer-ip=172.16.0.0-172.31.255.255",
                 "allowed-peer-ip=10.0.0.5"):
        assert line in lines, line
    # the public address needs no exception; nothing lets relays reach loopback
    assert "allowed-peer-ip=203.0.113.7" not in lines
    assert not any(line.startswith("allow-loopback-peers") for line in lines)
    # (the netns test below relays to a public address through this very config)
    # without [turn] host there is nothing to configure
    path.write_text("[turn]\nport = 3478\n")
    result = run_cli(tmp_path, "turn-config", "--config", path)
    assert result.returncode == 2 and "[turn] host and secret must be set" in result.stderr
    # a bad config is reported like check-config does
    path.write_text('[turn]\nhost = "turn.example.org"\n')
    result = run_cli(tmp_path, "turn-config", "--config", path)
    assert result.returncode == 2 and f"{path}:1: key 'turn.secret'" in result.stderr


# ---- coturn accepts what we hand out ---------------------------------------------------------

@pytest.fixture
async def coturn(tmp_path, certificate):
    """coturn configured by `jitsi-py turn-config` for a config on free ports (loopback);
    `coturn.cfg` is that config, for the server or stack of the test."""
    from turn_server import Coturn
    if not Coturn.available():
        pytest.skip("coturn is not installed (apt-get install coturn): no turnserver binary")
    cfg = turn_config(server__data_dir=str(tmp_path / "data"))
    server = Coturn(tmp_path / "coturn", cfg, *certificate)
    server.tmp.mkdir()
    try:
        await server.start()
    except BaseException:
        await server.stop()
        raise
    yield server
    await server.stop()


async def allocate(turn, username: str, password: str, transport: str = "udp", tls: bool = False,
                   certificate=None) -> tuple[str, int]:
    """A TURN allocation through aioice (what aiortc uses); returns the relayed address."""
    import ssl

    from aioice import turn as aioice_turn

    class Sink(asyncio.DatagramProtocol):
        pass

    ctx = None
    if tls:
        ctx = ssl.create_default_context(cafile=str(certificate[0]))
    port = turn.tls_port if tls else turn.port
    transport_, _ = await asyncio.wait_for(aioice_turn.create_turn_endpoint(
        Sink, (turn.host, port), username, password, ssl=ctx, transport=transport), 10)
    try:
        return transport_.get_extra_info("sockname")
    finally:
        transport_.close()


async def test_coturn_accepts_extdisco_credentials_and_refuses_others(xmpp_server, clients, coturn, certificate):
    cfg = coturn.cfg
    srv = await xmpp_server(config=cfg)
    guest = await clients.connect(srv, mech="ANONYMOUS")
    el = await ask(guest, f"<services xmlns='{ns.EXTDISCO}'/>")
    got = {(s["type"], s["transport"]): s for s in services_of(el)}
    assert set(got) == {("stun", "udp"), ("turn", "udp"), ("turn", "tcp"), ("turns", "tcp")}
    for (kind, transport), s in got.items():
        if kind == "stun":
            continue
        relayed = await allocate(cfg.turn, s["username"], s["password"], transport=transport,
                                 tls=kind == "turns", certificate=certificate)
        assert relayed[0] == "127.0.0.1" and coturn.relay_ports[0] <= relayed[1] <= coturn.relay_ports[1]
    s = got[("turn", "udp")]
    wrong_secret = turn_credentials("another-secret-of-enough-length", "guest@localhost", 600)
    expired = turn_credentials(SECRET, "guest@localhost", -60)
    for username, password in ((s["username"], "x" + s["password"][1:]), wrong_secret[:2], expired[:2]):
        with pytest.raises(Exception) as info:
            await allocate(cfg.turn, username, password)
        assert "401" in str(info.value) or "Unauthorized" in str(info.value), info.value


# ---- a call through TURN ---------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["tcp", "udp", "tls"])
async def test_relay_only_participant_is_in_a_call_through_coturn(coturn, transport, certificate, monkeypatch):
    """A participant that may use only relayed candidates (its network drops everything else)
    gets TURN from our server, joins, and both sides decode each other's media through coturn."""
    from calls import participant, receives_from
    from jitsi_py.stack import Stack

    if transport == "tls":
        # aiortc verifies turns: with the system's CAs (ssl=True); let them include coturn's
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    coturn.cfg.bridge.last_n, coturn.cfg.bridge.audio_slots = 4, 3
    stack = Stack(coturn.cfg)
    await stack.start()
    relayed = participant(stack, "relayed", "far00001")
    relayed.relay_only, relayed.turn_transport = True, transport
    direct = participant(stack, "relayed", "near0002")
    direct.ask_ice_servers = False  # host candidates only
    try:
        await asyncio.gather(relayed.join(), direct.join())
        assert sorted(s.urls.split(":")[0] for s in relayed.ice_servers) == ["stun", "turn", "turn", "turns"]
        assert relayed.ice_servers[1].urls.startswith("turns:" if transport == "tls" else "turn:")
        assert relayed.ice_servers[1].urls.endswith("transport=tcp" if transport == "tls" else f"transport={transport}")
        await receives_from(relayed, direct)
        await receives_from(direct, relayed)
        kind, remote = relayed.selected_pair()
        assert kind == "relay", (kind, remote)
        assert remote.startswith(coturn.cfg.bridge.media_address + ":")
        assert direct.selected_pair()[0] == "host" and direct.ice_servers == []
    finally:
        for p in (relayed, direct):
            await p.leave()
        await stack.stop()


def test_ice_servers_put_the_preferred_turn_transport_first_and_skip_bad_entries():
    from jitsi_py.participant.ice import ice_servers
    el = ElementTree.fromstring(f"""<services xmlns='{ns.EXTDISCO}'>
      <service type='stun' transport='udp' host='t.example' port='3478'/>
      <service type='turn' transport='udp' host='t.example' port='3478' username='1:u' password='p'/>
      <service type='turn' transport='tcp' host='t.example' port='3478' username='1:u' password='p'/>
      <service type='turns' transport='tcp' host='t.example' port='443' username='1:u' password='p'/>
      <service type='turn' transport='udp' host='t.example' port='x1' username='1:u' password='p'/>
      <service type='turn' transport='udp' host='bad/host' port='1' username='1:u' password='p'/>
      <service type='turn' transport='udp' host='nocreds.example' port='1'/>
      <service type='ftp' transport='tcp' host='t.example' port='21'/>
    </services>""")
    assert [s.urls for s in ice_servers(el, "tls")] == [
        "stun:t.example:3478", "turns:t.example:443?transport=tcp", "turn:t.example:3478?transport=udp",
        "turn:t.example:3478?transport=tcp"]
    first_turn = ice_servers(el, "tcp")[1]
    assert (first_turn.urls, first_turn.username, first_turn.credential) == (
        "turn:t.example:3478?transport=tcp", "1:u", "p")
    with pytest.raises(ValueError):
        ice_servers(el, "sctp")


# ---- the browser through TURN ----------------------------------------------------------------

# the page's nominated ICE pair: our candidate's type and protocol (from pc.getStats())
SELECTED_PAIR = """async () => {
  const pc = window.jitsiTest.conference.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let transport = null;
  stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) transport = s; });
  if (!transport) return null;
  const pair = stats.get(transport.selectedCandidatePairId);
  const local = pair && stats.get(pair.localCandidateId);
  return local ? { type: local.candidateType, relayProtocol: local.relayProtocol || '' } : null;
}"""


async def test_browser_forced_to_relay_meets_a_python_participant(coturn, tmp_path):
    """Chromium with ICE policy 'relay' (only TURN candidates) takes the TURN servers our
    server hands out and is in a call with a Python participant: both decode each other."""
    import os
    pytest.importorskip("playwright.async_api")
    import test_webclient as web
    if not os.path.exists(web.CHROMIUM):
        pytest.skip(f"no Chromium at {web.CHROMIUM}")
    from calls import participant
    from jitsi_py.stack import Stack
    from playwright.async_api import async_playwright

    stack = Stack(coturn.cfg)
    await stack.start()
    py = participant(stack, "Relayed", "pybot001")
    py.ask_ice_servers = False
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=web.CHROMIUM, args=web.ARGS)
            try:
                ctx = await browser.new_context()
                page = await ctx.new_page()

                async def relay_only(route):
                    response = await route.fetch()
                    body = (await response.text()).replace("export default {",
                                                            'export default {"iceTransportPolicy": "relay",', 1)
                    await route.fulfill(response=response, body=body)

                await page.route("**/config.js", relay_only)
                await page.goto(f"{web.base_url(stack)}/Relayed")
                await page.fill("#name-input", "Relay Rita")
                await page.wait_for_function("() => document.getElementById('join-status').textContent === ''",
                                             timeout=10_000)
                await page.click("#join")
                await web.in_conference(page)
                await py.join()
                await web.wait_video(page, py.display_name)
                page_nick = await page.evaluate("window.jitsiTest.conference.nick")
                try:
                    await py.wait_frames(page_nick, "video", timeout=30)
                except TimeoutError:  # what the bridge and the page saw, for the report
                    conf = next(iter(stack.bridge.conferences.values()))
                    raise AssertionError(f"bridge: {[e.stats() for e in conf.endpoints.values()]}; page pair: "
                                         f"{await page.evaluate(SELECTED_PAIR)}") from None
                await py.wait_frames(page_nick, "audio", timeout=20)
                servers = await page.evaluate("window.jitsiTest.conference.iceServers.map((s) => s.urls)")
                assert any(u.startswith("turn:") for u in servers), servers
                pair = await page.evaluate(SELECTED_PAIR)
                assert pair is not None and pair["type"] == "relay", pair
            finally:
                await browser.close()
    finally:
        await py.leave()
        await stack.stop()


# ---- a company network that drops UDP (network namespaces) ----------------------------------

SERVER_ADDR, COMPANY_ADDR = "203.0.113.1", "198.51.100.2"


def _run(*cmd: str) -> None:
    import subprocess
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=20)


@pytest.fixture
def company_network():
    """Two network namespaces joined by a veth pair: "server" (203.0.113.1) and "company"
    (198.51.100.2), whose outgoing UDP is dropped (nftables), so it reaches the server over TCP
    only. Removed afterwards whatever happens; skipped where namespaces cannot be made."""
    import os
    import secrets
    import shutil
    import subprocess
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (`ip`)")
    if shutil.which("nft") is None:
        pytest.skip("nftables is not installed (apt-get install nftables): cannot drop the company's UDP")
    tag = secrets.token_hex(3)
    server, company = f"jpt-srv-{tag}", f"jpt-co-{tag}"
    made: list[str] = []
    try:
        for ns_name in (server, company):
            _run("ip", "netns", "add", ns_name)
            made.append(ns_name)
            _run("ip", "-n", ns_name, "link", "set", "lo", "up")
        _run("ip", "link", "add", f"js{tag}", "netns", server, "type", "veth", "peer", "name", f"jc{tag}",
             "netns", company)
        for ns_name, dev, mine, theirs in ((server, f"js{tag}", SERVER_ADDR, COMPANY_ADDR),
                                           (company, f"jc{tag}", COMPANY_ADDR, SERVER_ADDR)):
            _run("ip", "-n", ns_name, "addr", "add", f"{mine}/32", "dev", dev)
            _run("ip", "-n", ns_name, "link", "set", dev, "up")
            _run("ip", "-n", ns_name, "route", "add", f"{theirs}/32", "dev", dev)
        rules = ("table inet company {\n chain out {\n  type filter hook output priority 0; policy accept;\n"
                 "  oifname != \"lo\" meta l4proto udp drop\n }\n}\n")
        subprocess.run(["ip", "netns", "exec", company, "nft", "-f", "-"], input=rules, check=True,
                       capture_output=True, text=True, timeout=20)
    except (subprocess.CalledProcessError, OSError) as exc:
        remove_namespaces(made)
        detail = getattr(exc, "stderr", "") or exc
        pytest.skip(f"cannot build the network namespaces here: {detail}")
    try:
        yield server, company
    finally:
        remove_namespaces(made)


def certificate_for_ip(tmp_path, ip: str):
    """A self-signed certificate naming `ip`, for coturn's TLS as the company participant checks it."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "turn-cert.pem", tmp_path / "turn-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o644)  # coturn may drop privileges before reading it
    return cert_path, key_path


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_company_participant_whose_udp_is_dropped_joins_through_turn(company_network, tmp_path, transport):
    """The stack and coturn in a "server" namespace; a participant in a "company" namespace
    that drops all outgoing UDP gets TURN credentials from the server, relays over TCP (or, when
    the company also lets out only TCP 443 besides XMPP, over TLS on 443), and it and a
    participant on the server side decode each other's audio and video."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from turn_server import Coturn, wait_port_in_netns
    if not Coturn.available():
        pytest.skip("coturn is not installed (apt-get install coturn): no turnserver binary")
    server_ns, company_ns = company_network
    cfg = turn_config(server__data_dir=str(tmp_path / "data"), bridge__media_address=SERVER_ADDR)
    cert, key = certificate_for_ip(tmp_path, SERVER_ADDR)
    coturn = Coturn(tmp_path / "coturn", cfg, cert, key, address=SERVER_ADDR, netns=server_ns)
    cfg.turn.tls_port = 443
    assert "allowed-peer-ip" not in coturn.config_text()  # a public bridge needs no exception
    if transport == "tls":  # the company lets out only TCP to 443 (and XMPP, for this client)
        subprocess.run(["ip", "netns", "exec", company_ns, "nft", "add", "rule", "inet", "company", "out",
                        "oifname", "!=", "lo", "tcp", "dport", "!=", "{", "443,", "5222", "}", "drop"],
                       check=True, capture_output=True, timeout=20)
    coturn.tmp.mkdir()
    conf = tmp_path / "jitsi-py.toml"
    conf.write_text(f"""
[server]
data_dir = "{tmp_path / 'data'}"
[auth]
scram_iterations = 4096
[c2s]
listen = "{SERVER_ADDR}"
[http]
listen = "{SERVER_ADDR}"
[bridge]
media_address = "{SERVER_ADDR}"
port_min = 10000
port_max = 10100
[turn]
host = "{SERVER_ADDR}"
secret = "{SECRET}"
tls_port = 443
""")
    repo = str(Path(__file__).resolve().parent.parent)
    # aiortc checks turns: against the system's CAs: let them be coturn's certificate
    env = dict(os.environ, PYTHONPATH=repo, HOME=str(tmp_path), SSL_CERT_FILE=str(cert))
    procs: list[subprocess.Popen] = []

    def start(ns_name: str, *cmd: str, log: str) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", ns_name, *cmd], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=open(tmp_path / log, "wb"), text=True)
        procs.append(proc)
        return proc

    async def result(proc: subprocess.Popen, log: str) -> dict:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 120)
        assert line, f"{log} ended: {(tmp_path / log).read_text(errors='replace')[-3000:]}"
        return json.loads(line)

    try:
        await coturn.start()
        start(server_ns, sys.executable, "-m", "jitsi_py", "run", "--config", str(conf), log="stack.log")
        await wait_port_in_netns(server_ns, SERVER_ADDR, [5222, 8080], timeout=60)
        script = str(Path(__file__).resolve().parent / "netns_participant.py")
        far = start(company_ns, sys.executable, script, SERVER_ADDR, "5222", "firewalled", "company1", "server01",
                    "--turn-transport", transport, log="company.log")
        near = start(server_ns, sys.executable, script, SERVER_ADDR, "5222", "firewalled", "server01", "company1",
                     log="server.log")
        got_far, got_near = await asyncio.gather(result(far, "company.log"), result(near, "server.log"))
        assert got_far["ok"], (got_far, (tmp_path / "company.log").read_text(errors="replace")[-3000:])
        assert got_near["ok"], got_near
        kind, remote = got_far["pair"]
        assert kind == "relay" and remote.startswith(SERVER_ADDR + ":"), got_far
        assert got_far["ice_servers"][1] == (f"turns:{SERVER_ADDR}:443?transport=tcp" if transport == "tls"
                                             else f"turn:{SERVER_ADDR}:3478?transport=tcp"), got_far
        # (the server-side participant has TURN too: ICE may nominate its host or its relay pair)
    finally:
        for proc in procs:
            if proc.poll() is None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
        for proc in procs:
            try:
                await asyncio.wait_for(asyncio.to_thread(proc.wait), 5)
            except asyncio.TimeoutError:
                proc.kill()
                proc.wait()
        await coturn.stop()
