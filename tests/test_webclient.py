"""The browser client end to end: real Chromium (Debian's, driven by Playwright) against a Stack
started in-process on free ports.

Screenshots of each step go to test-artifacts/webclient/ (ignored by git) for a human to look at.
Chromium runs with fake capture devices: a green test pattern for the camera and a beeping mic
(the bridge drops silent audio, so a beep is what makes audio flow).
"""
from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import xml.etree.ElementTree as ET

import aiohttp
import pytest
import slixmpp
import slixmpp.exceptions

from conftest import make_config
from jitsi_py.stack import Stack

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = os.environ.get("JITSI_PY_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
    "--auto-select-desktop-capture-source=Entire screen",  # getDisplayMedia picks the (fake) screen
    "--no-sandbox",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "webclient"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}")

# a tile's video is really playing: decoded size known and time moving on between two polls
# (wait_for_function does not await promises, so predicates stay synchronous)
VIDEO_PLAYING = """(name) => {
  const tile = [...document.querySelectorAll('.tile')].find((t) => t.dataset.name === name);
  if (!tile || !tile.classList.contains('video-on')) return false;
  const v = tile.querySelector('video');
  if (!(v.videoWidth > 0)) return false;
  const prev = v.__seenTime;
  v.__seenTime = v.currentTime;
  return prev !== undefined && v.currentTime > prev;
}"""
# inbound RTP (from pc.getStats()) per kind
INBOUND = "async () => { const s = await window.jitsiTest.stats(); return s ? s.inbound : null; }"


async def wait_video(page, name: str, timeout: float = 20_000) -> None:
    await page.wait_for_function(VIDEO_PLAYING, arg=name, polling=100, timeout=timeout)


async def wait_bytes_grow(page, kinds: tuple[str, ...] = ("audio", "video"), timeout: float = 10.0) -> None:
    """Inbound bytes of these kinds grow (polled: getStats() is asynchronous)."""
    first = await page.evaluate(INBOUND)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        now = await page.evaluate(INBOUND)
        if first and now and all(now[k] > first[k] for k in kinds):
            return
        if loop.time() > deadline:
            raise AssertionError(f"inbound RTP did not grow: {first} -> {now}")
        await asyncio.sleep(0.1)


async def start_stack(tmp_path: Path, **overrides) -> Stack:
    cfg = make_config(server__data_dir=str(tmp_path / "data"), **overrides)
    stack = Stack(cfg)
    await stack.start()
    return stack


@pytest.fixture
async def stack(tmp_path):
    s = await start_stack(tmp_path)
    yield s
    await s.stop()


@pytest.fixture
async def browser():
    async with playwright_api.async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        await b.close()


def base_url(stack: Stack) -> str:
    host, port = stack.http_address
    return f"http://{host}:{port}"


async def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


async def open_room(browser, url: str, name: str, *, init_script: str | None = None, bosh_only: bool = False,
                    via_landing: bool = False, screenshot: str = "", camera: bool = True,
                    viewport: tuple[int, int] = (1100, 700)):
    ctx = await browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # console errors too: a Content-Security-Policy violation shows up only there
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.errors = errors  # type: ignore[attr-defined]
    if init_script:
        await page.add_init_script(init_script)
    if bosh_only:
        # the WebSocket endpoint "fails": the page must fall back to BOSH
        await page.route_web_socket(re.compile(r".*/xmpp-websocket$"), lambda ws: ws.close())
    if via_landing:
        base, room = url.rsplit("/", 1)
        await page.goto(base + "/")
        await page.fill("#room-input", "not a room!")
        assert await page.get_attribute("#room-input", "aria-invalid") == "true"
        await page.fill("#room-input", room)
        if screenshot:
            await shot(page, screenshot + "-landing")
        await page.press("#room-input", "Enter")
        await page.wait_for_url(url)
    else:
        await page.goto(url)
    await page.fill("#name-input", name)
    # wait for the device prompt to settle, then join
    await page.wait_for_function("() => document.getElementById('join-status').textContent === ''", timeout=10_000)
    if screenshot:
        await page.wait_for_function("() => document.getElementById('preview-video').videoWidth > 0", timeout=10_000)
        await shot(page, screenshot + "-prejoin")
    if not camera:
        await page.click("#pre-cam")
        await page.wait_for_function("() => window.jitsiTest.state.videoMuted", timeout=5_000)
    await page.click("#join")
    return page


async def in_conference(page, timeout: float = 15_000) -> None:
    await page.wait_for_selector("#conference:not([hidden])", timeout=timeout)


def tile(page, name: str):
    return page.locator(f'.tile[data-name="{name}"]')


async def observer(stack: Stack, room: str) -> tuple[slixmpp.ClientXMPP, asyncio.Queue]:
    """A plain slixmpp guest in the room, collecting groupchat bodies."""
    import ssl
    c = slixmpp.ClientXMPP("localhost", "", sasl_mech="ANONYMOUS")
    c.ssl_context = ssl.create_default_context(cafile=str(stack.cert_path))
    c.enable_direct_tls = False
    c.register_plugin("xep_0045")
    started = asyncio.get_running_loop().create_future()
    c.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    bodies: asyncio.Queue = asyncio.Queue()
    c.add_event_handler("groupchat_message", lambda m: bodies.put_nowait((m["mucnick"], m["body"])))
    c.connect(*stack.server.c2s_address)
    await asyncio.wait_for(started, 10)
    await c.plugin["xep_0045"].join_muc_wait(slixmpp.JID(room), "observer", timeout=10, maxstanzas=0)
    return c, bodies


async def next_body(bodies: asyncio.Queue, text: str, timeout: float = 10) -> str:
    async def loop() -> str:
        while True:
            nick, body = await bodies.get()
            if body == text:
                return nick
    return await asyncio.wait_for(loop(), timeout)


