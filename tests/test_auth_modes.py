"""Who may open a meeting (`[auth] mode`, issue 15), end to end: mechanisms per domain, the
secure domain with guests waiting for the host, and JWT sign-in with every bad token refused
with its reason."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import signal
import sys
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import RawClient, make_config, until
from slixmpp import JID
from http_xmpp_clients import WebSocketClient
from jitsi_py.participant.client import Participant, ParticipantError
from jitsi_py.participant.media import TestPatternTrack, ToneTrack
from jitsi_py.stack import Stack
from xmpp_plugins.tokens import TokenError, TokenVerifier

SECRET = "0123456789abcdef0123456789abcdef-test-secret"
MECHS = re.compile(r"<mechanism>([A-Z0-9-]+)</mechanism>")


def token(room: str = "*", *, key: object = SECRET, alg: str = "HS256", exp: float = 3600, nbf: float | None = None,
          aud: str | None = "jitsi", moderator: bool = False, name: str = "", **extra: object) -> str:
    now = time.time()
    claims: dict = {"room": room, "exp": int(now + exp), "iss": "portal",
                    "context": {"user": {"name": name, "email": f"{name or 'x'}@example.org",
                                         "avatar": "https://example.org/a.png", "moderator": moderator}}}
    if aud is not None:
        claims["aud"] = aud
    if nbf is not None:
        claims["nbf"] = int(now + nbf)
    headers = extra.pop("headers", None)
    claims.update(extra)
    return jwt.encode(claims, key, algorithm=alg, headers=headers)  # type: ignore[arg-type]


def unsigned(room: str = "*") -> str:
    """An `alg: none` token, built by hand as an attacker would."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    header = part(b'{"alg":"none","typ":"JWT"}')
    body = part(('{"room":"%s","exp":%d,"aud":"jitsi"}' % (room, time.time() + 3600)).encode())
    return f"{header}.{body}."


async def mechanisms(srv, host: str) -> list[str]:
    raw = await RawClient.connect(srv.c2s_address)
    try:
        return MECHS.findall(await raw.open_stream(host))
    finally:
        raw.close()


# ---- which mechanisms each domain offers ------------------------------------------------------

async def test_secure_mode_offers_passwords_on_the_domain_and_anonymous_on_the_guest_domain(xmpp_server):
    srv = await xmpp_server(auth__mode="secure")
    main = await mechanisms(srv, "localhost")
    assert "ANONYMOUS" not in main and "SCRAM-SHA-256" in main
    assert await mechanisms(srv, "guest.localhost") == ["ANONYMOUS"]


async def test_open_mode_is_unchanged(xmpp_server):
    srv = await xmpp_server()
    assert "ANONYMOUS" in await mechanisms(srv, "localhost")


async def test_token_mode_offers_oauthbearer_and_anonymous_only_with_a_url_token(xmpp_server, http_front):
    srv = await xmpp_server(auth__mode="token", auth__jwt_secret=SECRET)
    assert await mechanisms(srv, "localhost") == ["OAUTHBEARER"]
    assert "guest.localhost" not in srv.hosts  # no guests in token mode unless a guest domain is set
    base = (await http_front(srv)).replace("http", "ws") + "/xmpp-websocket"
    for url, expected in ((base, ["OAUTHBEARER"]), (f"{base}?token={token('r1')}", ["OAUTHBEARER", "ANONYMOUS"])):
        ws = WebSocketClient(url)
        await ws.connect()
        try:
            features = await ws.open()
            names = [m.text for m in features.iter("{urn:ietf:params:xml:ns:xmpp-sasl}mechanism")]
            assert names == expected
        finally:
            await ws.close()


