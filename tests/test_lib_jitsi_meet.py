"""The real Jitsi client library (lib-jitsi-meet, vendored beside the repo for tests only) against
our all-in-one stack, in real headless Chromium (issue 14).

The library is never served by our product: each page and the library are served by Playwright
itself (`page.route`) at a test-only path on the stack's own origin, so the page's Origin is the
one the BOSH/WebSocket origin check already allows and nothing of the library reaches our HTTP
server. The pages configure the library as the Jitsi Meet app does, with its SSRC-rewriting mode
on (`flags.ssrcRewritingEnabled`), the contract the focus and the bridge speak with such clients.

Assertions are on what a user sees and hears: frames decoded into each attached `<video>`
(`getVideoPlaybackQuality().totalVideoFrames` growing, a decoded size) and samples received for
each remote audio track (inbound-rtp `totalSamplesReceived` of the track's SSRC growing).
"""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from jitsi_py.stack import Stack
from test_webclient import stack  # noqa: F401  (the fixture: the stack the web client's tests use)

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = os.environ.get("JITSI_PY_CHROMIUM", "/usr/bin/chromium")
LIB = Path(__file__).resolve().parents[2] / "shared" / "vendor" / "lib-jitsi-meet" / "lib-jitsi-meet.min.js"
ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    # LocalNetworkAccessChecks: a page Playwright fulfils has no address space of its own, so
    # Chromium would count it public and block its WebSocket to 127.0.0.1
    "--disable-features=WebRtcHideLocalIpsWithMdns,LocalNetworkAccessChecks",
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
]
TEST_PATH = "/__ljm-test__/"
# console errors of gaps that do not stop a call: no XEP-0215 answer for TURN when the stack has
# no TURN server configured (as in these tests); and one the library logs now and then in its
# renegotiation (seen once in about ten runs of the three-page test, under load, with media
# flowing on every page: issue 14's negotiationneeded churn, not understood yet)
KNOWN_ERRORS = ("extdisco", "reading 'payloads'")

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.skipif(not LIB.exists(), reason=f"lib-jitsi-meet is not vendored at {LIB} (see issue 14)"),
]

