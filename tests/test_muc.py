"""The MUC plugin (XEP-0045) with several real slixmpp clients in one room."""
from __future__ import annotations

import asyncio

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError, PresenceError
from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

ROOMS = "conference.localhost"
MUC_PLUGINS = ("xep_0030", "xep_0004", "xep_0045", "xep_0199", "xep_0359")


class Waiter:
    """Collects one kind of stanza a client receives, so a test can await the next match."""

    def __init__(self, client, event: str, room: str | None = None) -> None:
        self.items: list = []
        self.cond = asyncio.Condition()
        self.room = room
        client.add_event_handler(event, self._on)

    async def _on(self, stanza) -> None:
        if self.room is not None and stanza["from"].bare != self.room:
            return
        async with self.cond:
            self.items.append(stanza)
            self.cond.notify_all()

    async def next(self, match=lambda s: True, timeout: float = 5.0):
        async def find():
            async with self.cond:
                while True:
                    for i, s in enumerate(self.items):
                        if match(s):
                            del self.items[i]
                            return s
                    await self.cond.wait()
        return await asyncio.wait_for(find(), timeout)


def presence_errors(client) -> Waiter:
    """Every presence error, also from occupant JIDs (slixmpp hides those from its events)."""
    name = f"test_presence_error_{id(client)}"
    if not getattr(client, "_test_presence_errors", False):
        client._test_presence_errors = True
        client.register_handler(Callback(name, StanzaPath("presence@type=error"),
                                         lambda p: client.event(name, p)))
    return Waiter(client, name)


def codes(pres) -> set[int]:
    return {int(s.get("code")) for s in pres.xml.iter("{http://jabber.org/protocol/muc#user}status")}


def item(pres) -> dict[str, str]:
    el = pres.xml.find("{http://jabber.org/protocol/muc#user}x/{http://jabber.org/protocol/muc#user}item")
    return dict(el.attrib) if el is not None else {}


async def muc_env(xmpp_server, clients, **overrides):
    srv = await xmpp_server(**overrides)
    srv.users.add("focus", "auth.localhost", "focuspw")
    for name in ("alice", "bob", "carol"):
        srv.users.add(name, "localhost", "pw")

    class Env:
        server = srv

        async def user(self, name: str | None = None):
            if name:
                return await clients.connect(srv, f"{name}@localhost", "pw", plugins=MUC_PLUGINS)
            return await clients.connect(srv, plugins=MUC_PLUGINS)

        async def focus(self):
            return await clients.connect(srv, "focus@auth.localhost/focus", "focuspw", plugins=MUC_PLUGINS)

    return Env()


@pytest.fixture
async def muc(xmpp_server, clients):
    """A plain XEP-0045 service (anyone creates rooms), for the generic room rules; `user()`
    connects a guest, `focus()` the service admin."""
    return await muc_env(xmpp_server, clients, muc__create_rooms="anyone")


@pytest.fixture
async def conf_muc(xmpp_server, clients):
    """The MUC as configured by default: conference rooms belong to the focus."""
    return await muc_env(xmpp_server, clients)


async def join(client, room: str, nick: str, **kw):
    return await client.plugin["xep_0045"].join_muc_wait(JID(f"{room}@{ROOMS}"), nick, timeout=5, **kw)


async def join_error(client, room: str, nick: str, **kw) -> str:
    with pytest.raises(PresenceError) as exc:
        await join(client, room, nick, **kw)
    return exc.value.condition


async def instant_room(client, room: str) -> None:
    """Accept the default configuration (XEP-0045 10.1.2)."""
    iq = client.make_iq_set(ito=f"{room}@{ROOMS}")
    query = ET.SubElement(iq.xml, "{http://jabber.org/protocol/muc#owner}query")
    ET.SubElement(query, "{jabber:x:data}x", type="submit")
    await iq.send(timeout=5)