async def test_websocket_url_token_signs_in_and_a_bad_one_is_refused_with_its_reason(xmpp_server, http_front):
    srv = await xmpp_server(auth__mode="token", auth__jwt_secret=SECRET, auth__jwt_audience="jitsi")
    base = (await http_front(srv)).replace("http", "ws") + "/xmpp-websocket"
    good = WebSocketClient(f"{base}?token={token('r1')}")
    await good.connect()
    try:
        await good.open()
        await good.send_raw("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>")
        assert (await good.recv()).tag == "{urn:ietf:params:xml:ns:xmpp-sasl}success"
    finally:
        await good.close()
    bad = WebSocketClient(f"{base}?token={token('r1', aud='other')}")
    await bad.connect()
    try:
        await bad.open()
        await bad.send_raw("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>")
        failure = await bad.recv()
        assert failure.tag == "{urn:ietf:params:xml:ns:xmpp-sasl}failure"
        assert "audience 'other', not 'jitsi'" in failure.findtext("{urn:ietf:params:xml:ns:xmpp-sasl}text")
    finally:
        await bad.close()


async def sasl_answer(raw: RawClient) -> str:
    answer = re.compile(rb"<(success|challenge|failure)\b[^>]*?(/>|>.*?</\1>)", re.S)
    async def loop() -> None:
        while not answer.search(raw.received):
            chunk = await raw.reader.read(65536)
            if not chunk:
                raise ConnectionError(raw.received)
            raw.received += chunk
    await asyncio.wait_for(loop(), 5)
    return raw.received.decode()


async def oauthbearer(srv, tok: str) -> str:
    """The server's final answer to an OAUTHBEARER sign-in with `tok`, as raw XML."""
    raw = await RawClient.connect(srv.c2s_address)
    try:
        await raw.open_stream("localhost")
        raw.received = b""
        msg = base64.b64encode(b"n,,\x01auth=Bearer " + tok.encode() + b"\x01\x01").decode()
        raw.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='OAUTHBEARER'>{msg}</auth>")
        out = await sasl_answer(raw)
        if "<challenge" in out:  # RFC 7628: the error as a challenge, acknowledged with 0x01
            raw.received = b""
            ack = base64.b64encode(b"\x01").decode()
            raw.send(f"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{ack}</response>")
            out = await sasl_answer(raw)
        return out
    finally:
        raw.close()


