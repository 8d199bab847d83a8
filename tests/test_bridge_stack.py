"""The bridge inside the all-in-one stack: brewery presence, COLIBRI2 over the MUC, HTTP, channel."""
from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET

import aiohttp
import pytest
import slixmpp
from lxml import etree
from slixmpp import JID
from slixmpp.exceptions import IqError

from conftest import make_config
from jitsi_py.stack import Stack
from jitsi_protocols import colibri2

BREWERY = "jvbbrewery@internal.auth.localhost"
COLIBRI = "http://jitsi.org/protocol/colibri"


@pytest.fixture
async def stack(tmp_path):
    cfg = make_config(server__data_dir=str(tmp_path / "data"), bridge__endpoint_timeout=60.0)
    s = Stack(cfg)
    await s.start()
    yield s
    await s.stop()


async def focus_client(stack: Stack, clients) -> slixmpp.ClientXMPP:
    c = slixmpp.ClientXMPP("focus@auth.localhost/probe", stack.internal_passwords["focus"])
    import ssl
    c.ssl_context = ssl.create_default_context(cafile=str(stack.cert_path))
    c.enable_direct_tls = False
    for p in ("xep_0045", "xep_0030"):
        c.register_plugin(p)
    started = asyncio.get_running_loop().create_future()
    c.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    clients.all.append(c)
    c.connect(*stack.server.c2s_address)
    await asyncio.wait_for(started, 10)
    return c


async def colibri(client, req: colibri2.ConferenceModify) -> colibri2.ConferenceModified:
    iq = client.make_iq_set(ito=f"{BREWERY}/jvb1")
    iq.xml.append(ET.fromstring(etree.tostring(colibri2.modify_element(req))))
    res = await iq.send(timeout=10)
    el = res.xml.find("{jitsi:colibri2}conference-modified")
    return colibri2.parse_modified(etree.fromstring(ET.tostring(el)))