async def test_routes_and_config(stack):
    base = base_url(stack)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/") as r:
            assert r.status == 200 and "Start meeting" in await r.text()
        async with http.get(f"{base}/My_Room-1") as r:
            assert r.status == 200 and 'id="prejoin"' in await r.text()
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        async with http.get(f"{base}/{'x' * 65}") as r:
            assert r.status == 404
        async with http.get(f"{base}/bad.name") as r:
            assert r.status == 404
        # a browser that mistypes an address gets the app's page with a way back, still a 404
        for path in ("/bad%20room!", f"/{'y' * 80}", "/Room/extra"):
            async with http.get(f"{base}{path}", headers={"Accept": "text/html,*/*"}) as r:
                page = await r.text()
                assert r.status == 404 and 'id="not-found"' in page and 'href="/"' in page, path
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        # but not on the paths the rest of the stack serves, nor for non-page requests
        for path, accept in (("/static/js/nope.js", "text/html"), ("/colibri-ws/x", "text/html"),
                             ("/Room/extra", "application/json")):
            async with http.get(f"{base}{path}", headers={"Accept": accept}) as r:
                assert r.status in (404, 403) and 'id="not-found"' not in await r.text(), path
        async with http.get(f"{base}/config.json", headers={"Host": "meet.example.org:8443",
                                                            "X-Forwarded-Proto": "https"}) as r:
            cfg = await r.json()
        assert cfg["domain"] == "localhost"
        assert cfg["mucDomain"] == "conference.localhost" and cfg["focus"] == "focus.localhost"
        assert cfg["websocketUrl"] == "wss://meet.example.org:8443/xmpp-websocket"
        assert cfg["boshUrl"] == "https://meet.example.org:8443/http-bind"
        async with http.get(f"{base}/config.js") as r:
            text = await r.text()
            assert r.content_type == "text/javascript" and text.startswith("export default {")
            assert f'"ws://{stack.http_address[0]}:{stack.http_address[1]}/xmpp-websocket"' in text
        # the room page's modules, followed through their imports: each one is served, revalidated
        seen: set[str] = set()
        todo = ["room.js"]
        while todo:
            module = todo.pop()
            seen.add(module)
            async with http.get(f"{base}/static/js/{module}") as r:
                assert r.status == 200 and "javascript" in r.content_type, module
                assert r.headers["Cache-Control"] == "no-cache", module
                imports = re.findall(r"""^import [^;]*?from '\./([a-z]+\.js)';""", await r.text(), re.M | re.S)
            todo += [m for m in imports if m not in seen and m not in todo]
        assert {"room.js", "store.js", "conference.js", "tiles.js", "security.js"} <= seen
        # the other services' top-level paths are not rooms (metrics live on the admin port)
        async with http.get(f"{base}/metrics") as r:
            assert r.status == 404 and 'id="prejoin"' not in await r.text()
        async with http.get(f"{base}/about/health") as r:
            assert r.status == 200
        async with http.get(f"{base}/http-bind") as r:
            assert 'id="prejoin"' not in await r.text()
        # a plain GET on the WebSocket path is lib-jitsi-meet's keep-alive: 200 with a short text;
        # a broken upgrade is still refused
        async with http.get(f"{base}/xmpp-websocket") as r:
            assert r.status == 200 and "XMPP WebSocket" in await r.text()
            assert 'id="prejoin"' not in await r.text()
        async with http.get(f"{base}/xmpp-websocket", headers={"Upgrade": "websocket", "Connection": "Upgrade"}) as r:
            assert r.status == 400


async def test_two_browsers_meet(stack, browser):
    room = "WebTest"
    url = f"{base_url(stack)}/{room}"
    alice = await open_room(browser, url, "Alice Archer", via_landing=True, screenshot="0")
    bob = await open_room(browser, url, "Bob Baker", bosh_only=True)
    await in_conference(alice)
    await in_conference(bob)
    assert await alice.text_content("#conn-info") == "WebSocket"
    assert await bob.text_content("#conn-info") == "BOSH"

    # each sees the other's video playing, and RTP keeps arriving
    await wait_video(alice, "Bob Baker")
    await wait_video(bob, "Alice Archer")
    for page in (alice, bob):
        await wait_bytes_grow(page)
    assert await alice.locator(".tile").count() == 2  # no tile for the focus
    # the bridge names a dominant speaker (both fake mics beep): one tile is highlighted
    await alice.wait_for_selector(".tile.dominant", timeout=10_000)
    await shot(alice, "1-alice-sees-bob")
    await shot(bob, "1-bob-sees-alice")

    # chat: a page, another page (over BOSH) and a plain XMPP client in the room
    client, bodies = await observer(stack, f"{room.lower()}@conference.localhost")
    try:
        await alice.click("#btn-chat")
        await alice.fill("#chat-input", "hello from Alice")
        await alice.press("#chat-input", "Enter")
        await bob.wait_for_selector('#chat-log .msg-text:text-is("hello from Alice")', state="attached", timeout=10_000)
        await alice.wait_for_selector('#chat-log .msg.self .msg-text:text-is("hello from Alice")', timeout=10_000)
        # XMPP users see the display name as the page's nick
        assert await next_body(bodies, "hello from Alice") == "Alice Archer"
        assert await alice.evaluate("window.jitsiTest.conference.nick") == "Alice Archer"
        client.send_message(mto=f"{room.lower()}@conference.localhost", mbody="hi from XMPP", mtype="groupchat")
        await alice.wait_for_selector('#chat-log .msg-text:text-is("hi from XMPP")', timeout=10_000)
        assert await bob.text_content("#unread") in ("1", "2")  # unread badge while Bob's chat is closed
        # the XMPP client takes no calls: listed as chat-only, no video tile, no offer from the focus
        await alice.wait_for_selector('#people-list li[data-nick="observer"] .person-ind:text-is("chat only")',
                                      state="attached", timeout=10_000)
        assert await alice.locator('.tile[data-nick="observer"]').count() == 0
        assert await alice.locator(".tile").count() == 2
        from conftest import until
        focus_conf = stack.focus.conferences[f"{room.lower()}@conference.localhost"]
        await until(lambda: focus_conf.participants["observer"].chat_only, 10, "the focus to see a text client")
        assert not focus_conf.participants["observer"].sid  # never offered a session
        await shot(alice, "2-chat")
    finally:
        client.disconnect()

    # Bob mutes his mic: Alice sees the indicator
    await bob.click("#btn-mic")
    await alice.wait_for_selector('.tile.audio-muted[data-name="Bob Baker"] .ind.mic svg', timeout=10_000)
    assert await tile(bob, "Bob Baker").get_attribute("class") and "audio-muted" in (
        await tile(bob, "Bob Baker").get_attribute("class"))
    await alice.click("#btn-people")
    await shot(alice, "3-bob-muted")

    # Bob stops his camera: Alice sees his initials instead of video
    await bob.click("#btn-cam")
    await alice.wait_for_function(
        """() => { const t = document.querySelector('.tile[data-name="Bob Baker"]');
                   return t && !t.classList.contains('video-on') && t.querySelector('.avatar').textContent === 'BB'; }""",
        timeout=10_000)
    await shot(alice, "4-bob-camera-off")

    # Alice shares her screen: same video sender, new track, presence says "desktop"
    await alice.click("#btn-screen")
    await bob.wait_for_function(
        """() => [...window.jitsiTest.conference.participants.values()].some(
                 (p) => p.name === 'Alice Archer' && p.videoType === 'desktop')""", timeout=10_000)
    await bob.wait_for_selector('.tile.screen[data-name="Alice Archer"]', timeout=5_000)
    await wait_video(bob, "Alice Archer", timeout=10_000)
    await shot(bob, "5-alice-shares-screen")
    await alice.click("#btn-screen")
    await bob.wait_for_selector('.tile.video-on:not(.screen)[data-name="Alice Archer"]', timeout=10_000)

    # Bob's page reports ICE failure: the focus ends his session and offers a new one
    await bob.click("#btn-cam")  # camera back on for this part
    sessions = await bob.evaluate("window.jitsiTest.conference.sessions")
    await bob.evaluate("window.jitsiTest.conference._reportIceFailed()")
    await bob.wait_for_function(f"() => window.jitsiTest.conference.sessions > {sessions}", timeout=10_000)
    await wait_video(alice, "Bob Baker")
    await wait_video(bob, "Alice Archer")
    await wait_bytes_grow(alice, ("video",))  # Bob's mic is muted: the bridge drops his silence

    # Bob leaves: his tile goes away at Alice's, Bob sees the end screen
    await bob.click("#btn-leave")
    await bob.wait_for_selector("#ended:not([hidden])", timeout=5_000)
    assert await bob.text_content("#ended-title") == "You left the meeting"
    await alice.wait_for_selector('.tile[data-name="Bob Baker"]', state="detached", timeout=10_000)
    await shot(alice, "6-bob-left")
    await shot(bob, "6-bob-ended")
    assert alice.errors == [] and bob.errors == []  # type: ignore[attr-defined]