async def configure(client, room: str, **fields) -> None:
    iq = client.make_iq_set(ito=f"{room}@{ROOMS}")
    query = ET.SubElement(iq.xml, "{http://jabber.org/protocol/muc#owner}query")
    x = ET.SubElement(query, "{jabber:x:data}x", type="submit")
    f = ET.SubElement(x, "{jabber:x:data}field", var="FORM_TYPE")
    ET.SubElement(f, "{jabber:x:data}value").text = "http://jabber.org/protocol/muc#roomconfig"
    for var, value in fields.items():
        f = ET.SubElement(x, "{jabber:x:data}field", var=var)
        ET.SubElement(f, "{jabber:x:data}value").text = str(value)
    await iq.send(timeout=5)


async def test_create_lock_instant_room_join_leave(muc):
    alice, bob = await muc.user("alice"), await muc.user("bob")
    pres, subject, occupants, history = await join(alice, "lounge", "Alice")
    assert {110, 201} <= codes(pres)
    assert item(pres)["affiliation"] == "owner" and item(pres)["role"] == "moderator"
    assert [p for p in occupants if 110 not in codes(p)] == [] and history == []
    # a new room is locked until its owner accepts it
    assert await join_error(bob, "lounge", "Bob") == "item-not-found"
    await instant_room(alice, "lounge")
    alice_sees = Waiter(alice, "groupchat_presence", "lounge@conference.localhost")
    pres, _, occupants, _ = await join(bob, "lounge", "Bob")
    assert 110 in codes(pres) and item(pres)["role"] == "participant"
    others = [p for p in occupants if 110 not in codes(p)]
    assert [p["from"].resource for p in others] == ["Alice"]
    assert "jid" not in item(others[0])  # semi-anonymous: only moderators see real JIDs
    seen = await alice_sees.next(lambda p: p["from"].resource == "Bob")
    assert item(seen)["jid"] == bob.boundjid.full  # Alice is a moderator
    # leaving is broadcast, and the last one out destroys the room
    bob.plugin["xep_0045"].leave_muc(JID("lounge@conference.localhost"), "Bob", "bye")
    gone = await alice_sees.next(lambda p: p["type"] == "unavailable")
    assert gone["from"].resource == "Bob" and gone["status"] == "bye"
    alice_any = Waiter(alice, "groupchat_presence")  # slixmpp forgets the room as it leaves
    alice.plugin["xep_0045"].leave_muc(JID("lounge@conference.localhost"), "Alice")
    own = await alice_any.next(lambda p: p["from"].resource == "Alice")
    assert 110 in codes(own)
    assert "lounge" not in muc.server.plugins[-1].service.rooms


async def test_focus_rooms_are_open_and_show_real_jids(muc):
    focus, alice = await muc.focus(), await muc.user()
    pres, *_ = await join(focus, "conf1", "focus")
    assert 201 in codes(pres) and 100 in codes(pres)
    # no lock for conferences; guests see real JIDs (the Jitsi client needs them)
    ext = ET.fromstring("<videomuted xmlns='http://jitsi.org/jitmeet/video'>true</videomuted>")
    stats = ET.fromstring("<stats-id>Shanna-kAu</stats-id>")
    opts = {}
    stanza = alice.plugin["xep_0045"].make_join_stanza(JID("conf1@conference.localhost"), "7d3e9a10",
                                                       presence_options=opts)
    stanza.append(ext)
    stanza.xml.append(stats)
    focus_sees = Waiter(focus, "groupchat_presence", "conf1@conference.localhost")
    alice_self = Waiter(alice, "groupchat_presence", "conf1@conference.localhost")
    alice_all = Waiter(alice, "groupchat_presence", "conf1@conference.localhost")
    stanza.send()
    mine = await alice_self.next(lambda p: 110 in codes(p))
    assert {110, 100} <= codes(mine)
    focus_pres = await alice_all.next(lambda p: p["from"].resource == "focus")
    assert item(focus_pres)["jid"] == focus.boundjid.full
    assert item(focus_pres)["affiliation"] == "owner"
    seen = await focus_sees.next(lambda p: p["from"].resource == "7d3e9a10")
    assert seen.xml.findtext("{http://jitsi.org/jitmeet/video}videomuted") == "true"
    assert seen.xml.findtext("{jabber:client}stats-id") == "Shanna-kAu"
    # a presence update (no <x/>) is forwarded verbatim too
    alice.send_presence(pto="conf1@conference.localhost/7d3e9a10",
                        pstatus="busy")
    upd = await focus_sees.next(lambda p: p["from"].resource == "7d3e9a10" and p["status"] == "busy")
    assert upd.xml.find("{http://jitsi.org/jitmeet/video}videomuted") is None
    # the focus can hand ownership around (Jicofo's grantOwnership)
    await focus.plugin["xep_0045"].set_affiliation(JID("conf1@conference.localhost"), "owner", jid=alice.boundjid.bare)
    promoted = await alice_self.next(lambda p: 110 in codes(p) and item(p).get("affiliation") == "owner")
    assert item(promoted)["role"] == "moderator"