async def test_rs256_config_refuses_an_hs256_token_signed_with_the_public_key(xmpp_server, tmp_path):
    """CVE-2021-39215's confusion: the public key used as an HMAC secret."""
    private = rsa.generate_private_key(65537, 2048)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "pub.pem").write_bytes(pem)
    cfg = make_config(auth__mode="token", auth__jwt_algorithm="RS256",
                      auth__jwt_public_key=str(tmp_path / "pub.pem"))
    srv = await xmpp_server(config=cfg)
    assert "<success" in await oauthbearer(srv, token("r1", key=private, alg="RS256"))
    def part(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")
    signing = part(b'{"alg":"HS256","typ":"JWT"}') + b"." + part(b'{"room":"*","exp":%d}' % (time.time() + 60))
    forged = (signing + b"." + part(hmac.new(pem, signing, hashlib.sha256).digest())).decode()
    out = await oauthbearer(srv, forged)
    assert "<not-authorized" in out and "signed with 'HS256'; this server accepts only RS256" in out


# ---- token verification: every refusal says why -----------------------------------------------

@pytest.mark.parametrize("make, reason", [
    (lambda: token(key="another-secret-another-secret-xx"), "signature is wrong"),
    (lambda: unsigned(), "signed with 'none'; this server accepts only HS256"),
    (lambda: token(exp=-120), "the token expired at"),
    (lambda: token(nbf=600), "not valid before"),
    (lambda: token(aud="other"), "audience 'other', not 'jitsi'"),
    (lambda: token(iss="evil"), "issuer 'evil', not 'portal'"),
    (lambda: "not.a.token", "not a JSON Web Token"),
    (lambda: jwt.encode({"exp": int(time.time() + 60), "aud": "jitsi", "iss": "portal"}, SECRET), "names no room"),
])
def test_each_bad_token_is_refused_with_its_reason(make, reason):
    verifier = TokenVerifier("HS256", SECRET, audience="jitsi", issuer="portal")
    with pytest.raises(TokenError, match=re.escape(reason)):
        verifier.verify(make())


def test_es256_tokens_verify_with_the_public_key_and_others_do_not():
    from cryptography.hazmat.primitives.asymmetric import ec
    private, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    verifier = TokenVerifier("ES256", private.public_key(), audience="jitsi")
    assert verifier.verify(token("r", key=private, alg="ES256")).room == "r"
    with pytest.raises(TokenError, match="signature is wrong"):
        verifier.verify(token("r", key=other, alg="ES256"))
    with pytest.raises(TokenError, match="signed with 'HS256'; this server accepts only ES256"):
        verifier.verify(token("r"))


def test_claims_give_room_name_and_moderator():
    claims = TokenVerifier("HS256", SECRET, audience="jitsi").verify(token("Room1", moderator=True, name="Ada"))
    assert claims.allows_room("room1") and not claims.allows_room("room2")
    assert (claims.moderator, claims.name, claims.email) == (True, "Ada", "Ada@example.org")


# ---- end to end with the stack and Python participants ----------------------------------------

def participant(stack: Stack, room: str, nick: str, **auth: object) -> Participant:
    host, port = stack.server.c2s_address
    return Participant(host, port, room, cafile=str(stack.cert_path), nick=nick, display_name=nick.title(),
                       audio=ToneTrack(), video=TestPatternTrack(), **auth)  # type: ignore[arg-type]


@pytest.fixture
async def secure_stack(tmp_path):
    stack = Stack(make_config(server__data_dir=str(tmp_path / "data"), auth__mode="secure"))
    await stack.start()
    stack.users.add("alice", "localhost", "wonderland")
    yield stack
    await stack.stop()


async def test_secure_guest_waits_for_the_host_and_gets_in_by_itself(secure_stack):
    stack = secure_stack
    guest = participant(stack, "standup", "guest")
    events: list[str] = []
    guest.add_listener(lambda e: events.append(e.type))
    joining = asyncio.ensure_future(guest.join(timeout=40))
    try:
        await until(lambda: "waiting-for-host" in events, 10, "the guest to wait for the host")
        assert guest.client is not None and guest.client.boundjid.domain == "guest.localhost"
        assert not joining.done()
        assert "standup@conference.localhost" not in stack.focus.conferences  # nothing opened for a guest
        async with participant(stack, "standup", "host", user="alice", password="wonderland") as host:
            await asyncio.wait_for(joining, 30)
            assert "guest" in host.occupants and "host" in guest.occupants
            room = stack.server.plugins[-1].service.rooms["standup"]
            assert room.affiliation("alice@localhost") == "owner"
    finally:
        if not joining.done():
            joining.cancel()
        await asyncio.gather(joining, return_exceptions=True)
        await guest.leave()


async def test_secure_wrong_password_is_refused_clearly(secure_stack):
    p = participant(secure_stack, "standup", "host", user="alice", password="wrong")
    with pytest.raises(ParticipantError, match="refused the sign-in of alice@localhost"):
        await p.join(timeout=15)


async def test_secure_muc_refuses_a_guest_before_the_host(secure_stack, clients):
    """A guest who skips the focus and presents itself at a room the focus holds for nobody
    yet (as a host's conference IQ makes it) is refused by the MUC itself."""
    stack = secure_stack
    host_client = await clients.connect(stack.server, "alice@localhost", "wonderland", verify=False)
    iq = host_client.make_iq_set(ito="focus.localhost")
    import xml.etree.ElementTree as ET
    ET.SubElement(iq.xml, "{http://jitsi.org/protocol/focus}conference", room="early@conference.localhost")
    res = await iq.send(timeout=10)
    assert res.xml.find("{http://jitsi.org/protocol/focus}conference").get("ready") == "true"
    guest = await clients.connect(stack.server, "guest.localhost", mech="ANONYMOUS", verify=False)
    pres = guest.make_presence(pto="early@conference.localhost/g")
    ET.SubElement(pres.xml, "{http://jabber.org/protocol/muc}x")
    got = asyncio.get_running_loop().create_future()
    guest.add_event_handler("presence_error", lambda p: got.done() or got.set_result(p))
    pres.send()
    err = await asyncio.wait_for(got, 10)
    assert err["error"]["condition"] == "not-allowed"
    assert "not been opened by its host" in err["error"]["text"]


@pytest.fixture
async def token_stack(tmp_path):
    stack = Stack(make_config(server__data_dir=str(tmp_path / "data"), auth__mode="token",
                              auth__jwt_secret=SECRET, auth__jwt_audience="jitsi"))
    await stack.start()
    yield stack
    await stack.stop()


async def test_token_moderator_claim_makes_owner_and_name_is_shown(token_stack):
    stack = token_stack
    pupil = participant(stack, "class", "pupil", token=token("class", name="Pupil Pia"))
    teacher = participant(stack, "class", "teacher", token=token("*", moderator=True, name="Teacher Tom"))
    try:
        await asyncio.gather(pupil.join(timeout=30), teacher.join(timeout=30))
        room = stack.server.plugins[-1].service.rooms["class"]
        by_nick = {o.nick: o for o in room.occupants.values()}
        assert room.affiliation(by_nick["teacher"].jid.bare) == "owner"
        assert room.affiliation(by_nick["pupil"].jid.bare) == "none"  # no auto-owner in token mode
        await until(lambda: teacher.occupants.get("pupil") == "Pupil Pia", 10, "the token's name at the teacher's")
    finally:
        await asyncio.gather(pupil.leave(), teacher.leave())


async def test_token_mode_without_a_guest_domain_refuses_guests_clearly(token_stack):
    p = participant(token_stack, "class", "guest")
    with pytest.raises(ParticipantError, match="refused guest sign-in"):
        await p.join(timeout=20)


@pytest.mark.parametrize("make, reason", [
    (lambda: token("class", key="another-secret-another-secret-xx"), "signature is wrong"),
    (lambda: unsigned("class"), "signed with 'none'"),
    (lambda: token("class", exp=-120), "expired"),
    (lambda: token("class", nbf=600), "not valid before"),
    (lambda: token("class", aud="other"), "audience 'other'"),
    (lambda: token("another"), "Your token is for room 'another', not 'class'"),
])
async def test_token_refusals_reach_the_participant(token_stack, make, reason):
    p = participant(token_stack, "class", "x", token=make())
    with pytest.raises(ParticipantError, match=re.escape(reason)):
        await p.join(timeout=20)


# ---- jitsi-py join --user / --password-file / --token ------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


async def cli_join(stack: Stack, *args: str) -> asyncio.subprocess.Process:
    host, port = stack.server.c2s_address
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jitsi_py", "join", *args, "--server", f"{host}:{port}", "--cafile",
        str(stack.cert_path), "--timeout", "30", cwd=str(ROOT), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)