# The page: the library configured as the Jitsi Meet app does for our stack. window.ljm.join()
# connects, joins, sends camera and mic; every remote track is attached to its own element and
# kept in window.ljm.remote (by track id) with its owner and SSRC, for the assertions.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>lib-jitsi-meet test page</title>
<script src="lib-jitsi-meet.min.js"></script></head>
<body><div id="media"></div>
<script>
(() => {
  const JM = window.JitsiMeetJS;
  JM.init({});
  JM.setLogLevel(JM.logLevels.WARN);
  const ljm = window.ljm = {remote: {}, events: [], conference: null, connection: null, local: []};
  const E = JM.events;

  function describe(track) {
    return {owner: track.getParticipantId(), type: track.getType(), ssrc: track.getSsrc(),
            source: track.getSourceName ? track.getSourceName() : null};
  }

  // rewriting: false makes it a client of the library's older contract (no ssrc-rewriting-1)
  ljm.join = (room, serviceUrl, nick, rewriting = true) => new Promise((resolve, reject) => {
    const options = {
      hosts: {domain: 'localhost', muc: 'conference.localhost', focus: 'focus.localhost'},
      serviceUrl, focusUserJid: 'focus@auth.localhost',
      flags: {ssrcRewritingEnabled: rewriting},  // the connection's options carry the feature flags
    };
    const connection = ljm.connection = new JM.JitsiConnection(null, null, options);
    connection.addEventListener(E.connection.CONNECTION_FAILED, (e) => reject(new Error('connection failed: ' + e)));
    connection.addEventListener(E.connection.CONNECTION_ESTABLISHED, async () => {
      try {
        const conf = ljm.conference = connection.initJitsiConference(room, {
          p2p: {enabled: false},
          // our bridge forwards VP8 only: without this the library picks AV1/VP9 modes for its
          // encoder, which a VP8 sender refuses (setParameters: unsupported scalabilityMode)
          videoQuality: {codecPreferenceOrder: ['VP8']},
        });
        conf.on(E.conference.TRACK_ADDED, (track) => {
          if (track.isLocal()) return;
          const el = document.createElement(track.getType() === 'video' ? 'video' : 'audio');
          el.autoplay = true; el.muted = track.getType() === 'audio' ? false : true;
          el.id = 'el-' + track.getId();
          document.getElementById('media').appendChild(el);
          track.attach(el);
          ljm.remote[track.getId()] = {el, track};
          ljm.events.push(['added', describe(track)]);
        });
        conf.on(E.conference.TRACK_REMOVED, (track) => {
          if (track.isLocal()) return;
          const r = ljm.remote[track.getId()];
          if (r) { track.detach(r.el); r.el.remove(); delete ljm.remote[track.getId()]; }
          ljm.events.push(['removed', describe(track)]);
        });
        conf.on(E.conference.CONFERENCE_FAILED, (...args) => {
          ljm.events.push(['failed', args.map(String)]);
          reject(new Error('conference failed: ' + args.join(' ')));
        });
        conf.on(E.conference.CONFERENCE_JOINED, () => resolve(conf.myUserId()));
        if (nick) conf.setDisplayName(nick);
        const tracks = ljm.local = await JM.createLocalTracks({devices: ['audio', 'video']});
        for (const t of tracks) await conf.addTrack(t);
        conf.join();
      } catch (e) { reject(e); }
    });
    connection.connect();
  });

  // per remote track: owner, kind, SSRC, and what was decoded/received so far
  ljm.snapshot = async () => {
    const pc = ljm.conference && ljm.conference.jvbJingleSession && ljm.conference.jvbJingleSession.peerconnection;
    const inbound = {};
    if (pc) {
      const stats = await pc.peerconnection.getStats();
      stats.forEach((s) => { if (s.type === 'inbound-rtp') inbound[s.ssrc] = s; });
    }
    const out = [];
    for (const [id, {el, track}] of Object.entries(ljm.remote)) {
      const d = describe(track);
      const s = inbound[d.ssrc] || {};
      if (d.type === 'video') {
        const q = el.getVideoPlaybackQuality();
        out.push({...d, id, frames: q.totalVideoFrames, width: el.videoWidth, height: el.videoHeight,
                  time: el.currentTime});
      } else {
        out.push({...d, id, samples: s.totalSamplesReceived || 0, level: s.audioLevel || 0});
      }
    }
    return out;
  };

  ljm.leave = async () => {
    await ljm.conference.leave();
    ljm.connection.disconnect();
  };
})();
</script></body></html>
"""


@pytest.fixture
async def browser():
    async with playwright_api.async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        await b.close()


def origin(stack: Stack) -> str:
    host, port = stack.http_address
    return f"http://{host}:{port}"


async def serve_test_files(route) -> None:
    """Playwright answers the test path itself: the page and the vendored library."""
    name = route.request.url.split(TEST_PATH, 1)[1].split("?", 1)[0]
    if name == "lib-jitsi-meet.min.js":
        await route.fulfill(status=200, content_type="application/javascript", body=LIB.read_bytes())
    elif name == "index.html":
        await route.fulfill(status=200, content_type="text/html", body=PAGE)
    else:
        await route.fulfill(status=404, body="not a test file")


async def open_page(browser, stack: Stack):
    ctx = await browser.new_context()
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # the library logs what goes wrong (a track it could not create, a failed renegotiation) as
    # console errors; the known gaps of issue 14 that do not stop a call are let through
    page.on("console", lambda m: m.type == "error" and not any(k in m.text for k in KNOWN_ERRORS)
            and errors.append(m.text))
    page.errors = errors  # type: ignore[attr-defined]
    if os.environ.get("LJM_CONSOLE"):
        page.on("console", lambda m: print("PAGE", m.type, m.text[:500]))
    await page.route(f"{origin(stack)}{TEST_PATH}**", serve_test_files)
    await page.goto(f"{origin(stack)}{TEST_PATH}index.html")
    return page


async def join(page, stack: Stack, room: str, nick: str, transport: str = "websocket") -> str:
    host, port = stack.http_address
    url = f"ws://{host}:{port}/xmpp-websocket" if transport == "websocket" else f"http://{host}:{port}/http-bind"
    endpoint = await asyncio.wait_for(page.evaluate("([r, u, n]) => window.ljm.join(r, u, n)", [room, url, nick]), 20)
    assert isinstance(endpoint, str) and endpoint
    return endpoint


async def sees_and_hears(page, others: list[str], timeout: float = 20.0) -> list[dict]:
    """Wait until, for every endpoint in `others`, this page has a video track of theirs whose
    element decodes frames (count growing, a size) and an audio track whose samples grow."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    first: dict[str, dict] = {}
    snap: list[dict] = []
    while True:
        snap = await page.evaluate("window.ljm.snapshot()")
        ok = set()
        for t in snap:
            prev = first.setdefault(t["id"], t)
            if t["type"] == "video" and t["frames"] > prev["frames"] + 5 and t["width"] > 0:
                ok.add((t["owner"], "video"))
            if t["type"] == "audio" and t["samples"] > prev["samples"] + 4800:
                ok.add((t["owner"], "audio"))
        if all((o, k) in ok for o in others for k in ("audio", "video")):
            return snap
        if loop.time() > deadline:
            raise AssertionError(f"does not see and hear {others}: {json.dumps(snap)}\n"
                                 f"events: {await page.evaluate('window.ljm.events')}")
        await asyncio.sleep(0.2)