DENY_MEDIA = """
navigator.mediaDevices.getUserMedia = async () => {
  throw new DOMException('Permission denied', 'NotAllowedError');
};
"""


def test_nick_from_display_name():
    """The page's MUC nick is its display name, tidied and made unique on the room's conflict."""
    import json
    import shutil
    import subprocess
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node")
    script = ("import { nickFor } from './webclient/static/js/names.js';"
              "console.log(JSON.stringify([nickFor('Ada'), nickFor('Ada', 2), nickFor('  Ada \\n Lovelace\\u0007 '),"
              "nickFor('\\uFF21da'), nickFor('x'.repeat(100)), nickFor(''), nickFor('\\u200b '), nickFor('Ada', 21)]));")
    out = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30,
                         cwd=Path(__file__).resolve().parent.parent, check=True).stdout
    plain, second, tidied, nfkc, long, empty, invisible, many = json.loads(out)
    assert (plain, second, tidied, nfkc, long) == ("Ada", "Ada (2)", "Ada Lovelace", "Ada", "x" * 48)
    for fallback in (empty, invisible, many):  # nothing usable, or taken too often: random as before
        assert re.fullmatch(r"[0-9a-f]{8}", fallback), fallback


async def test_same_display_name_twice(stack, browser):
    """Two pages named alike: the second gets "(2)" as its nick, an XMPP client in the room sees
    both names, and each page shows the other's tile with the display name."""
    room = "Namesake"
    muc = f"{room.lower()}@conference.localhost"
    first = await open_room(browser, f"{base_url(stack)}/{room}", "Ada Lovelace")
    await first.wait_for_function("() => window.jitsiTest.conference.joined", timeout=15_000)
    second = await open_room(browser, f"{base_url(stack)}/{room}", "Ada Lovelace")
    await in_conference(first)
    await in_conference(second)
    assert await first.evaluate("window.jitsiTest.conference.nick") == "Ada Lovelace"
    assert await second.evaluate("window.jitsiTest.conference.nick") == "Ada Lovelace (2)"
    await first.wait_for_selector('.tile:not(.local)[data-nick="Ada Lovelace (2)"][data-name="Ada Lovelace"]',
                                  timeout=10_000)
    client, bodies = await observer(stack, muc)
    try:
        assert set(client.plugin["xep_0045"].get_roster(muc)) >= {"Ada Lovelace", "Ada Lovelace (2)"}
        await second.click("#btn-chat")
        await second.fill("#chat-input", "the second Ada")
        await second.press("#chat-input", "Enter")
        assert await next_body(bodies, "the second Ada") == "Ada Lovelace (2)"
        await shot(first, "2b-same-name")
        # the XMPP client is in People as chat only, with no tile
        await first.click("#btn-people")
        await first.wait_for_selector('#people-list li[data-nick="observer"] .person-ind:text-is("chat only")',
                                      timeout=10_000)
        assert await first.locator(".tile").count() == 2
        await shot(first, "2c-chat-only-in-people")
    finally:
        client.disconnect()
    assert first.errors == [] and second.errors == []  # type: ignore[attr-defined]


async def test_errors_are_explained(tmp_path, browser):
    # a room that is full (the focus already fills a one-seat room)
    full = await start_stack(tmp_path / "full", muc__max_occupants=1)
    try:
        page = await open_room(browser, f"{base_url(full)}/Crowded", "Carol")
        await page.wait_for_selector("#ended:not([hidden])", timeout=15_000)
        assert await page.text_content("#ended-title") == "The meeting is full"
        await shot(page, "7-room-full")
    finally:
        await full.stop()

    stack = await start_stack(tmp_path / "ok")
    try:
        base = base_url(stack)
        # camera and microphone denied: a clear warning, and joining still works
        ctx = await browser.new_context(viewport={"width": 1100, "height": 700})
        page = await ctx.new_page()
        await page.add_init_script(DENY_MEDIA)
        ws_routes = []
        cut = False

        def keep(ws):  # pass the XMPP WebSocket through, so the test can cut it later
            if cut:
                asyncio.ensure_future(ws.close())  # the server is gone: new connections fail
                return
            ws.connect_to_server()
            ws_routes.append(ws)
        await page.route_web_socket(re.compile(r".*/xmpp-websocket$"), keep)
        await page.route("**/http-bind", lambda r: r.abort() if cut else r.continue_())
        await page.goto(f"{base}/Lonely")
        await page.wait_for_selector("#media-warning:not([hidden])", timeout=10_000)
        assert "blocked" in await page.text_content("#media-warning")
        await page.fill("#name-input", "Dave")
        await shot(page, "8-devices-blocked")
        await page.click("#join")
        await in_conference(page)
        await page.wait_for_selector('.tile.local.audio-muted.video-muted[data-name="Dave"]', timeout=5_000)
        assert await page.text_content('.tile.local .avatar') == "D"
        # the connection drops and cannot be restored: the page tries for a while, then says so
        assert ws_routes
        await page.evaluate("window.jitsiTest.conference.reconnectGiveUpMs = 3000")
        cut = True
        await ws_routes[0].close()
        await page.wait_for_selector('#conn-banner:not([hidden]):has-text("Reconnecting")', timeout=5_000)
        assert await page.is_visible("#conference")  # still the meeting while trying
        await page.wait_for_selector("#ended:not([hidden])", timeout=10_000)
        assert await page.text_content("#ended-title") == "Connection lost"
        assert await page.text_content("#rejoin") == "Try again"
        assert await page.is_hidden("#conn-banner")
        await shot(page, "9-connection-lost")

        # a server that cannot be reached at all (neither WebSocket nor BOSH)
        page = await ctx.new_page()
        dead = "export default {domain:'localhost', mucDomain:'conference.localhost', focus:'focus.localhost'," \
               "websocketUrl:'ws://127.0.0.1:9/xmpp-websocket', boshUrl:'http://127.0.0.1:9/http-bind'};"
        await page.route("**/config.js", lambda r: r.fulfill(body=dead, content_type="text/javascript"))
        await page.goto(f"{base}/Nowhere")
        await page.fill("#name-input", "Erin")
        await page.wait_for_function("() => document.getElementById('join-status').textContent === ''", timeout=10_000)
        await page.click("#join")
        await page.wait_for_selector("#ended:not([hidden])", timeout=20_000)
        assert await page.text_content("#ended-title") == "Cannot reach the server"
        await ctx.close()
    finally:
        await stack.stop()