async def test_nick_conflict_and_change(muc):
    focus, a, b = await muc.focus(), await muc.user(), await muc.user()
    await join(focus, "nicks", "focus")
    await join(a, "nicks", "same")
    assert await join_error(b, "nicks", "same") == "conflict"
    await join(b, "nicks", "other")
    a_sees = Waiter(a, "groupchat_presence", "nicks@conference.localhost")
    errs = presence_errors(b)
    b.send_presence(pto="nicks@conference.localhost/same")  # a taken nick: refused, nothing changes
    assert (await errs.next())["error"]["condition"] == "conflict"
    await b.plugin["xep_0045"].set_self_nick(JID("nicks@conference.localhost"), "renamed")
    old = await a_sees.next(lambda p: p["type"] == "unavailable")
    assert old["from"].resource == "other" and 303 in codes(old) and item(old)["nick"] == "renamed"
    new = await a_sees.next(lambda p: p["type"] != "unavailable" and p["from"].resource == "renamed")
    assert item(new)["jid"] == b.boundjid.full
    room = muc.server.plugins[-1].service.rooms["nicks"]
    assert sorted(room.occupants) == ["focus", "renamed", "same"]


async def test_password_members_only_max_occupants_and_ban(muc):
    owner, a, b = await muc.user("alice"), await muc.user("bob"), await muc.user("carol")
    await join(owner, "club", "owner")
    await configure(owner, "club", **{"muc#roomconfig_passwordprotectedroom": 1, "muc#roomconfig_roomsecret": "s3",
                                      "muc#roomconfig_maxusers": 2})
    assert await join_error(a, "club", "a") == "not-authorized"
    assert await join_error(a, "club", "a", password="wrong") == "not-authorized"
    await join(a, "club", "a", password="s3")
    assert await join_error(b, "club", "b", password="s3") == "service-unavailable"  # full
    # ban: the banned occupant is removed with 301 and cannot come back
    a_self = Waiter(a, "groupchat_presence", "club@conference.localhost")
    await owner.plugin["xep_0045"].set_affiliation(JID("club@conference.localhost"), "outcast",
                                                   jid=a.boundjid.bare, reason="spam")
    out = await a_self.next(lambda p: p["type"] == "unavailable")
    assert {301, 110} <= codes(out) and item(out)["affiliation"] == "outcast"
    assert await join_error(a, "club", "a", password="s3") == "forbidden"
    outcasts = await owner.plugin["xep_0045"].get_affiliation_list(JID("club@conference.localhost"), "outcast")
    assert outcasts == [a.boundjid.bare]
    # members-only without a lobby: registration-required until made a member
    await configure(owner, "club", **{"muc#roomconfig_membersonly": 1, "muc#roomconfig_lobby": 0,
                                      "muc#roomconfig_passwordprotectedroom": 0})
    assert await join_error(b, "club", "b") == "registration-required"
    await owner.plugin["xep_0045"].set_affiliation(JID("club@conference.localhost"), "member", jid=b.boundjid.bare)
    await join(b, "club", "b")
    members = await owner.plugin["xep_0045"].get_affiliation_list(JID("club@conference.localhost"), "member")
    assert b.boundjid.bare in members