async def test_two_pages_see_and_hear_each_other(stack, browser):
    a, b = await open_page(browser, stack), await open_page(browser, stack)
    ea = await join(a, stack, "ljmtwo", "Ann")
    eb = await join(b, stack, "ljmtwo", "Ben")
    await sees_and_hears(a, [eb])
    await sees_and_hears(b, [ea])
    # the library sends its camera in simulcast layers, which the bridge forwards one at a time
    conf = next(iter(stack.bridge.conferences.values()))
    for e in (ea, eb):
        assert [len(layers) for layers in conf.endpoints[e].simulcast.values()] == [3]
    # each remote track is the sender's own source, named as Jitsi names it
    for page, other in ((a, eb), (b, ea)):
        tracks = await page.evaluate("window.ljm.snapshot()")
        assert {(t["owner"], t["type"], t["source"]) for t in tracks} == {
            (other, "audio", f"{other}-a0"), (other, "video", f"{other}-v0")}
    assert a.errors == [] and b.errors == []  # type: ignore[attr-defined]


async def test_three_pages_one_late_and_one_over_bosh(stack, browser):
    """Two pages in a call, then a third joins late over BOSH: everyone sees and hears everyone
    (the late one gets the others from source maps only; the others get it the same way)."""
    a, b, c = [await open_page(browser, stack) for _ in range(3)]
    ea = await join(a, stack, "ljmthree", "Ann")
    eb = await join(b, stack, "ljmthree", "Ben")
    await sees_and_hears(a, [eb])
    ec = await join(c, stack, "ljmthree", "Cy", transport="bosh")
    await sees_and_hears(c, [ea, eb])
    await sees_and_hears(a, [eb, ec])
    await sees_and_hears(b, [ea, ec])
    assert a.errors == [] and b.errors == [] and c.errors == []  # type: ignore[attr-defined]


async def test_page_leaves_and_a_new_one_takes_its_place(stack, browser):
    """A page leaves: its tracks go away on the others. The next one to join gets the slots it
    left (a source map gives them a new owner) and is seen and heard."""
    a, b = await open_page(browser, stack), await open_page(browser, stack)
    ea = await join(a, stack, "ljmleave", "Ann")
    eb = await join(b, stack, "ljmleave", "Ben")
    await sees_and_hears(a, [eb])
    await b.evaluate("window.ljm.leave()")
    await a.wait_for_function(
        "(e) => Object.values(window.ljm.remote).every(({track}) => track.getParticipantId() !== e)"
        " && window.ljm.events.some(([what, t]) => what === 'removed' && t.owner === e)", arg=eb, timeout=10_000)
    c = await open_page(browser, stack)
    ec = await join(c, stack, "ljmleave", "Cy")
    await sees_and_hears(a, [ec])
    await sees_and_hears(c, [ea])
    assert {t["owner"] for t in await a.evaluate("window.ljm.snapshot()")} == {ec}
    assert a.errors == [] and c.errors == []  # type: ignore[attr-defined]


async def test_page_and_python_participant(stack, browser):
    """A library page (Jitsi's contract) and a Python participant (slots in its offer) in one
    call: each decodes the other's audio and video."""
    from jitsi_py.participant import Participant, TestPatternTrack, ToneTrack
    a = await open_page(browser, stack)
    ea = await join(a, stack, "ljmpy", "Ann")
    host, port = stack.server.c2s_address
    py = Participant(host, port, "ljmpy", cafile=str(stack.cert_path), nick="pybot", display_name="Py Bot",
                     audio=ToneTrack(), video=TestPatternTrack())
    await py.join()
    try:
        await sees_and_hears(a, ["pybot"])
        await py.wait_frames(ea, "video", timeout=20)
        await py.wait_frames(ea, "audio", timeout=20)
    finally:
        await py.leave()
    assert a.errors == []  # type: ignore[attr-defined]