async def test_no_conference_no_room(tmp_path, browser):
    """The focus is not there (its conference IQ fails after the page's retries): the page says
    why and never joins the room, where nobody would start a trustworthy media session."""
    stack = await start_stack(tmp_path, focus__enabled=False)
    try:
        page = await open_room(browser, f"{base_url(stack)}/Unfocused", "Fay")
        await page.wait_for_selector("#ended:not([hidden])", timeout=20_000)
        assert await page.text_content("#ended-title") == "The meeting could not be set up"
        message = await page.text_content("#ended-message")
        assert message.startswith("The conference service did not set up this room (remote-server-not-found - "), message
        assert message.endswith("Try again in a moment.")
        assert await page.text_content("#rejoin") == "Try again"
        assert await page.evaluate("window.jitsiTest.conference.joined") is False
        assert "unfocused" not in stack.server.plugins[-1].service.rooms  # not even created by the page
        assert page.errors == []
        await shot(page, "10-conference-refused")
    finally:
        await stack.stop()


async def test_lobby_password_moderation(stack, browser):
    """A members-only room with a password: the lobby, the password prompt; then the first
    participant (made owner by the focus) mutes and removes the second one from the page."""
    import dataclasses
    room = "Guarded"
    room_jid = f"{room.lower()}@conference.localhost"
    url = f"{base_url(stack)}/{room}"
    stack.focus.start_muted = (0, 1)  # everyone after the first joins with video off
    alice = await open_room(browser, url, "Alice")
    await in_conference(alice)
    await alice.wait_for_function("() => window.jitsiTest.conference.isModerator", timeout=10_000)
    muc = next(p for p in stack.server.plugins if p.name == "muc")
    main = muc.service.rooms[room.lower()]
    old = main.config
    main.config = dataclasses.replace(old, members_only=True, lobby=True, password="s3cret")
    main._config_changed(old, main.config)  # what the owner's config form would do

    bob = await open_room(browser, url, "Bob")
    await bob.wait_for_selector("#lobby:not([hidden])", timeout=10_000)
    await shot(bob, "10-lobby")
    bob_jid = await bob.evaluate("window.jitsiTest.conference.xmpp.jid")
    owner = stack.focus.client.plugin["xep_0045"]  # the focus owns the room: it lets Bob in
    await owner.set_affiliation(slixmpp.JID(room_jid), "member", jid=slixmpp.JID(bob_jid.split("/")[0]))
    await bob.wait_for_selector("#password-box:not([hidden])", timeout=10_000)
    await bob.fill("#password-input", "wrong")
    await bob.click("#join")
    await bob.wait_for_function(
        "() => document.getElementById('password-label').textContent.startsWith('Wrong')", timeout=10_000)
    await bob.fill("#password-input", "s3cret")
    await bob.click("#join")
    await in_conference(bob)
    await alice.wait_for_selector('.tile[data-name="Bob"]', timeout=10_000)
    # start-muted policy from the focus's offer: Bob's camera goes off
    await bob.wait_for_selector('.tile.local.video-muted[data-name="Bob"]', timeout=10_000)
    await alice.wait_for_selector('.tile.video-muted[data-name="Bob"]', timeout=10_000)

    # Alice mutes Bob from the participant list; Bob's page obeys and says who did it
    await alice.click("#btn-people")
    await alice.click('#people-list li:has-text("Bob") button:text-is("Mute")')
    await bob.wait_for_function("() => window.jitsiTest.state.audioMuted === true", timeout=10_000)
    await bob.wait_for_selector('#toast:has-text("Alice muted your microphone")', timeout=5_000)
    await alice.wait_for_selector('.tile.audio-muted[data-name="Bob"]', timeout=10_000)
    await shot(alice, "11-moderator-muted-bob")

    alice.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await alice.click('#people-list li:has-text("Bob") button:text-is("Remove")')
    await bob.wait_for_selector("#ended:not([hidden])", timeout=10_000)
    assert await bob.text_content("#ended-title") == "You were removed from the meeting"
    await alice.wait_for_selector('.tile[data-name="Bob"]', state="detached", timeout=10_000)
    await shot(bob, "12-kicked")
    assert alice.errors == [] and bob.errors == []  # type: ignore[attr-defined]