async def test_kick_voice_moderator_and_unauthorized_actions(muc):
    focus, a, b = await muc.focus(), await muc.user(), await muc.user()
    room = JID("mod@conference.localhost")
    await join(focus, "mod", "focus")
    await configure(focus, "mod", **{"muc#roomconfig_moderatedroom": 1})
    pres, *_ = await join(a, "mod", "a")
    assert item(pres)["role"] == "visitor"
    await join(b, "mod", "b")
    errors = Waiter(a, "message_error")
    a.send_message(mto=room, mbody="can I speak?", mtype="groupchat")
    err = await errors.next()
    assert err["error"]["condition"] == "forbidden"
    # a visitor cannot kick or grant anything; nothing changes
    with pytest.raises(IqError) as exc:
        await a.plugin["xep_0045"].set_role(room, "b", "none")
    assert exc.value.condition == "forbidden"
    with pytest.raises(IqError) as exc:
        await a.plugin["xep_0045"].get_affiliation_list(room, "owner")
    assert exc.value.condition == "forbidden"
    service_room = muc.server.plugins[-1].service.rooms["mod"]
    assert set(service_room.occupants) == {"focus", "a", "b"}
    # voice, then moderator
    a_self = Waiter(a, "groupchat_presence", "mod@conference.localhost")
    await focus.plugin["xep_0045"].set_role(room, "a", "participant")
    assert item(await a_self.next(lambda p: 110 in codes(p)))["role"] == "participant"
    msgs = Waiter(b, "groupchat_message")
    a.send_message(mto=room, mbody="now I can", mtype="groupchat")
    assert (await msgs.next(lambda m: m["body"] == "now I can"))["from"].resource == "a"
    await focus.plugin["xep_0045"].set_role(room, "a", "moderator")
    assert item(await a_self.next(lambda p: 110 in codes(p)))["role"] == "moderator"
    moderators = await focus.plugin["xep_0045"].get_roles_list(room, "moderator")
    assert set(moderators) == {"focus", "a"}
    # a moderator (not admin) may kick a participant, not the owner
    b_self = Waiter(b, "groupchat_presence", "mod@conference.localhost")
    with pytest.raises(IqError) as exc:
        await a.plugin["xep_0045"].set_role(room, "focus", "none")
    assert exc.value.condition == "not-allowed"
    await a.plugin["xep_0045"].set_role(room, "b", "none", reason="off topic")
    kicked = await b_self.next(lambda p: p["type"] == "unavailable" and p["from"].resource == "b")
    assert {307, 110} <= codes(kicked)
    assert set(service_room.occupants) == {"focus", "a"}