async def test_page_and_our_web_client(stack, browser):
    """A library page and a page of our own web client in one call see and hear each other."""
    from test_webclient import in_conference, open_room, wait_bytes_grow, wait_video
    a = await open_page(browser, stack)
    ea = await join(a, stack, "ljmweb", "Ann Library")
    web = await open_room(browser, f"{origin(stack)}/ljmweb", "Wendy Web")
    await in_conference(web)
    web_nick = await web.evaluate("window.jitsiTest.conference.nick")
    await sees_and_hears(a, [web_nick])
    await wait_video(web, "Ann Library")
    await wait_bytes_grow(web)
    # mute state crosses both ways: the library sends it only in SourceInfo, our client now too
    await a.evaluate("window.ljm.local.find((t) => t.getType() === 'audio').mute()")
    await web.wait_for_selector('.tile.audio-muted[data-name="Ann Library"]', timeout=10_000)
    await web.click("#btn-mic")
    await a.wait_for_function(
        "(n) => Object.values(window.ljm.remote).some(({track}) => track.getParticipantId() === n"
        " && track.getType() === 'audio' && track.isMuted())", arg=web_nick, timeout=10_000)
    assert ea
    assert a.errors == [] and web.errors == []  # type: ignore[attr-defined]


async def test_page_without_ssrc_rewriting_gets_a_clear_error(stack, browser):
    """A library page in its older mode (no `ssrc-rewriting-1` in its caps) would bind remote
    tracks to SSRCs our bridge never sends it: instead of black tiles, its conference fails with
    the focus's reason, and it gets no media session."""
    from jicofo_py.conference import UNSUPPORTED_CLIENT
    a, b = await open_page(browser, stack), await open_page(browser, stack)
    ea = await join(a, stack, "ljmold", "Ann")
    host, port = stack.http_address
    with pytest.raises(Exception) as failed:
        await asyncio.wait_for(b.evaluate("([r, u, n]) => window.ljm.join(r, u, n, false)",
                                          [room := "ljmold", f"ws://{host}:{port}/xmpp-websocket", "Old"]), 20)
    assert "conference.reservationError" in str(failed.value) and "needs SSRC rewriting" in str(failed.value)
    events = await b.evaluate("window.ljm.events")
    assert ["failed", ["conference.reservationError", "400", UNSUPPORTED_CLIENT]] in events
    assert await b.evaluate("!window.ljm.conference.jvbJingleSession")
    # it never got into the room (nobody sees a tile of it), and the bridge holds nothing of it
    room_jid = f"{room}@conference.localhost"
    assert set(stack.focus.conferences[room_jid].participants) == {ea}
    assert all(set(c.endpoints) <= {ea} for c in stack.bridge.conferences.values())
    assert await a.evaluate("Object.keys(window.ljm.remote).length") == 0
    assert a.errors == []  # type: ignore[attr-defined]
    assert room


async def test_page_reads_python_participants_source_info(stack, browser):
    """The Python participant tells its mute state and video type per source in `<SourceInfo>`,
    where the library reads them: with no microphone, its audio source shows muted, its camera
    unmuted and of type camera (and the camera is seen)."""
    from jitsi_py.participant import Participant, TestPatternTrack
    a = await open_page(browser, stack)
    ea = await join(a, stack, "ljmpyinfo", "Ann")
    host, port = stack.server.c2s_address
    py = Participant(host, port, "ljmpyinfo", cafile=str(stack.cert_path), nick="pybot", display_name="Py Bot",
                     audio=None, video=TestPatternTrack())
    await py.join()
    try:
        info = "([o, s]) => window.ljm.conference._signalingLayer.getPeerSourceInfo(o, s)"
        await a.wait_for_function(f"(args) => ({info})(args) && ({info})(args).muted === true",
                                  arg=["pybot", "pybot-a0"], timeout=10_000)
        await a.wait_for_function(f"(args) => ({info})(args) && ({info})(args).muted === false",
                                  arg=["pybot", "pybot-v0"], timeout=10_000)
        assert (await a.evaluate(info, ["pybot", "pybot-v0"]))["videoType"] == "camera"
        await a.wait_for_function(
            "() => Object.values(window.ljm.remote).some(({el, track}) => track.getParticipantId() === 'pybot'"
            " && track.getType() === 'video' && !track.isMuted() && track.getVideoType() === 'camera'"
            " && el.getVideoPlaybackQuality().totalVideoFrames > 5 && el.videoWidth > 0)", timeout=20_000)
        await py.wait_frames(ea, "video", timeout=20)
    finally:
        await py.leave()
    assert a.errors == []  # type: ignore[attr-defined]