async def test_sdp_port_matches_python(stack, browser):
    """webclient/static/js/sdp.js builds the same offer as jitsi_protocols/sdp.py, and
    reads a real Chromium answer the same way."""
    from lxml import etree

    from jitsi_protocols import sdp
    from jitsi_protocols.jingle import JingleAction, jingle_element
    from jitsi_protocols.model import Candidate, Content, Fingerprint, IceTransport, Source, SourceGroup

    audio, video = sdp.default_media()
    transport = IceTransport("ufrag1", "pwd/+0123456789abcdefghij", [Fingerprint("sha-256", ":".join(["AB"] * 32), "actpass")],
                             [Candidate("1", 1, "udp", 2130706431, "127.0.0.1", 10000, "host"),
                              Candidate("2", 1, "udp", 1694498815, "203.0.113.9", 10001, "srflx",
                                        rel_addr="127.0.0.1", rel_port=10000)],
                             websocket_url="ws://h/colibri-ws/jvb1/c/e?pwd=x")
    slots_a = [Source(1001 + i, "audio", owner="jvb", name=f"jvb-a{i}", cname="jvb",
                      msid=f"jvb-audio-{i} jvb-audio-{i}-track") for i in range(2)]
    slots_v = [Source(2001 + i, "video", owner="jvb", name=f"jvb-v{i}", cname="jvb",
                      msid=f"jvb-video-{i} jvb-video-{i}-track") for i in range(3)]
    other = [Source(777, "video", owner="r@conference.localhost/abcd0123", cname="x")]  # no msid: ignored
    contents = [Content("audio", "audio", audio, slots_a, [], "both", transport),
                Content("video", "video", video, slots_v + other, [SourceGroup("FID", [2001, 2999])], "both",
                        transport)]
    ja = JingleAction("session-initiate", "s1", initiator="r@conference.localhost/focus", contents=contents,
                      bundle=["audio", "video"], bridge_session="b1")
    xml = etree.tostring(jingle_element(ja)).decode()
    expected = sdp.build_offer(contents, transport, session_id=42)

    page = await browser.new_page()
    await page.goto(f"{base_url(stack)}/")
    got = await page.evaluate("""async (xml) => {
        const { parse } = await import('/static/js/xml.js');
        const { parseJingle, buildOffer } = await import('/static/js/sdp.js');
        const j = parseJingle(parse(xml));
        const offer = buildOffer(j, 42);
        return { sdp: offer.sdp, sections: offer.sections.map((s) => [s.mid, s.kind, s.slot]),
                 ws: offer.transport.websocketUrl };
    }""", xml)
    assert got["sdp"] == expected
    assert got["sections"] == [["audio", "audio", 0], ["audio1", "audio", 1], ["video", "video", 0],
                               ["video1", "video", 1], ["video2", "video", 2]]
    assert got["ws"] == transport.websocket_url

    # Chromium accepts that offer, and both parsers read its answer alike
    answer_sdp = await page.evaluate("""async (offerSdp) => {
        const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
        await pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
        const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
        for (const t of pc.getTransceivers()) {
            if (t.mid === 'audio' || t.mid === 'video') {
                t.direction = 'sendrecv';
                await t.sender.replaceTrack(stream.getTracks().find((x) => x.kind === t.mid));
                t.sender.setStreams(stream);
            }
        }
        await pc.setLocalDescription(await pc.createAnswer());
        const sdp = pc.localDescription.sdp;
        pc.close();
        return sdp;
    }""", expected)
    js = await page.evaluate("""async (sdp) => {
        const { parseAnswer } = await import('/static/js/sdp.js');
        return parseAnswer(sdp);
    }""", answer_sdp)
    py = sdp.parse_answer(answer_sdp)
    assert js["transport"]["ufrag"] == py.transport.ufrag and js["transport"]["pwd"] == py.transport.pwd
    assert [(f["hash"], f["value"], f["setup"]) for f in js["transport"]["fingerprints"]] == [
        (f.hash, f.value, f.setup) for f in py.transport.fingerprints]
    assert py.transport.fingerprints[0].setup == "active"
    assert sorted((s["ssrc"], s["kind"], s["cname"], s["msid"]) for s in js["sources"]) == sorted(
        (s.ssrc, s.kind, s.cname, s.msid) for s in py.sources)
    assert {s["kind"] for s in js["sources"]} == {"audio", "video"}
    assert [(g["semantics"], g["ssrcs"]) for g in js["groups"]] == [(g.semantics, g.ssrcs) for g in py.groups]

    # simulcast is the client's own business: the same offer plus receive rids (munged in the page
    # only) makes Chromium answer with three send rids and no SSRCs for them; the page takes those
    # from getStats() and signals one source of three layers
    sim = await page.evaluate("""async (offerSdp) => {
        const { offerSimulcastReceive, parseAnswer, withSimulcastSources, SIMULCAST_RIDS } = await import('/static/js/sdp.js');
        const munged = offerSimulcastReceive(offerSdp, 'video', SIMULCAST_RIDS);
        const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
        await pc.setRemoteDescription({ type: 'offer', sdp: munged });
        const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 } });
        const t = pc.getTransceivers().find((x) => x.mid === 'video');
        t.direction = 'sendrecv';
        await t.sender.replaceTrack(stream.getVideoTracks()[0]);
        t.sender.setStreams(stream);
        await pc.setLocalDescription(await pc.createAnswer());
        const answer = pc.localDescription.sdp;
        const layers = [];
        (await pc.getStats()).forEach((s) => {
            if (s.type === 'outbound-rtp' && s.rid) layers[SIMULCAST_RIDS.indexOf(s.rid)] = { ssrc: s.ssrc, rtxSsrc: s.rtxSsrc };
        });
        const signalled = withSimulcastSources(parseAnswer(answer), answer, 'video', layers);
        pc.close();
        return { munged, answer, layers: layers.map((l) => l.ssrc), rtx: layers.map((l) => l.rtxSsrc), signalled };
    }""", expected)
    added = [line for line in sim["munged"].split("\r\n") if line not in expected.split("\r\n")]
    assert added == ["a=extmap:14 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "a=rid:l0 recv", "a=rid:l1 recv",
                     "a=rid:l2 recv", "a=simulcast:recv l0;l1;l2"]
    assert "a=simulcast:send l0;l1;l2" in sim["answer"]
    assert [s for s in sdp.parse_answer(sim["answer"]).sources if s.kind == "video"] == []
    video = [s for s in sim["signalled"]["sources"] if s["kind"] == "video"]
    # the offer has RTX: each layer comes with its RTX stream, an FID group each, then the SIM group
    pairs = list(zip(sim["layers"], sim["rtx"]))
    assert all(sim["rtx"]) and [s["ssrc"] for s in video] == [x for pair in pairs for x in pair]
    assert len({s["msid"] for s in video}) == 1 and video[0]["msid"]
    assert [(g["semantics"], g["ssrcs"]) for g in sim["signalled"]["groups"]] == [
        ("FID", list(pair)) for pair in pairs] + [("SIM", sim["layers"])]
    await page.close()


async def test_https_serves_the_page_and_wss(tmp_path):
    """With [http] tls on, the page, its config and the bridge channel use https/wss."""
    import ssl

    import aiohttp

    from conftest import make_config
    from jitsi_py.stack import Stack
    s = Stack(make_config(server__data_dir=str(tmp_path / "data"), http__tls=True))
    await s.start()
    try:
        host, port = s.http_address
        ctx = ssl.create_default_context(cafile=str(s.cert_path))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://localhost:{port}/myroom", ssl=ctx) as r:
                assert r.status == 200
            async with http.get(f"https://localhost:{port}/config.json", ssl=ctx) as r:
                cfg = await r.json()
        assert any(str(v).startswith("wss://localhost:") for v in cfg.values()), cfg
        assert s.bridge.websocket_base.startswith("wss://")
    finally:
        await s.stop()


def cut_connection(stack: Stack, jid: str) -> None:
    """Drop a page's XMPP connection the hard way, from the server's side (no closing handshake:
    the browser sees its WebSocket fail as when the network goes away)."""
    from xmpp_wire.stanza import JID
    session = stack.server.router.session(JID(jid))
    assert session is not None, f"no server session for {jid}"
    session.transport._raw.abort()