async def test_groupchat_private_history_subject(muc):
    focus, a, b = await muc.focus(), await muc.user(), await muc.user()
    room = JID("chat@conference.localhost")
    await join(focus, "chat", "focus")
    await join(a, "chat", "a")
    for i in range(5):
        a.send_message(mto=room, mbody=f"message {i}", mtype="groupchat")
    focus_msgs = Waiter(focus, "groupchat_message")
    a.send_message(mto=room, mbody="last", mtype="groupchat")
    got = await focus_msgs.next(lambda m: m["body"] == "last")
    assert got["from"] == JID("chat@conference.localhost/a")
    assert got.xml.find("{urn:xmpp:sid:0}stanza-id").get("by") == "chat@conference.localhost"
    focus.plugin["xep_0045"].set_subject(room, "Weekly sync")
    subj = Waiter(a, "groupchat_subject")
    assert (await subj.next())["subject"] == "Weekly sync"
    # a newcomer asks for the last 3 messages
    _, subject, _, history = await join(b, "chat", "b", maxstanzas=3)
    assert [m["body"] for m in history] == ["message 4", "last"][-2:] or [m["body"] for m in history] == ["message 3", "message 4", "last"]
    assert [m["body"] for m in history] == ["message 3", "message 4", "last"]
    assert all(m["delay"]["stamp"] is not None for m in history)
    assert subject["subject"] == "Weekly sync"
    # private messages go to one occupant, from the sender's occupant JID
    pm = Waiter(b, "message")
    a.send_message(mto="chat@conference.localhost/b", mbody="psst", mtype="chat")
    got = await pm.next(lambda m: m["body"] == "psst")
    assert got["from"] == JID("chat@conference.localhost/a") and got["type"] == "chat"
    # not an occupant: refused
    outsider = await muc.user()
    errors = Waiter(outsider, "message_error")
    outsider.send_message(mto=room, mbody="hi", mtype="groupchat")
    assert (await errors.next())["error"]["condition"] == "not-acceptable"
    outsider.send_message(mto="chat@conference.localhost/b", mbody="hi", mtype="chat")
    assert (await errors.next())["error"]["condition"] == "not-acceptable"


async def test_disco_service_and_room(muc):
    focus, a = await muc.focus(), await muc.user()
    await join(focus, "visible", "focus")
    await configure(focus, "visible", **{"muc#roomconfig_roomname": "Visible room",
                                         "muc#roomconfig_passwordprotectedroom": 1,
                                         "muc#roomconfig_roomsecret": "x"})
    await join(a, "visible", "a", password="x")
    disco = a.plugin["xep_0030"]
    info = await disco.get_info(jid=ROOMS, timeout=5)
    assert "http://jabber.org/protocol/muc" in info["disco_info"]["features"]
    items = await disco.get_items(jid=ROOMS, timeout=5)
    assert ("visible@conference.localhost", None, "Visible room (2)") in items["disco_items"]["items"]
    info = await disco.get_info(jid="visible@conference.localhost", timeout=5)
    features = info["disco_info"]["features"]
    assert "muc_passwordprotected" in features and "muc_open" in features and "muc_nonanonymous" in features
    form = info["disco_info"]["form"]["values"]
    assert form["muc#roominfo_occupants"] == "2" and form["muc#roominfo_meetingId"]
    with pytest.raises(IqError) as exc:
        await disco.get_info(jid="nosuchroom@conference.localhost", timeout=5)
    assert exc.value.condition == "item-not-found"
    # the server lists the MUC and announces the lobby to Jitsi clients
    items = await disco.get_items(jid="localhost", timeout=5)
    assert ROOMS in {i[0] for i in items["disco_items"]["items"]}
    info = await disco.get_info(jid="localhost", timeout=5)
    assert ("component", "lobbyrooms", None, "lobby.localhost") in info["disco_info"]["identities"]
    # ... which asks the lobby service for its features at the node named by that identity's type
    info = await disco.get_info(jid="lobby.localhost", node="lobbyrooms", timeout=5)
    assert info["disco_info"]["node"] == "lobbyrooms"
    assert "http://jabber.org/protocol/muc" in info["disco_info"]["features"]
    with pytest.raises(IqError) as exc:
        await disco.get_info(jid="lobby.localhost", node="nosuchnode", timeout=5)
    assert exc.value.condition == "item-not-found"
    with pytest.raises(IqError) as exc:  # the rooms' service has no such node
        await disco.get_info(jid=ROOMS, node="lobbyrooms", timeout=5)
    assert exc.value.condition == "item-not-found"


