"""Participants that come back after the server restarts, and that take Jingle from nobody but
the real focus: the all-in-one stack on loopback, restarted on the same ports and data
directory, with Python participants and a `jitsi-py join` process in the call."""
from __future__ import annotations

import asyncio
import re
import ssl
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import slixmpp
from slixmpp.exceptions import IqError

from calls import participant, receives_from
from conftest import make_config
from jitsi_py.config import Config
from jitsi_py.participant.client import Participant, ParticipantError
from jitsi_py.stack import Stack
from jitsi_protocols import jingle
from jitsi_protocols.jingle import JingleAction
from jitsi_protocols.model import Content, IceTransport

BACK_WITHIN = 15.0  # s from the new stack being up to media from each other again
ROOT = Path(__file__).resolve().parent.parent


def _pinned(stack: Stack, data: Path) -> Config:
    """A config on the ports `stack` got (it was started on port 0): a restart listens there again."""
    assert stack.server is not None and stack.server.c2s_address and stack.server.component_address
    assert stack.http_address is not None
    cfg = make_config(server__data_dir=str(data))
    cfg.c2s.port = stack.server.c2s_address[1]
    cfg.components.port = stack.server.component_address[1]
    cfg.http.port = stack.http_address[1]
    return cfg


@pytest.fixture
async def stacks(tmp_path):
    """Starts stacks on demand (`await stacks.start()`), stops whatever is still running at the end."""
    class Stacks:
        current: Stack | None = None
        data = tmp_path / "data"

        async def start(self, cfg: Config | None = None) -> Stack:
            s = Stack(cfg or make_config(server__data_dir=str(tmp_path / "data")))
            await s.start()
            self.current = s
            return s

        async def restart(self) -> Stack:
            old = self.current
            assert old is not None
            cfg = _pinned(old, tmp_path / "data")
            await old.stop()
            self.current = None
            return await self.start(cfg)

        async def stop(self) -> None:
            if self.current is not None:
                await self.current.stop()
                self.current = None

    holder = Stacks()
    yield holder
    if holder.current is not None:
        await holder.current.stop()


async def test_two_participants_are_back_with_media_after_a_restart(stacks):
    stack = await stacks.start()
    a, b = participant(stack, "phoenix", "ann00001"), participant(stack, "phoenix", "bob00002")
    events: list[str] = []
    a.add_listener(lambda e: events.append(e.type))
    try:
        await asyncio.gather(a.join(), b.join())
        await receives_from(a, b)
        await receives_from(b, a)
        assert a.reconnects == 0

        stack = await stacks.restart()
        loop = asyncio.get_running_loop()
        up = loop.time()
        async with asyncio.timeout(BACK_WITHIN):
            await asyncio.gather(a.wait_session(), b.wait_session())
            await asyncio.gather(receives_from(a, b), receives_from(b, a))
        took = loop.time() - up
        assert a.reconnects == 1 and b.reconnects == 1
        assert (a.nick, b.nick) == ("ann00001", "bob00002")  # the same nicks: the old ones were gone
        assert "reconnecting" in events and "reconnected" in events and "disconnected" not in events
        assert a.occupants.get("bob00002") == "Bob00002"  # display name back too
        assert took < BACK_WITHIN
    finally:
        await asyncio.gather(a.leave(), b.leave())


async def test_reconnecting_gives_up_after_reconnect_timeout(stacks):
    stack = await stacks.start()
    a, b = participant(stack, "ashes", "aaa00001"), participant(stack, "ashes", "bbb00002")
    a.reconnect_timeout = 1.5
    lost: list[str] = []
    a.add_listener(lambda e: e.type == "disconnected" and lost.append(e.text))
    try:
        await asyncio.gather(a.join(), b.join())
        await stacks.stop()  # and no new one
        with pytest.raises(ParticipantError, match=r"not restored within 1\.5 s"):
            await a.wait_source_add("nobody", timeout=10)
        assert a.reconnects == 0 and not a.reconnecting
        assert lost and "not restored" in lost[0]
    finally:
        await asyncio.gather(a.leave(), b.leave())