async def test_reconnects_after_connection_loss(stack, browser):
    """The XMPP connection drops: the page says it is reconnecting, gets back in with the same
    name and mute state (a new nick and Jingle session) and media flows again."""
    room = "Bumpy"
    url = f"{base_url(stack)}/{room}"
    alice = await open_room(browser, url, "Alice Archer", bosh_only=True)
    bob = await open_room(browser, url, "Bob Baker")
    await in_conference(alice)
    await in_conference(bob)
    await wait_video(alice, "Bob Baker")
    await wait_video(bob, "Alice Archer")
    await bob.click("#btn-mic")  # muted before the drop: still muted after it
    await alice.wait_for_selector('.tile.audio-muted[data-name="Bob Baker"]', timeout=10_000)
    old_nick = await bob.evaluate("window.jitsiTest.conference.nick")
    sessions = await bob.evaluate("window.jitsiTest.conference.sessions")

    cut_connection(stack, await bob.evaluate("window.jitsiTest.conference.xmpp.jid"))
    await bob.wait_for_selector('#conn-banner:not([hidden]):has-text("Reconnecting")', timeout=5_000)
    assert await bob.is_visible("#conference") and await bob.is_hidden("#ended")
    # no media meanwhile: Alice's tile shows her initials, nobody is the dominant speaker
    await bob.wait_for_selector('.tile:not(.video-on):not(.dominant)[data-name="Alice Archer"]', timeout=5_000)
    await shot(bob, "13-reconnecting")

    await bob.wait_for_function("() => window.jitsiTest.conference.reconnects === 1", timeout=15_000)
    await bob.wait_for_selector('#conn-banner.ok:not([hidden]):has-text("Reconnected")', timeout=5_000)
    await shot(bob, "14-reconnected")
    conf = await bob.evaluate("""() => { const c = window.jitsiTest.conference;
        return { nick: c.nick, name: c.name, audioMuted: c.audioMuted, sessions: c.sessions }; }""")
    # the name again as nick, or "(2)" if the room still held the old session's occupant
    assert old_nick == "Bob Baker" and conf["nick"] in ("Bob Baker", "Bob Baker (2)")
    assert conf["name"] == "Bob Baker" and conf["audioMuted"] is True
    await bob.wait_for_function(f"() => window.jitsiTest.conference.sessions > {sessions}", timeout=10_000)
    # back in the call: each sees the other's video again, Alice sees Bob (once) still muted
    await wait_video(bob, "Alice Archer")
    await wait_video(alice, "Bob Baker")
    await wait_bytes_grow(bob)
    await alice.wait_for_selector(f'.tile.audio-muted[data-nick="{conf["nick"]}"][data-name="Bob Baker"]',
                                  timeout=10_000)
    assert await alice.locator(".tile").count() == 2 and await bob.locator(".tile").count() == 2
    assert await bob.locator(".tile.local").count() == 1
    await bob.wait_for_selector("#conn-banner", state="hidden", timeout=6_000)

    # Alice (over BOSH) loses her session: the server ends it; she gets back in too
    from xmpp_wire.stanza import JID
    alice_jid = await alice.evaluate("window.jitsiTest.conference.xmpp.jid")
    stack.server.router.session(JID(alice_jid)).transport.close()
    await alice.wait_for_selector('#conn-banner:not([hidden]):has-text("Reconnecting")', timeout=5_000)
    await alice.wait_for_function("() => window.jitsiTest.conference.reconnects === 1", timeout=15_000)
    assert await alice.text_content("#conn-info") == "BOSH"
    await wait_video(alice, "Bob Baker")
    await wait_video(bob, "Alice Archer")
    assert await alice.locator(".tile").count() == 2 and await bob.locator(".tile").count() == 2
    assert alice.errors == [] and bob.errors == []  # type: ignore[attr-defined]


async def test_moderator_lobby_and_password_from_the_ui(stack, browser):
    """The first participant (owner) runs the room from the Security dialog: lobby on, admit one
    knocker and deny another, lobby off, a password for the next one, then no password."""
    room = "Moderated"
    url = f"{base_url(stack)}/{room}"
    alice = await open_room(browser, url, "Alice")
    await in_conference(alice)
    await alice.wait_for_selector("#btn-security:not([hidden])", timeout=10_000)  # the focus made her owner
    await alice.click("#btn-security")
    await alice.wait_for_function("() => window.jitsiTest.conference.roomConfig !== null", timeout=5_000)
    await alice.click("#lobby-toggle")
    await alice.wait_for_function("""() => { const c = window.jitsiTest.conference;
        return c.roomConfig.lobby && c.modLobby && c.modLobby.joined; }""", timeout=10_000)
    assert await alice.is_checked("#lobby-toggle")
    await shot(alice, "15-security-lobby-on")
    await alice.click("#security-close")

    # Bob knocks; Alice lets him in; he joins and media flows
    bob = await open_room(browser, url, "Bob")
    await bob.wait_for_selector("#lobby:not([hidden])", timeout=10_000)
    knock = '#knock-list li[data-name="{}"]'
    await alice.wait_for_selector(knock.format("Bob"), timeout=10_000)
    await shot(alice, "16-bob-knocking")
    await alice.click(knock.format("Bob") + ' button:text-is("Admit")')
    await in_conference(bob)
    await alice.wait_for_selector("#knocking", state="hidden", timeout=5_000)
    await wait_video(alice, "Bob")
    await wait_video(bob, "Alice")

    # Carol knocks and is turned away
    carol = await open_room(browser, url, "Carol")
    await carol.wait_for_selector("#lobby:not([hidden])", timeout=10_000)
    await alice.wait_for_selector(knock.format("Carol"), timeout=10_000)
    await alice.click(knock.format("Carol") + ' button:text-is("Deny")')
    await carol.wait_for_selector("#ended:not([hidden])", timeout=10_000)
    assert await carol.text_content("#ended-title") == "The moderator declined your request"
    await shot(carol, "17-denied")
    await alice.wait_for_selector("#knocking", state="hidden", timeout=5_000)
    assert await alice.locator('.tile[data-name="Carol"]').count() == 0

    # lobby off, a password on
    await alice.click("#btn-security")
    await alice.click("#lobby-toggle")
    await alice.wait_for_function("""() => { const c = window.jitsiTest.conference;
        return !c.roomConfig.lobby && !c.modLobby; }""", timeout=10_000)
    await alice.fill("#room-password-input", "s3cret")
    await alice.click("#room-password-set")
    await alice.wait_for_selector('#room-password-state:has-text("s3cret")', timeout=10_000)
    assert not await alice.is_checked("#lobby-toggle")
    await shot(alice, "18-security-password")
    await alice.press("#room-password-input", "Escape")
    await alice.wait_for_selector("#security-dialog", state="hidden", timeout=5_000)

    dave = await open_room(browser, url, "Dave")
    await dave.wait_for_selector("#password-box:not([hidden])", timeout=10_000)
    await dave.fill("#password-input", "wrong")
    await dave.click("#join")
    await dave.wait_for_function(
        "() => document.getElementById('password-label').textContent.startsWith('Wrong')", timeout=10_000)
    await shot(dave, "19-wrong-password")
    await dave.fill("#password-input", "s3cret")
    await dave.click("#join")
    await in_conference(dave)
    await alice.wait_for_selector('.tile[data-name="Dave"]', timeout=10_000)

    # the password goes again
    await alice.click("#btn-security")
    await alice.click("#room-password-remove")
    await alice.wait_for_selector('#room-password-state:has-text("No password")', timeout=10_000)
    muc = next(p for p in stack.server.plugins if p.name == "muc")
    cfg = muc.service.rooms[room.lower()].config
    assert cfg.password == "" and not cfg.members_only and not cfg.lobby
    for page in (alice, bob, carol, dave):
        assert page.errors == [], page.errors  # type: ignore[attr-defined]