async def test_cli_user_with_password_file_opens_the_meeting_for_a_waiting_guest(secure_stack, tmp_path):
    stack = secure_stack
    (tmp_path / "pw").write_text("wonderland\n")
    guest = participant(stack, "weekly", "guest")
    events: list[str] = []
    guest.add_listener(lambda e: events.append(e.type))
    joining = asyncio.ensure_future(guest.join(timeout=40))
    proc = None
    try:
        await until(lambda: "waiting-for-host" in events, 10, "the guest to wait for the host")
        proc = await cli_join(stack, "weekly", "--user", "alice", "--password-file", str(tmp_path / "pw"),
                              "--nick", "host0001", "--test-pattern")
        await asyncio.wait_for(joining, 30)
        assert "host0001" in guest.occupants
    finally:
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 15)
        if not joining.done():
            joining.cancel()
        await asyncio.gather(joining, return_exceptions=True)
        await guest.leave()


async def test_cli_token_for_another_room_exits_with_the_reason(token_stack):
    proc = await cli_join(token_stack, "class", "--token", token("another"))
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1, err
    assert "Your token is for room 'another', not 'class'" in err.decode() and "Traceback" not in err.decode()


# ---- an independent client: npm `stanza`, as a new user would try it ---------------------------

async def test_stanza_signs_in_as_a_guest_on_the_guest_domain_and_chats(xmpp_server, http_front, clients):
    from test_muc_xmppjs import JS, NodeClient
    import shutil
    import subprocess
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the stanza client (.ci/run installs them)")
    if not (JS / "node_modules" / "stanza").exists():
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"npm ci failed: {done.stderr[-2000:]}"
    srv = await xmpp_server(auth__mode="secure")
    base = await http_front(srv)
    srv.users.add("focus", "auth.localhost", "pw")
    srv.users.add("alice", "localhost", "pw")
    room = "chat@conference.localhost"
    focus = await clients.connect(srv, "focus@auth.localhost/focus", "pw", plugins=("xep_0045",))
    await focus.plugin["xep_0045"].join_muc_wait(JID(room), "focus", timeout=5)
    alice = await clients.connect(srv, "alice@localhost/web", "pw", plugins=("xep_0045",))
    await alice.plugin["xep_0045"].join_muc_wait(JID(room), "alice", timeout=5)
    said = asyncio.get_running_loop().create_future()
    alice.add_event_handler("groupchat_message",
                            lambda m: m["from"].resource == "stanza" and not said.done() and said.set_result(m))
    proc = await asyncio.create_subprocess_exec(
        "node", str(JS / "stanza_guest.mjs"), base.replace("http", "ws") + "/xmpp-websocket", "guest.localhost",
        room, "stanza", "hello from stanza", cwd=JS, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    node = NodeClient(proc)
    try:
        online = await node.expect(lambda e: e["event"] == "online")
        assert "@guest.localhost/" in online["jid"]
        await node.expect(lambda e: e["event"] == "joined")
        msg = await asyncio.wait_for(said, 10)
        assert msg["body"] == "hello from stanza"
        alice.send_message(mto=room, mbody="hello stanza", mtype="groupchat")
        await node.expect(lambda e: e["event"] == "message" and e["body"] == "hello stanza")
    finally:
        await node.close()


# ---- keys from a key server by kid --------------------------------------------------------------

async def test_rs256_keys_come_from_the_key_server_by_kid(xmpp_server):
    """`jwt_key_url`: the key of a token's `kid` is <url>/<sha256(kid)>.pem, fetched on first use
    and kept; an unknown kid, a token without one and a key of the wrong type are refused."""
    from aiohttp import web
    good, other = rsa.generate_private_key(65537, 2048), rsa.generate_private_key(65537, 2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())

    def pem(private: object) -> bytes:
        return private.public_key().public_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    files = {hashlib.sha256(b"portal/k1").hexdigest() + ".pem": pem(good),
             hashlib.sha256(b"portal/ec").hexdigest() + ".pem": pem(ec_key)}
    asked: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        asked.append(request.match_info["name"])
        data = files.get(request.match_info["name"])
        return web.Response(body=data) if data else web.Response(status=404)
    app = web.Application()
    app.router.add_get("/keys/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/keys"
        cfg = make_config(auth__mode="token", auth__jwt_algorithm="RS256", auth__jwt_key_url=url)
        srv = await xmpp_server(config=cfg)
        signed = token("r1", key=good, alg="RS256", headers={"kid": "portal/k1"})
        assert "<success" in await oauthbearer(srv, signed)
        assert "<success" in await oauthbearer(srv, signed)
        assert len(asked) == 1  # kept after the first look-up
        for tok, reason in (
                (token("r1", key=other, alg="RS256", headers={"kid": "portal/k1"}), "signature is wrong"),
                (token("r1", key=good, alg="RS256", headers={"kid": "portal/nope"}), "no key for this token (HTTP 404)"),
                (token("r1", key=good, alg="RS256"), "names no usable key"),
                (token("r1", key=ec_key, alg="ES256", headers={"kid": "portal/ec"}), "signed with 'ES256'"),
        ):
            out = await oauthbearer(srv, tok)
            assert "<not-authorized" in out and reason in out, (reason, out)
        # a token whose kid names an EC key while the config says RS256: the key is refused
        out = await oauthbearer(srv, token("r1", key=good, alg="RS256", headers={"kid": "portal/ec"}))
        assert "<not-authorized" in out and "not an RSA public key" in out, out
    finally:
        await runner.cleanup()


def test_key_url_must_be_https_except_to_loopback():
    from xmpp_plugins.tokens import key_url_problem
    assert key_url_problem("https://keys.example.org/asap") == ""
    assert key_url_problem("http://127.0.0.1:9000/keys") == ""
    assert "must be https" in key_url_problem("http://keys.example.org/asap")
    assert "not an http(s) URL" in key_url_problem("ftp://x")