async def test_iqs_between_occupants_both_ways_and_self_ping(muc):
    focus, a = await muc.focus(), await muc.user()
    await join(focus, "iqs", "focus")
    await join(a, "iqs", "a")
    # focus -> participant and back: the reply arrives from the occupant JID
    rtt = await focus.plugin["xep_0199"].ping("iqs@conference.localhost/a", timeout=5)
    assert rtt is not None
    got = Waiter(a, "disco_info")
    await a.plugin["xep_0199"].ping("iqs@conference.localhost/focus", timeout=5)
    # XEP-0410 self-ping answered by the room, and refused to a non-occupant
    assert await a.plugin["xep_0199"].ping("iqs@conference.localhost/a", timeout=5) is not None
    outsider = await muc.user()
    with pytest.raises(IqError) as exc:
        await outsider.plugin["xep_0199"].ping("iqs@conference.localhost/a", timeout=5)
    assert exc.value.condition == "not-acceptable"
    assert got is not None


async def test_bad_input_changes_nothing(muc):
    owner, a = await muc.user("alice"), await muc.user()
    room = JID("strict@conference.localhost")
    await join(owner, "strict", "owner")
    await instant_room(owner, "strict")
    service_room = muc.server.plugins[-1].service.rooms["strict"]
    before = service_room.config.copy()
    # an unknown list value and a non-boolean: not-acceptable, config unchanged
    with pytest.raises(IqError) as exc:
        await configure(owner, "strict", **{"muc#roomconfig_whois": "everybody", "muc#roomconfig_roomname": "X"})
    assert exc.value.condition == "not-acceptable"
    with pytest.raises(IqError) as exc:
        await configure(owner, "strict", **{"muc#roomconfig_membersonly": "maybe"})
    assert exc.value.condition == "not-acceptable"
    assert service_room.config == before
    await join(a, "strict", "a")
    # a non-owner may not read or change the configuration
    with pytest.raises(IqError) as exc:
        await a.plugin["xep_0045"].get_room_config(room)
    assert exc.value.condition == "forbidden"
    with pytest.raises(IqError) as exc:
        await a.plugin["xep_0045"].set_affiliation(room, "owner", jid=a.boundjid.bare)
    assert exc.value.condition == "forbidden"
    # admin requests with garbage items
    for xml in ("<query xmlns='http://jabber.org/protocol/muc#admin'/>",
                "<query xmlns='http://jabber.org/protocol/muc#admin'><item role='emperor' nick='a'/></query>",
                "<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='@@@'/></query>",
                "<query xmlns='http://jabber.org/protocol/muc#admin'><item role='none' nick='ghost'/></query>"):
        iq = owner.make_iq_set(ito=room)
        iq.append(ET.fromstring(xml))
        with pytest.raises(IqError) as exc:
            await iq.send(timeout=5)
        assert exc.value.condition in ("bad-request", "jid-malformed", "item-not-found"), xml
    # a join without a nickname
    outsider = await muc.user()
    errs = presence_errors(outsider)
    outsider.send_presence(pto="strict@conference.localhost")
    assert (await errs.next())["error"]["condition"] == "jid-malformed"
    outsider.send_presence(pto="strict2@conference.localhost")
    assert (await errs.next())["error"]["condition"] == "jid-malformed"
    assert set(service_room.occupants) == {"owner", "a"}
    assert service_room.config == before
    assert "strict2" not in muc.server.plugins[-1].service.rooms


async def test_destroy_and_disconnect(muc):
    owner, a, b = await muc.user("alice"), await muc.user(), await muc.user()
    await join(owner, "doomed", "owner")
    await instant_room(owner, "doomed")
    await join(a, "doomed", "a")
    await join(b, "doomed", "b")
    owner_sees = Waiter(owner, "groupchat_presence", "doomed@conference.localhost")
    b.abort()  # vanishes without a goodbye: the server leaves the room for it
    gone = await owner_sees.next(lambda p: p["type"] == "unavailable")
    assert gone["from"].resource == "b"
    a_sees = Waiter(a, "groupchat_presence", "doomed@conference.localhost")
    await owner.plugin["xep_0045"].destroy(JID("doomed@conference.localhost"), reason="done")
    end = await a_sees.next(lambda p: p["type"] == "unavailable")
    assert end.xml.find(".//{http://jabber.org/protocol/muc#user}destroy") is not None
    assert "doomed" not in muc.server.plugins[-1].service.rooms