async def test_python_participant_and_browser(stack, browser):
    """A Python participant (aiortc: tone and test pattern) and a browser page in one call:
    each decodes the other's media. The page sends simulcast with the RID header extension,
    which aiortc did not negotiate: it decodes the (top) layer all the same."""
    from jitsi_py.participant import Participant, TestPatternTrack, ToneTrack
    room = "Mixed"
    page = await open_room(browser, f"{base_url(stack)}/{room}", "Wendy Web")
    await in_conference(page)
    host, port = stack.server.c2s_address
    py = Participant(host, port, room, cafile=str(stack.cert_path), nick="pybot", display_name="Py Bot",
                     audio=ToneTrack(), video=TestPatternTrack())
    await py.join()
    try:
        await wait_video(page, "Py Bot")
        await wait_bytes_grow(page)
        page_nick = await page.evaluate("window.jitsiTest.conference.nick")
        conf = next(iter(stack.bridge.conferences.values()))
        assert len(next(iter(conf.endpoints[page_nick].simulcast.values()))) == 3
        await py.wait_frames(page_nick, "video", timeout=20)
        await py.wait_frames(page_nick, "audio", timeout=20)
        assert py.occupants.get(page_nick) == "Wendy Web"
        await shot(page, "20-python-participant")
        # a guest in the room sends the page a session-initiate and a mute order: both refused
        guest, _ = await observer(stack, "mixed@conference.localhost")
        try:
            sessions = await page.evaluate("window.jitsiTest.conference.sessions")
            for payload in ("<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='evil'/>",
                            "<mute xmlns='http://jitsi.org/jitmeet/audio'>true</mute>"):
                iq = guest.make_iq_set(ito=f"mixed@conference.localhost/{page_nick}")
                iq.xml.append(ET.fromstring(payload))
                with pytest.raises(slixmpp.exceptions.IqError) as refused:
                    await iq.send(timeout=10)
                assert refused.value.condition == "not-acceptable"
                assert refused.value.text == "Only the focus may do this"
            assert await page.evaluate("window.jitsiTest.conference.sessions") == sessions
            assert await page.evaluate("window.jitsiTest.state.audioMuted") is False
            await wait_bytes_grow(page)  # the call goes on
        finally:
            guest.abort()
    finally:
        await py.leave()
    await page.wait_for_selector('.tile[data-name="Py Bot"]', state="detached", timeout=10_000)
    assert page.errors == []  # type: ignore[attr-defined]


async def test_bridge_estimates_chromium_bandwidth_with_transport_cc(stack, browser):
    """Two Chromium pages in a call negotiate transport-cc: the bridge numbers what it forwards
    to each, estimates each one's bandwidth from its feedback (`bwe_source` in the bridge's
    endpoint stats), and sends each one feedback for what it sends."""
    from conftest import until

    url = f"{base_url(stack)}/TccRoom"
    alice = await open_room(browser, url, "Alice Tcc")
    bob = await open_room(browser, url, "Bob Tcc")
    await in_conference(alice)
    await in_conference(bob)
    await wait_video(alice, "Bob Tcc")
    await wait_video(bob, "Alice Tcc")

    async def endpoints() -> list[dict]:
        async with aiohttp.ClientSession() as http:
            async with http.get("http://%s:%d/colibri/stats?conferences=true&endpoints=true"
                                % stack.admin_address) as r:
                body = await r.json()
        return [ep for c in body.get("conference_list", []) for ep in c.get("endpoint_list", [])]

    conf = next(iter(stack.bridge.conferences.values()))
    await until(lambda: len(conf.endpoints) == 2
                and all(ep.bwe_source() == "transport-cc" for ep in conf.endpoints.values()),
                15, "a transport-cc estimate for both pages")
    latest = await endpoints()
    assert len(latest) == 2 and all(ep["bwe_source"] == "transport-cc" for ep in latest), latest
    assert all(50_000 <= ep["bwe_bps"] <= 20_000_000 for ep in latest)
    await until(lambda: all(ep.arrivals is not None and ep.arrivals.fb_count > 0 for ep in conf.endpoints.values()),
                5, "feedback sent to both senders")


# the video slot that is decoding: its frame height and frames decoded so far
DECODING = """async () => {
  const pc = window.jitsiTest.pc();
  if (!pc) return null;
  let best = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video' && (s.framesDecoded || 0) > 0
        && (!best || s.framesDecoded > best.framesDecoded)) best = s;
  });
  return best && { height: best.frameHeight || 0, decoded: best.framesDecoded };
}"""


async def wait_decoding(page, ok, what: str, timeout: float = 15.0) -> dict:
    """Poll the page's decoding video until `ok(state)`; the last state is returned."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        state = await page.evaluate(DECODING)
        if state and ok(state):
            return state
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {state}")
        await asyncio.sleep(0.1)


async def test_camera_goes_out_in_simulcast_and_tiles_choose_the_layer(stack, browser):
    """Alice's camera (1280x720) goes to the bridge in three simulcast layers; Bob's window
    shrinks, grows and shrinks again, his page asks for 180, 720 then 360 pixels high video,
    and the bridge switches Alice's layer for him without his video stalling. Alice sends only
    the layers up to what Bob watches (SenderVideoConstraints)."""
    from conftest import until
    room = "Layers"
    url = f"{base_url(stack)}/{room}"
    alice = await open_room(browser, url, "Alice Archer")
    bob = await open_room(browser, url, "Bob Baker", camera=False)  # one encoder keeps the test light
    await in_conference(alice)
    await in_conference(bob)
    alice_nick = await alice.evaluate("window.jitsiTest.conference.nick")
    bob_nick = await bob.evaluate("window.jitsiTest.conference.nick")
    conf = next(iter(stack.bridge.conferences.values()))
    await until(lambda: alice_nick in conf.endpoints and conf.endpoints[alice_nick].simulcast, 10,
                "Alice's simulcast source at the bridge")
    sender = conf.endpoints[alice_nick]
    (layers,) = sender.simulcast.values()
    assert len(layers) == 3, sender.groups
    await until(lambda: sender.stream_stats[layers[0]].received > 50, 30, "packets on the lowest layer")

    receiver = conf.endpoints[bob_nick]
    slot = next(s for s in receiver.video_slots if s.owner == alice_nick)
    for (width, height), want, layer in (((640, 420), 180, 0), ((1700, 1100), 720, 2), ((1100, 700), 360, 1)):
        await bob.set_viewport_size({"width": width, "height": height})
        await until(lambda: receiver.max_heights.get(alice_nick) == want, 5, f"Bob asking for {want}p")
        # Alice is told the most anyone watches of her, and sends the layers up to that one
        await until(lambda: sender.sent_ideal_height == want, 5, f"Alice told {want}p is wanted")
        await until(lambda: slot.layer == layer, 20, f"the bridge forwarding layer {layer}")
        if want == 180:  # nobody watches more: the upper layers stop coming
            await until(lambda: sender.bitrate(layers[1]) == 0 and sender.bitrate(layers[2]) == 0, 10,
                        "Alice's upper layers switched off")
        state = await wait_decoding(bob, lambda s: s["height"] == want, f"{want}p frames at Bob")
        await wait_decoding(bob, lambda s: s["decoded"] >= state["decoded"] + 10, f"{want}p video going on", 5)
        await shot(bob, f"21-bob-gets-{want}p")

    # Alice shares her screen: one full-resolution stream (the lowest layer's SSRC), which the
    # bridge forwards to Bob although his tile asks for 360p (the upper layers went silent)
    await alice.click("#btn-screen")
    await until(lambda: slot.layer == 0, 10, "the bridge falling back to the only layer sent")
    full = await alice.evaluate("window.jitsiTest.state.screenTrack.getSettings().height")
    screen = await wait_decoding(bob, lambda s: s["height"] == full, f"the {full}p screen at Bob")
    await wait_decoding(bob, lambda s: s["decoded"] >= screen["decoded"] + 5, "the screen going on", 5)
    assert sender.bitrate(layers[1]) == 0 and sender.bitrate(layers[2]) == 0
    await shot(bob, "22-bob-sees-screen")
    # back to the camera: the layers up to what Bob watches again, Bob's tile gets its 360p
    await alice.click("#btn-screen")
    await until(lambda: slot.layer == 1, 20, "the bridge forwarding layer 1 again")
    state = await wait_decoding(bob, lambda s: s["height"] == 360, "360p camera frames at Bob again")
    await wait_decoding(bob, lambda s: s["decoded"] >= state["decoded"] + 10, "the camera going on", 5)
    assert alice.errors == [] and bob.errors == []  # type: ignore[attr-defined]


async def test_pinned_participant_goes_on_stage_past_last_n(tmp_path, browser):
    """last-N 1: Wendy's page gets one video, the bridge's pick. Clicking a tile pins that
    participant: the tile takes the stage, the others shrink to a filmstrip, and the bridge
    puts the pinned one in Wendy's only video slot whoever speaks. Clicking again unpins."""
    from conftest import until
    from jitsi_py.participant import Participant, TestPatternTrack, ToneTrack
    stack = await start_stack(tmp_path, bridge__last_n=1)
    host, port = stack.server.c2s_address
    bots = [Participant(host, port, "Stage", cafile=str(stack.cert_path), nick=nick, display_name=name,
                        audio=ToneTrack(), video=TestPatternTrack()) for nick, name in
            (("carlbot", "Carl Bot"), ("danabot", "Dana Bot"))]
    page = None
    try:
        await asyncio.gather(*(b.join() for b in bots))
        page = await open_room(browser, f"{base_url(stack)}/Stage", "Wendy Web", camera=False)
        await in_conference(page)
        nick = await page.evaluate("window.jitsiTest.conference.nick")
        conf = next(iter(stack.bridge.conferences.values()))
        await until(lambda: nick in conf.endpoints and conf.endpoints[nick].video_slots[0].owner, 15,
                    "Wendy's video slot filled")
        ep = conf.endpoints[nick]
        for bot, name in ((bots[0], "Carl Bot"), (bots[1], "Dana Bot")):
            await tile(page, name).click()
            await until(lambda: ep.pinned == (bot.nick,), 5, f"the bridge told {name} is on stage")
            assert ep.video_slots[0].owner == bot.nick
            await page.wait_for_selector(f'#grid.staged .tile.pinned[data-name="{name}"]', timeout=5_000)
            await wait_video(page, name)
            await until(lambda: ep.max_heights.get(bot.nick) == 720, 5, "the stage asking for 720p")
        await shot(page, "23-dana-on-stage")
        await tile(page, "Dana Bot").click()
        await until(lambda: ep.pinned == (), 5, "the pin lifted at the bridge")
        assert await page.locator(".tile.pinned").count() == 0
        assert not page.errors, page.errors
    finally:
        if page is not None:
            await page.context.close()  # before the stack, which would wait for its connections
        for b in bots:
            await b.leave()
        await stack.stop()


