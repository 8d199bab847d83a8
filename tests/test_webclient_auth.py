"""The web client in real Chromium with `[auth] mode` "secure" and "token" (issue 15): a guest
waits for the host and gets in by itself, "I am the host" signs in (a wrong password is said
in the dialog), the token comes from the page URL, and a bad token is explained."""
from __future__ import annotations

import asyncio

import pytest

from test_auth_modes import SECRET, participant, token
from test_webclient import CHROMIUM, base_url, browser, in_conference, open_room, shot, start_stack  # noqa: F401

pytestmark = pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}")


async def test_secure_guest_waits_then_the_host_signs_in_from_the_dialog(tmp_path, browser):  # noqa: F811
    stack = await start_stack(tmp_path, auth__mode="secure")
    stack.users.add("alice", "localhost", "wonderland")
    try:
        base = base_url(stack)
        # a guest of a meeting nobody opened waits, and gets in by itself when a host comes
        guest = await open_room(browser, f"{base}/Standup", "Gina")
        await guest.wait_for_selector("#waiting-host:not([hidden])", timeout=15_000)
        assert "Waiting for the host" in await guest.text_content("#waiting-host-text")
        await shot(guest, "auth-1-waiting-for-host")
        host = participant(stack, "standup", "host", user="alice", password="wonderland")
        try:
            await host.join(timeout=30)
            await in_conference(guest, timeout=15_000)
        finally:
            await host.leave()

        # "I am the host": a wrong password is said in the dialog, the right one opens the meeting
        page = await open_room(browser, f"{base}/Board", "Alice")
        await page.wait_for_selector("#waiting-host:not([hidden])", timeout=15_000)
        await page.click("#host-sign-in")
        await page.fill("#host-user", "alice")
        await page.fill("#host-password", "wrong")
        await page.click("#host-login-submit")
        await page.wait_for_selector("#host-login-error:not([hidden])", timeout=15_000)
        assert await page.text_content("#host-login-error") == "Wrong user name or password."
        await shot(page, "auth-2-wrong-password")
        await page.fill("#host-password", "wonderland")
        await page.click("#host-login-submit")
        await in_conference(page, timeout=15_000)
        jid = await page.evaluate("window.jitsiTest.conference.xmpp.jid")
        assert jid.startswith("alice@localhost/")
        assert page.errors == [] and guest.errors == []
    finally:
        await stack.stop()


async def test_token_from_the_url_and_bad_tokens_explained(tmp_path, browser):  # noqa: F811
    stack = await start_stack(tmp_path, auth__mode="token", auth__jwt_secret=SECRET, auth__jwt_audience="jitsi")
    try:
        base = base_url(stack)
        page = await open_room(browser, f"{base}/Class?jwt={token('class', name='Tess', moderator=True)}", "Tess")
        await in_conference(page, timeout=15_000)
        room = stack.server.plugins[-1].service.rooms["class"]
        assert [room.affiliation(o.jid.bare) for o in room.occupants.values() if o.nick != "focus"] == ["owner"]
        for bad, title, words in (
                (token("class", exp=-60), "Your meeting link is not valid", "expired"),
                (token("class", key="another-secret-another-secret-xx"), "Your meeting link is not valid",
                 "signature is wrong"),
                (token("another"), "You cannot join this meeting", "Your token is for room 'another', not 'class'")):
            bad_page = await open_room(browser, f"{base}/Class?jwt={bad}", "Mallory")
            await bad_page.wait_for_selector("#ended:not([hidden])", timeout=15_000)
            assert await bad_page.text_content("#ended-title") == title
            assert words in await bad_page.text_content("#ended-message")
        await shot(bad_page, "auth-3-token-for-another-room")
        assert page.errors == []
    finally:
        await stack.stop()