async def test_lobby_admit_and_deny(muc):
    focus, mod, waiting, denied = await muc.focus(), await muc.user("alice"), await muc.user(), await muc.user()
    room = JID("meet@conference.localhost")
    await join(focus, "meet", "focus")
    await join(mod, "meet", "mod")
    await focus.plugin["xep_0045"].set_affiliation(room, "owner", jid=mod.boundjid.bare)
    await configure(mod, "meet", **{"muc#roomconfig_membersonly": 1, "muc#roomconfig_lobby": 1})
    # a newcomer is told where to wait
    errs = presence_errors(waiting)
    waiting.plugin["xep_0045"].make_join_stanza(room, "guest").send()
    err = await errs.next()
    assert err["error"]["condition"] == "registration-required"
    lobby = err.xml.findtext(".//{http://jitsi.org/jitmeet}lobbyroom")
    assert lobby == "meet@lobby.localhost"
    # the moderator watches the lobby; the newcomer waits there
    mod_lobby = Waiter(mod, "groupchat_presence", "meet@lobby.localhost")
    await mod.plugin["xep_0045"].join_muc_wait(JID(lobby), "mod", timeout=5)
    await waiting.plugin["xep_0045"].join_muc_wait(JID(lobby), "guest", timeout=5)
    seen = await mod_lobby.next(lambda p: p["from"].resource == "guest")
    assert item(seen)["jid"] == waiting.boundjid.full
    # admitted: the lobby tells the guest, who then joins the main room
    notices = Waiter(waiting, "message")
    await mod.plugin["xep_0045"].set_affiliation(room, "member", jid=waiting.boundjid.bare)
    note = await notices.next(lambda m: m.xml.find("{http://jitsi.org/jitmeet}lobby-access") is not None)
    assert note.xml.find("{http://jitsi.org/jitmeet}lobby-access").get("room") == "meet@conference.localhost"
    pres, *_ = await join(waiting, "meet", "guest")
    assert item(pres)["affiliation"] == "member"
    # denied: kicked from the lobby by the moderator
    await denied.plugin["xep_0045"].join_muc_wait(JID(lobby), "nope", timeout=5)
    d_sees = Waiter(denied, "groupchat_presence", "meet@lobby.localhost")
    await mod.plugin["xep_0045"].set_role(JID(lobby), "nope", "none", reason="not today")
    kicked = await d_sees.next(lambda p: p["type"] == "unavailable")
    assert 307 in codes(kicked)
    errs = presence_errors(denied)
    denied.plugin["xep_0045"].make_join_stanza(room, "nope").send()
    assert (await errs.next())["error"]["condition"] == "registration-required"


async def test_room_creation_policy(xmpp_server, clients):
    srv = await xmpp_server(muc__create_rooms="authenticated")
    srv.users.add("alice", "localhost", "pw")
    guest = await clients.connect(srv, plugins=MUC_PLUGINS)
    assert await join_error(guest, "new", "g") == "not-allowed"
    alice = await clients.connect(srv, "alice@localhost", "pw", plugins=MUC_PLUGINS)
    await join(alice, "new", "alice")
    await instant_room(alice, "new")
    pres, *_ = await join(guest, "new", "g")  # guests may join rooms that exist
    assert 110 in codes(pres)


async def test_brewery_is_only_for_internal_accounts(muc):
    srv = muc.server
    srv.users.add("jvb", "auth.localhost", "jvbpw")
    bridge = await muc.focus()
    pres, *_ = await bridge.plugin["xep_0045"].join_muc_wait(JID("jvbbrewery@internal.auth.localhost"), "jvb1", timeout=5)
    assert 201 in codes(pres) and 100 in codes(pres)  # open at once, real JIDs shown
    guest = await muc.user()
    with pytest.raises(PresenceError) as exc:
        await guest.plugin["xep_0045"].join_muc_wait(JID("jvbbrewery@internal.auth.localhost"), "intruder", timeout=5)
    assert exc.value.condition == "forbidden"