async def test_two_browsers_on_two_cascaded_bridges(tmp_path, browser):
    """One bridge per participant ([focus] max_bridge_participants = 1): Alice's page is on the
    stack's bridge, Bob's on a second bridge process, and each sees and hears the other through
    the relay (simulcast, transport-cc and the bridge channel as in any call)."""
    from conftest import BridgeProcess, until
    stack = await start_stack(tmp_path, focus__max_bridge_participants=1)
    jvb2 = await BridgeProcess(stack, tmp_path, "jvb2").start()
    pages = []
    try:
        url = f"{base_url(stack)}/Cascade"
        alice = await open_room(browser, url, "Alice Archer")
        pages.append(alice)
        await in_conference(alice)
        bob = await open_room(browser, url, "Bob Baker")
        pages.append(bob)
        await in_conference(bob)
        await wait_video(alice, "Bob Baker")
        await wait_video(bob, "Alice Archer")
        for page in (alice, bob):
            await wait_bytes_grow(page)
        conf = stack.focus.conferences["cascade@conference.localhost"]
        placed = {p.nick: p.bridge.rsplit("/", 1)[1] for p in conf.participants.values()}
        assert sorted(placed.values()) == ["jvb1", "jvb2"], placed
        bconf = next(iter(stack.bridge.conferences.values()))
        await until(lambda: "jvb2" in bconf.relays and bconf.relays["jvb2"].connected, 10, "the relay")
        relay = bconf.relays["jvb2"]
        await until(lambda: relay.transport.stats["packets_in"] > 100 and relay.transport.stats["packets_out"] > 100,
                    10, "media both ways over the relay")
        await shot(bob, "24-bob-on-jvb2-sees-alice")
        for page in pages:
            assert page.errors == [], page.errors  # type: ignore[attr-defined]
    finally:
        for page in pages:
            await page.context.close()
        await jvb2.kill()
        await stack.stop()


async def test_large_meeting_grid_scrolls_with_usable_tiles(tmp_path, browser):
    """30 others in the room (synthetic participants: real sign-in, Jingle, ICE/DTLS-SRTP): the
    page's tiles keep a usable size and the grid scrolls, instead of 31 postage stamps."""
    from conftest import until
    from loadgen.synthetic import SyntheticParticipant, prepare_room
    stack = await start_stack(tmp_path, limits__anonymous_sessions_per_minute=0, limits__connections_per_ip=1000)
    host, port = stack.server.c2s_address
    crowd = [SyntheticParticipant(host, port, "Crowd", cafile=str(stack.cert_path), nick=f"s{i:02d}",
                                  video_rate=5, speaking=i == 0) for i in range(30)]
    page = None
    try:
        await prepare_room(host, port, "Crowd", cafile=str(stack.cert_path))
        sem = asyncio.Semaphore(10)

        async def join(p) -> None:
            async with sem:
                await p.join(timeout=60)
        await asyncio.gather(*(join(p) for p in crowd))
        page = await open_room(browser, f"{base_url(stack)}/Crowd", "Wendy Web", camera=False)
        await in_conference(page)
        await page.wait_for_function("() => document.querySelectorAll('#grid .tile').length === 31", timeout=15_000)
        geometry = await page.evaluate("""() => {
            const g = document.getElementById('grid');
            const widths = [...g.querySelectorAll('.tile')].map((t) => t.getBoundingClientRect().width);
            return { min: Math.min(...widths), scrolls: g.classList.contains('scrolls'),
                     overflow: g.scrollHeight > g.clientHeight };
        }""")
        assert geometry["min"] >= 190 and geometry["scrolls"] and geometry["overflow"], geometry
        assert (await page.text_content("#participant-count")) == "31 people"
        await shot(page, "25-thirty-one-people")
        conf = next(iter(stack.bridge.conferences.values()))
        await until(lambda: len(conf.endpoints) == 31, 10, "everyone at the bridge")
        assert page.errors == [], page.errors  # type: ignore[attr-defined]
    finally:
        if page is not None:
            await page.context.close()
        await asyncio.gather(*(p.leave() for p in crowd), return_exceptions=True)
        await stack.stop()