async def test_jitsi_py_join_comes_back_after_a_restart(stacks, tmp_path):
    stack = await stacks.start()
    host, port = stack.server.c2s_address
    a = participant(stack, "cli-room", "ann00001")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jitsi_py", "join", "cli-room", "--server", f"{host}:{port}", "--cafile",
        str(stack.cert_path), "--nick", "cli00001", "--name", "Cli", "--test-pattern", "--timeout", "30",
        cwd=str(ROOT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lines: list[str] = []
    seen = asyncio.Event()

    async def read() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            lines.append(raw.decode().rstrip("\n"))
            seen.set()

    async def line(pattern: str, timeout: float) -> str:
        async with asyncio.timeout(timeout):
            while True:
                hit = next((x for x in lines if re.search(pattern, x)), None)
                if hit is not None:
                    return hit
                seen.clear()
                await seen.wait()

    reader = asyncio.ensure_future(read())
    try:
        await a.join()
        await line(r"^in the conference cli-room@conference\.localhost as cli00001", 30)
        await a.wait_frames("cli00001", "video", 3, timeout=20)
        await a.wait_frames("cli00001", "audio", 3, timeout=20)

        await stacks.restart()
        async with asyncio.timeout(BACK_WITHIN):  # from the new stack being up
            await a.wait_frames("cli00001", "video", 3, timeout=BACK_WITHIN)
            await a.wait_frames("cli00001", "audio", 3, timeout=BACK_WITHIN)
        assert a.reconnects == 1
        await line(r"^lost the connection to the server \(.*\); reconnecting$", 5)
        await line(r"^reconnected: back in cli-room@conference\.localhost as cli00001$", 5)
        assert proc.returncode is None  # still in the call
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        await asyncio.wait_for(reader, 5)
        assert lines[-1] == "left the conference"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader.cancel()
        await a.leave()


# ---- Jingle from anyone but the focus -----------------------------------------------------------
class Hostile:
    """A guest with a plain slixmpp client: joins rooms under any nick and sends Jingle IQs."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.c = slixmpp.ClientXMPP("localhost", "", sasl_mech="ANONYMOUS")
        self.c.ssl_context = ssl.create_default_context(cafile=str(stack.cert_path))
        self.c.enable_direct_tls = False
        self.presences: asyncio.Queue = asyncio.Queue()
        self.c.add_event_handler("presence", self.presences.put_nowait)

    async def connect(self) -> None:
        started = asyncio.get_running_loop().create_future()
        self.c.add_event_handler("session_start", lambda _e: started.done() or started.set_result(None))
        self.c.connect(*self.stack.server.c2s_address)
        await asyncio.wait_for(started, 10)

    async def join(self, room: str, nick: str) -> str | None:
        """Join (creating and unlocking the room if need be); the error condition if refused."""
        pres = self.c.make_presence(pto=f"{room}/{nick}")
        ET.SubElement(pres.xml, "{http://jabber.org/protocol/muc}x")
        pres.send()
        async with asyncio.timeout(10):
            while True:
                got = await self.presences.get()
                if got["from"] != slixmpp.JID(f"{room}/{nick}"):
                    continue
                if got["type"] == "error":
                    return got["error"]["condition"]
                break
        if "201" in str(got):  # a new room is locked until its owner accepts the default config
            iq = self.c.make_iq_set(ito=room)
            q = ET.SubElement(iq.xml, "{http://jabber.org/protocol/muc#owner}query")
            ET.SubElement(q, "{jabber:x:data}x", type="submit")
            await iq.send(timeout=10)
        return None

    async def session_initiate(self, to: str) -> IqError | None:
        ja = JingleAction("session-initiate", "evil1", initiator=to.rsplit("/", 1)[0] + "/focus", contents=[
            Content("audio", "audio", transport=IceTransport("u1", "p" * 24))])
        iq = self.c.make_iq_set(ito=to)
        iq.xml.append(ET.fromstring(_tostring(jingle.jingle_element(ja))))
        try:
            await iq.send(timeout=10)
        except IqError as exc:
            return exc
        return None

    def close(self) -> None:
        self.c.abort()


def _tostring(el) -> str:
    from lxml import etree
    return etree.tostring(el).decode()


async def test_jingle_from_another_occupant_is_refused_and_the_call_goes_on(stacks):
    stack = await stacks.start()
    a, b = participant(stack, "victims", "ann00001"), participant(stack, "victims", "bob00002")
    mallory = Hostile(stack)
    try:
        await asyncio.gather(a.join(), b.join())
        await receives_from(a, b)
        sessions, sid = a.sessions, a.sid
        await mallory.connect()
        assert await mallory.join("victims@conference.localhost", "mallory") is None
        err = await mallory.session_initiate(a.occupant_jid)
        assert err is not None and err.condition == "not-acceptable"
        assert "Only the focus" in (err.text or "")
        assert (a.sessions, a.sid) == (sessions, sid)
        await receives_from(a, b)  # media untouched
        await receives_from(b, a)
    finally:
        mallory.close()
        await asyncio.gather(a.leave(), b.leave())


async def test_a_guest_sitting_as_focus_is_not_the_focus(stacks):
    """A guest who got into a room first as `focus` sends a session-initiate: its real JID is not
    the focus account, so it is refused. Our MUC prevents the situation by default (only the
    focus creates rooms and uses that nick); an operator who opened both, or another MUC, must
    not expose participants, so this stack turns both off. The participant normally never gets
    there (the real focus cannot join, so the conference IQ fails and it does not join): it is
    put in the room here step by step, without the conference IQ."""
    stack = await stacks.start(make_config(server__data_dir=str(stacks.data), muc__create_rooms="anyone",
                                           muc__reserved_nicks=[]))
    room = "trap@conference.localhost"
    mallory = Hostile(stack)
    host, port = stack.server.c2s_address
    p = Participant(host, port, "trap", cafile=str(stack.cert_path), nick="vic00001")
    try:
        await mallory.connect()
        refused = await mallory.join(room, "focus")
        if refused is not None:  # the MUC reserves the service accounts' nicks: then as anyone else
            assert refused in ("conflict", "not-allowed", "forbidden")
            assert await mallory.join(room, "focus-ish") is None
        # the conference IQ for this room fails while a guest is `focus` there: never joined
        with pytest.raises(ParticipantError, match="focus"):
            await p.join(timeout=40)
        assert not p._in_room
        assert "vic00001" not in _occupants(stack, room)

        q = Participant(host, port, "trap", cafile=str(stack.cert_path), nick="vic00002")
        try:
            await q._connect()
            await q._join_muc()
            err = await mallory.session_initiate(q.occupant_jid)
            assert err is not None
            if refused is None:  # from room/focus, but not the focus account
                assert err.condition == "forbidden" and "not the conference focus" in (err.text or ""), err
            else:
                assert err.condition == "not-acceptable", err
            assert q.sessions == 0 and q.pc is None
        finally:
            await q.leave()
    finally:
        mallory.close()
        await p.leave()


def _occupants(stack: Stack, room: str) -> set[str]:
    muc = next(pl for pl in stack.server.plugins if getattr(pl, "name", "") == "muc")
    r = muc.service.rooms.get(room.split("@", 1)[0])
    return set(r.occupants) if r is not None else set()