# ---- conference rooms belong to the focus (issue 13) ------------------------------------------

async def test_only_the_focus_creates_rooms_by_default(conf_muc):
    guest, alice = await conf_muc.user(), await conf_muc.user("alice")
    rooms = conf_muc.server.plugins[-1].service.rooms
    for client in (guest, alice):  # a registered user is no different: only the focus creates
        with pytest.raises(PresenceError) as exc:
            await join(client, "first", "focus")
        assert exc.value.condition == "item-not-found"
        assert "ask focus.localhost for this room first (the conference IQ)" in exc.value.text
    assert "first" not in rooms
    focus = await conf_muc.focus()
    pres, *_ = await join(focus, "first", "focus")
    assert {110, 201, 100} <= codes(pres)
    pres, *_ = await join(guest, "first", "g")  # guests join the room the focus made
    assert item(pres)["role"] == "participant" and item(pres)["affiliation"] == "none"
    assert set(rooms["first"].occupants) == {"focus", "g"}


async def test_nick_focus_is_reserved_for_the_focus(conf_muc):
    focus, guest, other = await conf_muc.focus(), await conf_muc.user(), await conf_muc.user("alice")
    room = JID(f"r@{ROOMS}")
    await join(focus, "r", "focus")
    await join(guest, "r", "g")
    service_room = conf_muc.server.plugins[-1].service.rooms["r"]
    # the focus leaves: its nick is free, yet nobody else may take it, in any spelling
    guest_sees = Waiter(guest, "groupchat_presence", room.bare)
    focus.plugin["xep_0045"].leave_muc(room, "focus")
    await guest_sees.next(lambda p: p["from"].resource == "focus" and p["type"] == "unavailable")
    for nick in ("focus", "Focus", "FOCUS ", "\uff46\uff4f\uff43\uff55\uff53"):  # the last: fullwidth
        with pytest.raises(PresenceError) as exc:
            await join(other, "r", nick)
        assert exc.value.condition == "conflict", nick
        assert "reserved" in exc.value.text
    # nor may an occupant change its nick to it
    errs = presence_errors(guest)
    guest.send_presence(pto=f"{room.bare}/Focus")
    err = await errs.next()
    assert err["error"]["condition"] == "conflict" and "reserved" in err["error"]["text"]
    assert set(service_room.occupants) == {"g"}
    # the focus itself takes it back
    pres, *_ = await join(focus, "r", "focus")
    assert item(pres)["affiliation"] == "owner" and item(pres)["jid"] == focus.boundjid.full
    assert set(service_room.occupants) == {"focus", "g"}


async def test_reserved_nick_also_when_anyone_creates_rooms(muc):
    alice = await muc.user("alice")
    with pytest.raises(PresenceError) as exc:
        await join(alice, "early", "focus")  # coming first under the focus's nick: refused
    assert exc.value.condition == "conflict"
    assert "early" not in muc.server.plugins[-1].service.rooms


async def test_meeting_id_only_for_occupants_and_the_focus(conf_muc):
    focus, guest, outsider = await conf_muc.focus(), await conf_muc.user(), await conf_muc.user()
    await join(focus, "m", "focus")
    await join(guest, "m", "g")
    meeting_id = conf_muc.server.plugins[-1].service.rooms["m"].meeting_id

    async def form(client) -> dict:
        info = await client.plugin["xep_0030"].get_info(jid=f"m@{ROOMS}", timeout=5)
        return info["disco_info"]["form"]["values"]
    seen_outside = await form(outsider)
    assert "muc#roominfo_meetingId" not in seen_outside
    assert seen_outside["muc#roominfo_occupants"] == "2"  # the rest of the room info stays public
    assert (await form(guest))["muc#roominfo_meetingId"] == meeting_id
    assert (await form(focus))["muc#roominfo_meetingId"] == meeting_id