async def test_bridge_in_brewery_serves_colibri2_http_and_channel(stack, clients):
    focus = await focus_client(stack, clients)
    seen = asyncio.get_running_loop().create_future()

    def on_presence(p) -> None:
        stats = p.xml.find("{%s}stats" % COLIBRI)
        if p["from"].resource == "jvb1" and stats is not None and not seen.done():
            seen.set_result({s.get("name"): s.get("value") for s in stats})
    focus.add_event_handler("groupchat_presence", on_presence)
    await focus.plugin["xep_0045"].join_muc_wait(JID(BREWERY), "probe", timeout=10)
    stats = await asyncio.wait_for(seen, 10)
    assert stats["healthy"] == "true" and "stress_level" in stats

    # health check IQ and COLIBRI2 through the MUC relay
    hc = focus.make_iq_get(ito=f"{BREWERY}/jvb1")
    ET.SubElement(hc.xml, "{http://jitsi.org/protocol/healthcheck}healthcheck")
    await hc.send(timeout=10)
    res = await colibri(focus, colibri2.ConferenceModify(meeting_id="m1", name="r@conference.localhost", create=True,
                                                         endpoints=[colibri2.Endpoint(id="a", create=True),
                                                                    colibri2.Endpoint(id="b", create=True)]))
    by_id = {e.id: e for e in res.endpoints}
    assert by_id["a"].transport.candidates[0].ip == "127.0.0.1"
    # media ports from the default range (UDP 10000-20000), one per endpoint
    ports = [by_id[e].transport.candidates[0].port for e in ("a", "b")]
    assert all(10000 <= p <= 20000 for p in ports) and ports[0] != ports[1]
    assert by_id["a"].transport.fingerprints[0].setup == "actpass"
    assert len([s for s in by_id["a"].sources if s.kind == "video"]) == stack.cfg.bridge.last_n
    assert {s.name for s in res.feedback_sources} == {"jvb-a0", "jvb-v0"}
    ws_a, ws_b = by_id["a"].transport.websocket_url, by_id["b"].transport.websocket_url
    assert ws_a.startswith("ws://127.0.0.1:") and "/colibri-ws/jvb1/m1/a?pwd=" in ws_a

    # COLIBRI2 errors are IQ errors
    with pytest.raises(IqError) as exc:
        await colibri(focus, colibri2.ConferenceModify(meeting_id="nope", endpoints=[colibri2.Endpoint(id="x")]))
    assert exc.value.condition == "item-not-found"
    bad = focus.make_iq_set(ito=f"{BREWERY}/jvb1")
    bad.xml.append(ET.fromstring("<conference-modify xmlns='jitsi:colibri2'/>"))
    with pytest.raises(IqError) as exc:
        await bad.send(timeout=10)
    assert exc.value.condition == "bad-request"

    # HTTP: health on the public port; stats and metrics on the admin port
    host, port = stack.http_address
    admin = "http://%s:%d" % stack.admin_address
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{host}:{port}/about/health") as r:
            assert r.status == 200
        async with http.get(f"{admin}/colibri/stats") as r:
            body = await r.json()
            assert body["conferences"] == 1 and body["endpoints"] == 2
        async with http.get(f"{admin}/metrics") as r:
            text = await r.text()
            assert "jitsi_bridge_endpoints 2.0" in text
            assert "jitsi_bridge_relays 0.0" in text and "jitsi_bridge_padding_dropped_total 0.0" in text
        # the bridge channel: wrong password refused; hello, then relayed endpoint messages
        async with http.get(ws_a.replace("ws://", "http://").split("?")[0] + "?pwd=wrong") as r:
            assert r.status == 403
        a = await http.ws_connect(ws_a)
        b = await http.ws_connect(ws_b)
        hello = json.loads((await a.receive(timeout=5)).data)
        assert hello["colibriClass"] == "ServerHello"

        async def next_of(ws, cls: str) -> dict:
            while True:
                msg = json.loads((await ws.receive(timeout=5)).data)
                if msg.get("colibriClass") == cls:
                    return msg
        await a.send_str(json.dumps({"colibriClass": "EndpointMessage", "to": "b", "msgPayload": {"hi": 1}}))
        got = await next_of(b, "EndpointMessage")
        assert got["from"] == "a" and got["msgPayload"] == {"hi": 1}
        await a.send_str("not json")
        assert (await next_of(a, "Error"))["message"] == "not JSON"
        await a.close()
        await b.close()

    # the focus ends the conference
    await colibri(focus, colibri2.ConferenceModify(meeting_id="m1", expire=True))
    assert stack.bridge.conferences == {}


async def test_silent_endpoints_expire_and_the_focus_is_told(stack, clients):
    import time

    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath
    focus = await focus_client(stack, clients)
    await focus.plugin["xep_0045"].join_muc_wait(JID(BREWERY), "probe", timeout=10)
    told = asyncio.get_running_loop().create_future()

    def on_expire(iq) -> None:
        el = etree.fromstring(ET.tostring(iq.xml.find("{jitsi:colibri2}conference-modify")))
        told.done() or told.set_result((iq["from"], colibri2.parse_modify(el)))
        iq.reply(clear=True).send()
    focus.register_handler(Callback("expired", MatchXPath("{jabber:client}iq/{jitsi:colibri2}conference-modify"),
                                    on_expire))
    await colibri(focus, colibri2.ConferenceModify(meeting_id="m2", create=True,
                                                   endpoints=[colibri2.Endpoint(id="z", create=True)]))
    gone = stack.bridge.expire_silent(now=time.monotonic() + 10_000)
    assert [ep.id for ep in gone] == ["z"]
    frm, req = await asyncio.wait_for(told, 10)
    assert frm == JID(f"{BREWERY}/jvb1")
    assert req.meeting_id == "m2" and req.endpoints[0].id == "z" and req.endpoints[0].expire
