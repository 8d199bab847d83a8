"""One conference as the focus runs it: the room's participants, their Jingle sessions, and the
bridge endpoints behind them.

Participants come and go by MUC presence. Once `min_participants` are in, each one gets a
bridge endpoint (COLIBRI2) and a Jingle `session-initiate` offering the bridge's transport and
that participant's receive slots. Its `session-accept` tells the bridge where to send and what
the participant sends; everyone else learns the new sources with `source-add`. Everything here
can be rebuilt from the room and the bridge, so a restarted focus just rejoins.

A conference may span several bridges (cascading, Jitsi's relays): a participant goes to the
first of the conference's bridges that is not full (`max_bridge_participants` of this
conference, or the bridge's own stress at `max_bridge_stress`), else to a new bridge from the
selector. Each pair of the conference's bridges is joined by a relay (COLIBRI2 `<relay>`), and
every bridge learns the participants of the others with their sources inside the relay, so it
knows whose packets arrive over it. Participants see no difference: their own bridge sends them
everyone through their receive slots.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jitsi_protocols import colibri2
from jitsi_protocols.jingle import JingleAction
from jitsi_protocols.model import Content, IceTransport, Media, Source, SourceGroup
from jitsi_protocols.sdp import default_media
from jitsi_base import ns
from jitsi_base.errors import StanzaError

from .bridge_selector import Bridge

if TYPE_CHECKING:
    from .focus import Focus

log = logging.getLogger(__name__)


# Seconds after a relay between two bridges was made anew during which a notice that it failed
# is taken to be the other bridge's late report of the old one
RELINK_GRACE = 5.0

# Most sources (SSRCs) one participant may announce: a browser sends a few (audio, 3 simulcast
# layers and their RTX, a screen share); thousands would only make everyone's offers grow.
MAX_SOURCES = 64

# Jicofo's idea: the larger the conference, the longer source changes are collected before
# they go out (participants at least, seconds)
SOURCE_SIGNALING_DELAYS = ((100, 1.0), (50, 0.5), (20, 0.25))


# What a client is told when it supports neither contract (issue 14): shown by lib-jitsi-meet as
# its conference's failure reason
UNSUPPORTED_CLIENT = ("This server needs SSRC rewriting (http://jitsi.org/ssrc-rewriting-1): enable "
                      "flags.ssrcRewritingEnabled in the client, or use a client that supports it")


def supports_neither_contract(features: frozenset[str] | None) -> bool:
    """A client that says it does Jingle RTP but not SSRC rewriting: a Jitsi client in its older
    mode binds each remote track to the sender's own SSRC, which our bridge never sends it (it
    would show black tiles). Our own clients tell no features (they take slots); a client that
    tells none of RTP is left to the text-only rules."""
    return (features is not None and ns.JINGLE_RTP in features
            and ns.JITSI_SSRC_REWRITING not in features)


def takes_jingle_rtp(features: frozenset[str]) -> bool:
    """Whether a client with these disco features takes a call. Nothing known (no caps, or no
    answer to disco#info) counts as yes: such a client gets one offer, and a refusal decides."""
    return not features or {ns.JINGLE, ns.JINGLE_RTP} <= features


def source_signaling_delay(participants: int) -> float:
    for threshold, delay in SOURCE_SIGNALING_DELAYS:
        if participants >= threshold:
            return delay
    return 0.0


@dataclass
class Participant:
    nick: str
    real_jid: str
    sid: str = ""
    state: str = "new"  # new | inviting | pending (offer sent) | active | ended | refused
    sources: list[Source] = field(default_factory=list)
    groups: list[SourceGroup] = field(default_factory=list)
    endpoint: bool = False  # allocated on its bridge
    bridge: str = ""  # JID of the bridge its endpoint is on
    relayed: bool = False  # the conference's other bridges know its sources
    stats_id: str = ""
    index: int = 0  # 1 for the first to join
    # what its client supports (disco#info); None while we ask (it is invited once we know)
    features: frozenset[str] | None = frozenset()
    # takes no media: its client's features lack Jingle RTP, or it refused or never answered
    # an offer; it stays in the room for chat but is never offered a session again
    chat_only: bool = False

    @property
    def ssrc_rewriting(self) -> bool:
        """Jitsi's contract: it learns remote sources from the bridge's source maps only, so
        its offer lists none and it gets no source-add/-remove."""
        return self.features is not None and ns.JITSI_SSRC_REWRITING in self.features


@dataclass
class ConfBridge:
    """One of the bridges a conference runs on."""

    bridge: Bridge
    created: bool = False  # the conference exists there

    @property
    def jid(self) -> str:
        return self.bridge.jid

    @property
    def id(self) -> str:
        """The bridge's id (its nick in the brewery): what the other bridges call its relay."""
        return self.bridge.jid.rsplit("/", 1)[-1]


class Conference:
    def __init__(self, focus: "Focus", room: str) -> None:
        self.focus = focus
        self.room = room
        self.meeting_id = str(uuid.uuid4())
        self.participants: dict[str, Participant] = {}
        self.bridges: dict[str, ConfBridge] = {}  # by JID, in the order they were added
        self.bridge_session = str(uuid.uuid4())
        self.media: list[Media] = default_media()
        self._lock = asyncio.Lock()  # serialise bridge work for one conference
        self.roles: dict[str, str] = {}  # nick -> MUC role, for moderation requests
        self.in_room: asyncio.Future | None = None  # the focus's join of the room
        self.joins = 0  # how many have joined so far: the start-muted policy counts them
        # source changes not yet sent, per receiving participant (see _broadcast_sources)
        self._pending_sources: dict[str, list[tuple[str, list[Source], list[SourceGroup]]]] = {}
        self._flush_handle: asyncio.TimerHandle | None = None
        self._relinked: dict[frozenset[str], float] = {}  # bridge id pair -> when its relay was re-made

    def close(self) -> None:
        """The focus stops: nothing more goes out."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._pending_sources.clear()

    @property
    def bridge(self) -> Bridge | None:
        """The conference's first bridge (None before anyone has an endpoint)."""
        first = next(iter(self.bridges.values()), None)
        return first.bridge if first is not None else None

    def on_bridge(self, jid: str) -> list[Participant]:
        return [p for p in self.participants.values() if p.bridge == jid and p.endpoint]

    @property
    def occupant_focus(self) -> str:
        return f"{self.room}/focus"

    def owner_jid(self, nick: str) -> str:
        return f"{self.room}/{nick}"

    # ---- membership --------------------------------------------------------------------------
    def joined(self, nick: str, real_jid: str, stats_id: str = "", caps_node: str = "") -> None:
        """A new occupant. One whose presence has caps (XEP-0115) is asked for its features
        first: they decide the contract its offer and source signalling follow."""
        if nick in self.participants:
            return
        self.joins += 1
        p = self.participants[nick] = Participant(nick, real_jid, stats_id=stats_id, index=self.joins)
        log.info("%s: %s joined (%d participants)", self.room, nick, len(self.participants))
        if caps_node:
            p.features = None
            self.focus.spawn(self._discover(p, caps_node))
        else:
            self.focus.spawn(self.invite_pending())

    async def _discover(self, p: Participant, node: str) -> None:
        features = await self.focus.client_features(self.owner_jid(p.nick), node)
        if self.participants.get(p.nick) is not p:
            return
        p.features = features
        if not takes_jingle_rtp(features):
            p.chat_only = True
            log.info("%s: %s's client has no Jingle RTP: chat only, no media session", self.room, p.nick)
            return
        if self._refuse_unsupported(p):
            return
        log.info("%s: %s %s", self.room, p.nick, "takes SSRC rewriting (source maps)" if p.ssrc_rewriting
                 else "takes slots in its offer")
        await self.invite_pending()

    def _refuse_unsupported(self, p: Participant) -> bool:
        """A client of neither contract gets no media session (never black tiles): it stays in
        the room for chat. Jitsi clients already learnt why from their conference request."""
        if not supports_neither_contract(p.features):
            return False
        p.state = "refused"
        log.warning("%s: %s supports neither SSRC rewriting nor slots; no media session", self.room, p.nick)
        return True

    def left(self, nick: str) -> None:
        p = self.participants.pop(nick, None)
        self.roles.pop(nick, None)
        if p is None:
            return
        log.info("%s: %s left (%d participants)", self.room, nick, len(self.participants))
        p.state = "ended"
        self.focus.spawn(self._after_leave(p))

    async def _after_leave(self, p: Participant) -> None:
        async with self._lock:
            if p.sources:
                self._broadcast_sources("source-remove", p.nick, p.sources, p.groups)
            await self._expire_endpoint(p)
            if not self.participants:
                for cb in list(self.bridges.values()):
                    await self._drop_bridge(cb, tell_others=False)
            elif len(self.bridges) > 1 and p.bridge in self.bridges and not self.on_bridge(p.bridge):
                await self._drop_bridge(self.bridges[p.bridge])  # the last one there left

    async def _drop_bridge(self, cb: ConfBridge, tell_others: bool = True) -> None:
        """Expire the conference on one bridge and the relays that led to it."""
        self.bridges.pop(cb.jid, None)
        if cb.created:
            await self._colibri(cb, colibri2.ConferenceModify(meeting_id=self.meeting_id, expire=True), quiet=True)
            cb.created = False
            cb.bridge.conferences = max(0, cb.bridge.conferences - 1)
        if tell_others:
            await self._expire_relays_to(cb)

    async def _expire_relays_to(self, cb: ConfBridge) -> None:
        """The conference's other bridges drop their relay to `cb` (and who was behind it)."""
        for other in list(self.bridges.values()):
            if other is not cb and other.created:
                await self._colibri(other, colibri2.ConferenceModify(
                    meeting_id=self.meeting_id, relays=[colibri2.Relay(id=cb.id, expire=True)]), quiet=True)

    # ---- invitations -------------------------------------------------------------------------
    async def invite_pending(self) -> None:
        async with self._lock:
            if len(self.media_participants()) < self.focus.min_participants:
                return
            for p in self.media_participants():
                if p.state == "new" and p.features is not None and self.participants.get(p.nick) is p:
                    try:
                        await self._invite(p)
                    except StanzaError as exc:
                        log.warning("%s: cannot invite %s: %s", self.room, p.nick, exc)
                        p.state = "new"

    def _full(self, cb: ConfBridge) -> bool:
        cap = self.focus.max_bridge_participants
        return (bool(cap) and len(self.on_bridge(cb.jid)) >= cap) or cb.bridge.stress >= self.focus.max_bridge_stress

    def _pick_bridge(self) -> ConfBridge:
        """The conference's first bridge with room, else a new one, else the least used."""
        live = [cb for cb in self.bridges.values() if cb.jid in self.focus.selector.bridges and cb.bridge.healthy]
        for cb in live:
            if not self._full(cb):
                return cb
        bridge = self.focus.selector.select(exclude=set(self.bridges))
        if bridge is not None:
            if self.bridges:
                log.info("%s: bridges full, cascading to %s", self.room, bridge.jid)
            cb = self.bridges[bridge.jid] = ConfBridge(bridge)
            return cb
        if live:
            return min(live, key=lambda cb: len(self.on_bridge(cb.jid)))
        raise StanzaError("service-unavailable", "No bridge is available")

    async def _link(self, new: ConfBridge) -> None:
        """Join a bridge new to the conference to each of the others by a relay."""
        for old in list(self.bridges.values()):
            if old is not new and old.created:
                await self._link_pair(old, new)

    async def _link_pair(self, old: ConfBridge, new: ConfBridge) -> None:
        """One relay between two bridges: the old side is ICE-controlling and answers first
        with its transport, the new side gets it and answers with its own, which goes back to
        the old side. Each side is told who is behind the other."""
        res = await self._colibri(old, colibri2.ConferenceModify(meeting_id=self.meeting_id, relays=[
            colibri2.Relay(id=new.id, create=True, ice_controlling=True)]))
        old_t = next((r.transport for r in (res.relays if res else []) if r.id == new.id), None)
        if old_t is None:
            raise StanzaError("internal-server-error", f"Bridge {old.jid} gave no relay transport")
        res = await self._colibri(new, colibri2.ConferenceModify(
            meeting_id=self.meeting_id, name=self.room, create=not new.created, relays=[colibri2.Relay(
                id=old.id, create=True, ice_controlling=False, transport=old_t,
                endpoints=self._relayed_endpoints(old.jid))]))
        if not new.created:
            new.created = True
            new.bridge.conferences += 1
        new_t = next((r.transport for r in (res.relays if res else []) if r.id == old.id), None)
        if new_t is None:
            raise StanzaError("internal-server-error", f"Bridge {new.jid} gave no relay transport")
        await self._colibri(old, colibri2.ConferenceModify(meeting_id=self.meeting_id, relays=[
            colibri2.Relay(id=new.id, transport=new_t, endpoints=self._relayed_endpoints(new.jid))]))

    def _relayed_endpoints(self, jid: str) -> list[colibri2.Endpoint]:
        """The participants on one bridge as the other bridges learn them over a relay."""
        return [self._relayed(p) for p in self.on_bridge(jid) if p.sources]

    def _relayed(self, p: Participant) -> colibri2.Endpoint:
        return colibri2.Endpoint(id=p.nick, stats_id=p.stats_id, media=self.media, sources_given=True,
                                 sources=p.sources, groups=p.groups)

    async def _announce(self, p: Participant) -> None:
        """Tell the conference's other bridges p's sources (or, once p has none, to forget it)."""
        home = self.bridges.get(p.bridge)
        if home is None:
            return
        ep = self._relayed(p)
        for other in list(self.bridges.values()):
            if other is not home and other.created:
                await self._colibri(other, colibri2.ConferenceModify(meeting_id=self.meeting_id, relays=[
                    colibri2.Relay(id=home.id, endpoints=[ep])]), quiet=True)
        p.relayed = True

    async def _colibri(self, cb: ConfBridge | None, req: colibri2.ConferenceModify,
                       quiet: bool = False) -> colibri2.ConferenceModified | None:
        if cb is None:
            return None
        bridge = cb.bridge
        try:
            return await self.focus.colibri(bridge.jid, req)
        except StanzaError as exc:
            if quiet:
                log.info("%s: bridge said %s", self.room, exc)
                return None
            raise
        except asyncio.TimeoutError:
            self.focus.selector.failed(bridge.jid)
            if quiet:
                return None
            raise StanzaError("remote-server-timeout", f"Bridge {bridge.jid} did not answer") from None

    async def _invite(self, p: Participant) -> None:
        p.state = "inviting"
        cb = self._pick_bridge()
        if not cb.created and len(self.bridges) > 1:
            try:
                await self._link(cb)
            except (StanzaError, asyncio.TimeoutError):
                await self._drop_bridge(cb)
                raise
        create_conf = not cb.created
        request = colibri2.ConferenceModify(
            meeting_id=self.meeting_id, name=self.room, create=create_conf,
            endpoints=[colibri2.Endpoint(id=p.nick, create=True, stats_id=p.stats_id, media=self.media,
                                         sctp=self.focus.sctp,
                                         capabilities=[colibri2.SSRC_REWRITING] if p.ssrc_rewriting else [])])
        try:
            res = await self._colibri(cb, request)
        except StanzaError as exc:
            if exc.condition != "conflict" or create_conf:
                raise
            # the bridge still holds an endpoint of that name (whatever we believed): replace it,
            # so a participant is never stuck without a session
            log.info("%s: %s still had an endpoint on %s; replacing it", self.room, p.nick, cb.jid)
            await self._colibri(cb, colibri2.ConferenceModify(
                meeting_id=self.meeting_id, endpoints=[colibri2.Endpoint(id=p.nick, expire=True)]), quiet=True)
            res = await self._colibri(cb, request)
        assert res is not None
        if create_conf:
            cb.created = True
            cb.bridge.conferences += 1
        p.endpoint = True
        p.bridge = cb.jid
        ep = next(e for e in res.endpoints if e.id == p.nick)
        if ep.transport is None:
            raise StanzaError("internal-server-error", "The bridge gave no transport")
        if self.participants.get(p.nick) is not p:  # left while we waited
            return
        p.sid = secrets.token_hex(8)
        if p.ssrc_rewriting:
            # only the bridge's own (RTCP-only) SSRCs, in the stream Jitsi clients know to make
            # no track of, as Jicofo offers them
            slots = [dataclasses.replace(s, msid=f"mixedmslabel mixedlabel{s.kind}0") for s in res.feedback_sources]
        else:
            slots = ep.sources
        contents = self._offer_contents(ep.transport, slots, exclude=p.nick, others=not p.ssrc_rewriting)
        audio_n, video_n = self.focus.start_muted
        muted = (bool(audio_n) and p.index > audio_n, bool(video_n) and p.index > video_n)
        offer = JingleAction(action="session-initiate", sid=p.sid, initiator=self.occupant_focus,
                             contents=contents, bundle=[c.name for c in contents],
                             bridge_session=self.bridge_session, start_muted=muted if any(muted) else None)
        p.state = "pending"
        try:
            await self.focus.send_jingle(self.owner_jid(p.nick), offer)
        except StanzaError as exc:
            await self._declined(p, exc)

    def media_participants(self) -> list[Participant]:
        """Those the conference offers media: chat-only occupants neither count towards
        min_participants nor get a session."""
        return [p for p in self.participants.values() if not p.chat_only]

    async def _declined(self, p: Participant, exc: StanzaError) -> None:
        """An offer answered with an error (feature-not-implemented, service-unavailable, ...)
        or not at all: its client takes no calls. Offering again would only reserve another
        bridge endpoint each time the bridge expires the silent one, so it stays chat-only and
        its endpoint goes now."""
        log.info("%s: %s refused the offer (%s): chat only from now on", self.room, p.nick, exc)
        p.chat_only = True
        p.state, p.sid = "ended", ""
        await self._expire_endpoint(p)

    def _offer_contents(self, transport: IceTransport, slots: list[Source], exclude: str,
                        others: bool = True) -> list[Content]:
        """Audio and video, then (if the bridge gave an SCTP port) the data channel's content,
        all on the bridge's one transport; only the data content's carries the sctpmap. An
        SSRC-rewriting client gets no one's sources (`others` False, and the bridge's own SSRCs
        for slots): each SSRC the bridge sends it is first named in a source map, and one its
        offer declared already would make its renegotiation fail."""
        media_transport = dataclasses.replace(transport, sctp_port=None)
        contents = []
        for media in self.media:
            # what this participant will receive: its slots; plus, for clients that list
            # sources per participant, everyone else's streams with their owner
            sources = [Source(s.ssrc, s.kind, owner="jvb", name=s.name, msid=s.msid, cname=s.cname or "jvb")
                       for s in slots if s.kind == media.kind]
            for other in self.participants.values() if others else ():
                if other.nick != exclude:
                    sources += [Source(s.ssrc, s.kind, owner=self.owner_jid(other.nick), name=s.name,
                                       msid="", cname=s.cname) for s in other.sources if s.kind == media.kind]
            contents.append(Content(media.kind, media.kind, media, sources, [], "both", media_transport))
        if transport.sctp_port is not None:
            contents.append(Content("data", "application", transport=transport))
        return contents

    # ---- Jingle from participants -------------------------------------------------------------
    async def on_jingle(self, nick: str, ja: JingleAction) -> None:
        """Called after the IQ was acknowledged; errors here are logged, not answered."""
        p = self.participants.get(nick)
        if p is None:
            return
        async with self._lock:
            if ja.action == "session-accept":
                await self._accepted(p, ja)
            elif ja.action == "transport-info":
                await self._transport_info(p, ja)
            elif ja.action in ("source-add", "addsource", "source-remove", "removesource"):
                await self._sources_changed(p, ja)
            elif ja.action == "session-terminate":
                await self._terminated(p, ja)
            elif ja.action == "session-info" and ja.ice_state == "failed":
                await self._reinvite([p], "ICE failed")

    def check_jingle(self, nick: str, ja: JingleAction) -> None:
        """Synchronous checks that decide the IQ's answer (XEP-0166 errors)."""
        from jitsi_protocols.jingle import unknown_session
        p = self.participants.get(nick)
        if p is None or not p.sid or ja.sid != p.sid:
            raise unknown_session()
        if ja.action == "session-accept":
            if p.state != "pending":
                raise StanzaError("unexpected-request", "This session was accepted already")
            if not any(c.transport is not None for c in ja.contents):
                raise StanzaError("bad-request", "session-accept without a transport")
        announced = sum(len(c.sources) for c in ja.contents)
        if ja.action in ("session-accept", "source-add", "addsource") and \
                announced + (len(p.sources) if ja.action != "session-accept" else 0) > MAX_SOURCES:
            raise StanzaError("resource-constraint", f"At most {MAX_SOURCES} sources per participant")
        if ja.action not in ("session-accept", "transport-info", "source-add", "addsource", "source-remove",
                             "removesource", "session-terminate", "session-info", "transport-accept",
                             "transport-reject"):
            raise StanzaError("bad-request", f"{ja.action} is not handled by the focus")

    async def _accepted(self, p: Participant, ja: JingleAction) -> None:
        transport = next(c.transport for c in ja.contents if c.transport is not None)
        sources = [s for c in ja.contents for s in c.sources]
        groups = [g for c in ja.contents for g in c.groups]
        for s in sources:
            s.owner = p.nick
        await self._colibri(self.bridges.get(p.bridge), colibri2.ConferenceModify(
            meeting_id=self.meeting_id, endpoints=[colibri2.Endpoint(
                id=p.nick, transport=transport, media=self.media, sources_given=True, sources=sources,
                groups=groups)]))
        p.state = "active"
        p.sources, p.groups = sources, groups
        if sources:
            self._broadcast_sources("source-add", p.nick, sources, groups)
            if len(self.bridges) > 1:
                await self._announce(p)
        log.info("%s: %s is in the call (%d sources)", self.room, p.nick, len(sources))

    async def _transport_info(self, p: Participant, ja: JingleAction) -> None:
        transport = next((c.transport for c in ja.contents if c.transport is not None), None)
        if transport is not None and transport.candidates:
            await self._colibri(self.bridges.get(p.bridge), colibri2.ConferenceModify(meeting_id=self.meeting_id, endpoints=[
                colibri2.Endpoint(id=p.nick, transport=transport)]), quiet=True)

    async def _sources_changed(self, p: Participant, ja: JingleAction) -> None:
        add = ja.action in ("source-add", "addsource")
        changed = [s for c in ja.contents for s in c.sources]
        groups = [g for c in ja.contents for g in c.groups]
        for s in changed:
            s.owner = p.nick
        if add:
            known = {s.ssrc for s in p.sources}
            changed = [s for s in changed if s.ssrc not in known]
            sources, new_groups = p.sources + changed, p.groups + groups
        else:
            gone = {s.ssrc for s in changed} & {s.ssrc for s in p.sources}  # only its own
            changed = [s for s in changed if s.ssrc in gone]
            sources = [s for s in p.sources if s.ssrc not in gone]
            new_groups = [g for g in p.groups if not set(g.ssrcs) & gone]
        if not changed:
            return
        try:
            # the bridge checks the SSRCs are nobody else's: only then does anyone hear of them
            # (a participant claiming another's SSRC would otherwise relabel their stream)
            await self._colibri(self.bridges.get(p.bridge), colibri2.ConferenceModify(
                meeting_id=self.meeting_id, endpoints=[colibri2.Endpoint(
                    id=p.nick, sources_given=True, sources=sources, groups=new_groups)]))
        except (StanzaError, asyncio.TimeoutError) as exc:
            log.info("%s: %s's %s refused by the bridge: %s", self.room, p.nick, ja.action, exc)
            return
        p.sources, p.groups = sources, new_groups
        if len(self.bridges) > 1:
            await self._announce(p)
        self._broadcast_sources("source-add" if add else "source-remove", p.nick, changed, groups)

    async def _terminated(self, p: Participant, ja: JingleAction) -> None:
        if p.sources:
            self._broadcast_sources("source-remove", p.nick, p.sources, p.groups)
        p.sources, p.groups, p.state, p.sid = [], [], "ended", ""
        await self._expire_endpoint(p)

    async def _expire_endpoint(self, p: Participant) -> None:
        """Free p's endpoint on its bridge, if it has one (a gone bridge is no error), and the
        copies the other bridges keep of it behind their relays."""
        home = self.bridges.get(p.bridge)
        if p.endpoint:
            await self._colibri(home, colibri2.ConferenceModify(
                meeting_id=self.meeting_id, endpoints=[colibri2.Endpoint(id=p.nick, expire=True)]), quiet=True)
            p.endpoint = False
        if p.relayed and home is not None:
            for other in list(self.bridges.values()):
                if other is not home and other.created:
                    await self._colibri(other, colibri2.ConferenceModify(meeting_id=self.meeting_id, relays=[
                        colibri2.Relay(id=home.id, endpoints=[colibri2.Endpoint(id=p.nick, expire=True)])]),
                        quiet=True)
        p.relayed = False

    def _broadcast_sources(self, action: str, owner: str, sources: list[Source], groups: list[SourceGroup]) -> None:
        """Tell everyone else about `owner`'s new or gone sources. In a large conference the
        news are held for a moment and sent to each participant as one `source-add` (or
        `-remove`) for everything that changed meanwhile: with N people joining, one stanza
        per join per participant would be N^2 stanzas, most of them during a join burst."""
        mine = [Source(s.ssrc, s.kind, owner=self.owner_jid(owner), name=s.name, msid=s.msid, cname=s.cname)
                for s in sources]
        if not mine:
            return
        ssrcs = {s.ssrc for s in mine}
        change = (action, mine, [g for g in groups if set(g.ssrcs) <= ssrcs])
        for other in self.participants.values():
            if other.nick != owner and other.state in ("pending", "active") and other.sid \
                    and not other.ssrc_rewriting:  # those learn sources from the bridge
                self._pending_sources.setdefault(other.nick, []).append(change)
        delay = source_signaling_delay(len(self.participants))
        if delay <= 0:
            self._flush_sources()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(delay, self._flush_sources)

    def _flush_sources(self) -> None:
        self._flush_handle = None
        pending, self._pending_sources = self._pending_sources, {}
        for nick, changes in pending.items():
            other = self.participants.get(nick)
            if other is None or other.state not in ("pending", "active") or not other.sid:
                continue
            i = 0
            while i < len(changes):  # one Jingle action per run of the same action, in order
                action = changes[i][0]
                merged_sources: list[Source] = []
                merged_groups: list[SourceGroup] = []
                while i < len(changes) and changes[i][0] == action:
                    merged_sources += changes[i][1]
                    merged_groups += changes[i][2]
                    i += 1
                contents = []
                for kind in ("audio", "video"):
                    of_kind = [s for s in merged_sources if s.kind == kind]
                    kind_ssrcs = {s.ssrc for s in of_kind}
                    if of_kind:
                        contents.append(Content(kind, kind, None, of_kind,
                                                [g for g in merged_groups if set(g.ssrcs) <= kind_ssrcs]))
                ja = JingleAction(action=action, sid=other.sid, initiator=self.occupant_focus, contents=contents)
                self.focus.spawn(self.focus.send_jingle(self.owner_jid(nick), ja, quiet=True))

    # ---- bridge failure ------------------------------------------------------------------------
    async def bridge_gone(self, jid: str) -> None:
        """One of the conference's bridges is gone: the others drop their relays to it, and
        its participants get new sessions on the bridges that remain (or a new one)."""
        async with self._lock:
            cb = self.bridges.pop(jid, None)
            if cb is None:
                return
            who = [p for p in self.participants.values() if p.bridge == jid]
            for p in who:
                p.endpoint = p.relayed = False  # nothing to expire there; the relays go below
            await self._expire_relays_to(cb)
            await self._reinvite(who, "bridge moved")

    async def _reinvite(self, who: list[Participant], why: str) -> None:
        who = [p for p in who if not p.chat_only]
        for p in who:
            if p.sid:
                ja = JingleAction(action="session-terminate", sid=p.sid, initiator=self.occupant_focus,
                                  reason="failed-application", reason_text=why,
                                  bridge_session=self.bridge_session)
                self.focus.spawn(self.focus.send_jingle(self.owner_jid(p.nick), ja, quiet=True))
            await self._expire_endpoint(p)
            p.sid, p.state = "", "new"
            p.sources, p.groups = [], []
        log.info("%s: re-inviting %d participants (%s)", self.room, len(who), why)
        for p in who:
            if self.participants.get(p.nick) is p:
                try:
                    await self._invite(p)
                except StanzaError as exc:
                    log.warning("%s: cannot re-invite %s: %s", self.room, p.nick, exc)
                    p.state = "new"

    def relay_failed(self, reporter: str, other: str) -> None:
        """A bridge says its relay to another one is down: drop it on both and link them anew."""
        def by_id(bridge_id: str) -> ConfBridge | None:
            return next((cb for cb in self.bridges.values() if cb.id == bridge_id and cb.created), None)

        reported = time.monotonic()
        pair = frozenset((reporter, other))

        async def run() -> None:
            async with self._lock:
                a, b = by_id(reporter), by_id(other)
                if a is None or b is None:
                    return
                if reported - self._relinked.get(pair, -RELINK_GRACE) < RELINK_GRACE:
                    # both bridges see a relay die and both say so, the second up to a second
                    # later (its check runs once a second): that notice is about the relay we
                    # have just replaced, not the new one
                    log.info("%s: relay %s <-> %s was just linked again; notice ignored", self.room,
                             reporter, other)
                    return
                self._relinked[pair] = time.monotonic()
                log.warning("%s: relay %s <-> %s is down; linking again", self.room, a.id, b.id)
                for cb, far in ((a, b), (b, a)):
                    await self._colibri(cb, colibri2.ConferenceModify(
                        meeting_id=self.meeting_id, relays=[colibri2.Relay(id=far.id, expire=True)]), quiet=True)
                for p in self.participants.values():
                    if p.bridge in (a.jid, b.jid):
                        p.relayed = bool(p.sources)  # announced again by the new relay
                try:
                    await self._link_pair(a, b)
                except (StanzaError, asyncio.TimeoutError) as exc:
                    log.warning("%s: could not link %s and %s again: %s", self.room, a.id, b.id, exc)
        self.focus.spawn(run())

    def endpoint_expired(self, nick: str, bridge: str) -> None:
        """The bridge expired a silent endpoint: give that participant a fresh session."""
        p = self.participants.get(nick)
        if p is None or p.bridge != bridge or p.chat_only:
            return

        async def run() -> None:
            async with self._lock:
                await self._reinvite([p], "endpoint expired on the bridge")
        self.focus.spawn(run())
