"""Stats and metrics live on the admin port; the public port, which every guest reaches, answers
only a bare health check for them and never shows a conference's name, meeting id or people."""
from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from conftest import BridgeProcess, make_config
from jitsi_base.process import warn_if_exposed
from jitsi_py.stack import Stack
from jitsi_protocols import colibri2

ROOM = "secretroom@conference.localhost"
MEETING = "meeting-4711-secret"
ENDPOINT = "alice-ep-secret"
NICK = "Alice Secret"


@pytest.fixture
async def stack(tmp_path):
    s = Stack(make_config(server__data_dir=str(tmp_path / "data"), focus__enabled=False))
    await s.start()
    yield s
    await s.stop()


async def a_conference(stack: Stack) -> None:
    await stack.bridge.handle(colibri2.ConferenceModify(
        meeting_id=MEETING, name=ROOM, create=True,
        endpoints=[colibri2.Endpoint(id=ENDPOINT, create=True, stats_id=NICK)]))


async def test_stats_and_metrics_answer_on_the_admin_port(stack):
    await a_conference(stack)
    admin = "http://%s:%d" % stack.admin_address
    assert stack.admin_address[0] == "127.0.0.1" and stack.admin_address != stack.http_address
    assert any(line.startswith("Admin HTTP (keep private): " + admin + "/") for line in stack.listening())
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{admin}/colibri/stats?conferences=true&endpoints=true") as r:
            body = await r.json()
        assert body["conferences"] == 1 and body["endpoints"] == 1
        (conf,) = body["conference_list"]
        assert (conf["name"], conf["meeting_id"]) == (ROOM, MEETING)
        assert [(ep["id"], ep["stats_id"]) for ep in conf["endpoint_list"]] == [(ENDPOINT, NICK)]
        async with http.get(f"{admin}/metrics") as r:
            text = await r.text()
        assert "jitsi_bridge_conferences 1.0" in text and "jitsi_bridge_endpoints 1.0" in text
        async with http.get(f"{admin}/about/health") as r:
            assert r.status == 200 and await r.json() == {"healthy": True}
        async with http.get(f"{admin}/about/version") as r:
            assert (await r.json())["name"] == "jitsi-py bridge"
        async with http.get(f"{admin}/xmpp/stats") as r:
            figures = await r.json()
        assert figures["sessions"] >= 1  # the bridge's own XMPP session
        assert figures["rooms"]["conference.localhost"] == 0


PUBLIC_PROBES = [
    "/colibri/stats", "/colibri/stats?conferences=true&endpoints=true", "/metrics", "/about/version",
    "/xmpp/stats", "/colibri/stats/", "/COLIBRI/STATS", "/Metrics", "/colibri//stats", "/colibri/%73tats",
    "/%63olibri/stats", "/about/../colibri/stats", "/static/../colibri/stats", "/static/%2e%2e/colibri/stats",
    "/colibri/stats;conferences=true", "/colibri/conferences", "/colibri/conferences/" + MEETING,
    "/colibri/stats?conference=" + MEETING, "/metrics?name=secretroom", f"/colibri-ws/jvb1/{MEETING}/x",
    f"/colibri-ws/jvb1/{MEETING}/{ENDPOINT}?pwd=guess",
]


async def test_public_port_never_shows_conference_data(stack):
    await a_conference(stack)
    public = "http://%s:%d" % stack.http_address
    admin_host = "%s:%d" % stack.admin_address
    secrets = {ROOM, "secretroom", MEETING, ENDPOINT, NICK}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{public}/about/health?conferences=true&endpoints=true") as r:
            assert r.status == 200 and await r.json() == {"healthy": True}  # bare: no counts
        for path in PUBLIC_PROBES:
            async with http.get(public + path) as r:
                text = await r.text()
            assert r.status in (403, 404), (path, r.status)
            # nothing the request did not name itself comes back
            assert not [s for s in secrets if s in text and s not in path], (path, text[:300])
            if path.split("?")[0].rstrip("/").lower() in ("/colibri/stats", "/metrics", "/about/version",
                                                           "/xmpp/stats"):
                assert r.status == 404, path
        # the admin port named in Host does not make the public port serve admin routes
        async with http.get(f"{public}/colibri/stats?conferences=true", headers={"Host": admin_host}) as r:
            assert r.status == 404 and MEETING not in await r.text()
    # nor does an absolute-form request target naming the admin port (a proxy-style request)
    reader, writer = await asyncio.open_connection(*stack.http_address)
    writer.write(f"GET http://{admin_host}/colibri/stats?conferences=true HTTP/1.1\r\nHost: {admin_host}\r\n"
                 "Connection: close\r\n\r\n".encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 404") and MEETING.encode() not in answer, answer[:300]


async def test_admin_listener_can_be_switched_off(tmp_path):
    s = Stack(make_config(server__data_dir=str(tmp_path / "data"), focus__enabled=False, bridge__enabled=False,
                          admin__enabled=False))
    await s.start()
    try:
        assert s.admin_address is None and s.http_address is not None
        assert not any(line.startswith("Admin HTTP") for line in s.listening())
    finally:
        await s.stop()


def test_a_non_loopback_admin_address_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="jitsi_base.process"):
        for host in ("127.0.0.1", "::1", "localhost"):
            warn_if_exposed("The admin HTTP port", host)
        assert not caplog.records
        warn_if_exposed("The admin HTTP port", "0.0.0.0")
    (record,) = caplog.records
    assert "0.0.0.0" in record.getMessage() and "firewall" in record.getMessage()


async def test_separate_bridge_has_a_public_and_an_admin_port(tmp_path):
    stack = Stack(make_config(server__data_dir=str(tmp_path / "data"), bridge__enabled=False))
    await stack.start()
    jvb2 = BridgeProcess(stack, tmp_path, "jvb2")
    try:
        await jvb2.start()
        assert jvb2.http_base != jvb2.admin_base
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{jvb2.admin_base}/colibri/stats?conferences=true") as r:
                assert r.status == 200 and (await r.json())["conference_list"] == []
            async with http.get(f"{jvb2.admin_base}/metrics") as r:
                assert "jitsi_bridge_endpoints 0.0" in await r.text()
            async with http.get(f"{jvb2.http_base}/about/health") as r:
                assert r.status == 200 and await r.json() == {"healthy": True}
            for path in ("/colibri/stats", "/metrics", "/about/version"):
                async with http.get(jvb2.http_base + path) as r:
                    assert r.status == 404, path
    finally:
        await jvb2.kill()
        await stack.stop()
