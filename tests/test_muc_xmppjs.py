"""A client we did not write (xmpp.js under node, over WebSocket) in a room with slixmpp clients.

One library's habits can hide a server's mistakes from tests written with it; xmpp.js parses
our WebSocket framing, SASL and MUC presence independently.
"""
from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from slixmpp import JID

JS = Path(__file__).parent / "js"


class NodeClient:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: list[dict] = []

    @classmethod
    async def start(cls, ws_url: str, room: str, nick: str) -> "NodeClient":
        proc = await asyncio.create_subprocess_exec(
            "node", str(JS / "muc_client.mjs"), ws_url, "localhost", room, nick, cwd=JS,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    async def expect(self, match, timeout: float = 10.0) -> dict:
        async def read() -> dict:
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    err = (await self.proc.stderr.read()).decode()
                    raise AssertionError(f"node client exited; seen {self.seen}; stderr {err[-1500:]}")
                event = json.loads(line)
                self.seen.append(event)
                if event.get("event") == "error":
                    raise AssertionError(f"node client error: {event}")
                if match(event):
                    return event
        return await asyncio.wait_for(read(), timeout)

    async def command(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture(scope="session")
def node_available():
    """node plus xmpp.js from the npm registry, installed on first use from the lock file."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the xmpp.js client (.ci/run installs them)")
    if not (JS / "node_modules" / "@xmpp" / "client").exists():
        import subprocess
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"npm ci failed: {done.stderr[-2000:]}"


async def test_xmppjs_joins_chats_and_leaves(node_available, xmpp_server, http_front, clients):
    srv = await xmpp_server()
    base = await http_front(srv)
    srv.users.add("focus", "auth.localhost", "pw")
    focus = await clients.connect(srv, "focus@auth.localhost/focus", "pw", plugins=("xep_0045",))
    room = "jsroom@conference.localhost"
    await focus.plugin["xep_0045"].join_muc_wait(JID(room), "focus", timeout=5)
    loop = asyncio.get_running_loop()
    js_joined, js_said, js_left = loop.create_future(), loop.create_future(), loop.create_future()

    def on_presence(p) -> None:
        if p["from"].resource != "jsnick":
            return
        fut = js_left if p["type"] == "unavailable" else js_joined
        fut.done() or fut.set_result(p)
    focus.add_event_handler("groupchat_presence", on_presence)
    focus.add_event_handler("groupchat_message",
                            lambda m: m["from"].resource == "jsnick" and not js_said.done() and js_said.set_result(m))
    node = await NodeClient.start(base.replace("http", "ws") + "/xmpp-websocket", room, "jsnick")
    try:
        online = await node.expect(lambda e: e["event"] == "online")
        assert online["jid"].endswith("@localhost/") is False and "@localhost/" in online["jid"]
        own = await node.expect(lambda e: e["event"] == "presence" and 110 in e["codes"])
        assert own["from"] == f"{room}/jsnick" and own["role"] == "participant"
        focus_seen = [e for e in node.seen if e["event"] == "presence" and e["from"] == f"{room}/focus"]
        assert focus_seen and focus_seen[0]["jid"] == focus.boundjid.full  # real JIDs in conferences
        await node.expect(lambda e: e["event"] == "message" and e["subject"] is not None)  # end of the join
        joined = await asyncio.wait_for(js_joined, 5)
        assert joined.xml.findtext("{http://jabber.org/protocol/nick}nick") == "display jsnick"
        # slixmpp -> xmpp.js and back
        focus.send_message(mto=room, mbody="hello node", mtype="groupchat")
        got = await node.expect(lambda e: e["event"] == "message" and e["body"] == "hello node")
        assert got["from"] == f"{room}/focus" and got["type"] == "groupchat"
        await node.command("say hello python")
        msg = await asyncio.wait_for(js_said, 5)
        assert msg["body"] == "hello python"
        await node.command("leave")
        await node.expect(lambda e: e["event"] == "stopped")
        await asyncio.wait_for(js_left, 5)
        assert set(srv.plugins[-1].service.rooms["jsroom"].occupants) == {"focus"}
    finally:
        await node.close()
