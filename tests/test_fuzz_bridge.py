"""Fuzzing the bridge's edges: the RTP/RTCP/VP8/transport-cc readers on random and mutated
packets, the receive path (`Conference.on_rtp` / `on_rtcp` / relay input) of a real conference,
the COLIBRI2 models as the bridge applies them, and the bridge-channel messages. The readers
never raise on garbage (their contract: None / False / stop), nothing loops forever, and a
participant's message never raises out of the channel handler. Budgets: tests/fuzzing.py.

The conference here is the real Bridge, Conference and Endpoint objects without sockets: each
endpoint's transport is a `Wire` that records what would go out (the network is the one thing
these tests leave out; tests/test_bridge_media.py sends real media through real transports)."""
from __future__ import annotations

import asyncio
import json
import math
import struct

from hypothesis import example, given
from hypothesis import strategies as st

from bridge import rtp, twcc, vp8
from bridge.bridge import Bridge
from bridge.channel import data_channel, handle_message, handle_text, relay_channel
from bridge.conference import Conference
from bridge.endpoint import Endpoint
from bridge.relay import WANTED_NAME, Relay, parse_wanted
from fuzzing import budget, watchdog
from jitsi_py.config import BridgeSection
from jitsi_protocols.model import Media, PayloadType, Source, SourceGroup
from jitsi_protocols.sdp import default_media

AUDIO_LEVEL_EXT, ABS_SEND_TIME_EXT, TCC_EXT = 1, 3, 5
VP8_PT, RTX_PT, OPUS_PT = 100, 96, 111
LAYERS = (0x1000, 0x2000, 0x3000)
RTX = (0x1001, 0x2001, 0x3001)
AUDIO = 0x99
CAMERA = 0x500  # a second video source without simulcast
CAROL_AUDIO, CAROL_VIDEO = 0x7001, 0x7002  # carol is on the bridge at the other end of a relay


# ---- packets ---------------------------------------------------------------------------------------
@st.composite
def header_extensions(draw) -> bytes:
    """An RFC 8285 block: one-byte or two-byte form with plausible elements, or garbage."""
    form = draw(st.integers(0, 3))
    if form == 3:
        return struct.pack("!HH", draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF))) + \
            draw(st.binary(max_size=40))
    body = b""
    for _ in range(draw(st.integers(0, 4))):
        eid = draw(st.sampled_from([AUDIO_LEVEL_EXT, ABS_SEND_TIME_EXT, TCC_EXT, 0, 15, 7]))
        data = draw(st.binary(min_size=1, max_size=16 if form == 0 else 40))
        if form == 0:
            body += bytes([(eid << 4) | (len(data) - 1)]) + data
        else:
            body += bytes([eid, len(data)]) + data
        body += b"\x00" * draw(st.integers(0, 2))
    body += b"\x00" * (-len(body) % 4)
    words = len(body) // 4 if form != 2 else draw(st.integers(0, 0xFFFF))  # form 2: a lying length
    return struct.pack("!HH", 0xBEDE if form == 0 else 0x1000, words) + body


@st.composite
def vp8_payloads(draw) -> bytes:
    b0 = draw(st.integers(0, 255))
    head = bytes([b0])
    if b0 & 0x80:
        x = draw(st.integers(0, 255))
        head += bytes([x]) + draw(st.binary(max_size=4))
    key = draw(st.sampled_from([b"\x10\x02\x00\x9d\x01\x2a\x80\x02\xe0\x01", b"\x11\x00\x00", b""]))
    return head + key + draw(st.binary(max_size=60))


@st.composite
def rtp_packets(draw, ssrcs: tuple[int, ...], seq: int | None = None) -> bytes:
    """An RTP packet of one of `ssrcs` (or any), with the extensions, payload types, RTX
    payloads and padding our senders use, then possibly truncated or with bytes flipped."""
    if seq is None:
        seq = draw(st.integers(0, 0xFFFF))
    ssrc = draw(st.one_of(st.sampled_from(ssrcs), st.sampled_from(ssrcs), st.integers(0, 0xFFFFFFFF)))
    ext = draw(st.one_of(st.none(), header_extensions()))
    csrcs = draw(st.integers(0, 15)) if draw(st.integers(0, 9)) == 0 else 0
    pad = draw(st.integers(0, 255)) if draw(st.integers(0, 4)) == 0 else 0
    b0 = 0x80 | (0x10 if ext is not None else 0) | (0x20 if pad else 0) | csrcs
    pt = draw(st.one_of(st.sampled_from([VP8_PT, RTX_PT, OPUS_PT]), st.integers(0, 127)))
    head = struct.pack("!BBHII", b0, (0x80 if draw(st.booleans()) else 0) | pt, seq & 0xFFFF,
                       draw(st.integers(0, 0xFFFFFFFF)), ssrc)
    head += draw(st.binary(min_size=4 * csrcs, max_size=4 * csrcs)) + (ext or b"")
    payload = draw(st.one_of(vp8_payloads(), st.binary(max_size=80),
                             st.tuples(st.integers(0, 0xFFFF), vp8_payloads()).map(
                                 lambda t: struct.pack("!H", t[0]) + t[1])))  # RTX: original seq first
    packet = bytearray(head + payload + (bytes(pad - 1) + bytes([draw(st.integers(0, 255))]) if pad else b""))
    return bytes(mutate(draw, packet))


@st.composite
def rtp_streams(draw, ssrcs: tuple[int, ...]) -> list[bytes]:
    """A run of packets of one source with sequence numbers that mostly follow each other
    (sometimes with a gap, a repeat or a step back): what reaches the NACK and stats logic."""
    ssrc = draw(st.sampled_from(ssrcs))
    seq = draw(st.integers(0, 0xFFFF))
    out = []
    for _ in range(draw(st.integers(1, 12))):
        seq += draw(st.sampled_from([1, 1, 1, 1, 2, 5, 0, -3, 70]))
        out.append(draw(rtp_packets((ssrc,), seq)))
    return out


def mutate(draw, packet: bytearray) -> bytearray:
    for _ in range(draw(st.integers(0, 3)) if draw(st.booleans()) else 0):
        if packet and draw(st.booleans()):
            packet[draw(st.integers(0, len(packet) - 1))] = draw(st.integers(0, 255))
        else:
            del packet[draw(st.integers(0, len(packet))):]
    return packet


@st.composite
def rtcp_packets(draw, ssrcs: tuple[int, ...]) -> bytes:
    """A compound RTCP packet of what receivers and bridges send (PLI, FIR, NACK, REMB, RR, SR,
    transport-cc feedback, SDES, BYE, the relays' APP), about `ssrcs` or any SSRC; then mutated."""
    ssrc = st.one_of(st.sampled_from(ssrcs), st.integers(0, 0xFFFFFFFF))
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 10))
        if kind == 0:
            parts.append(rtp.build_pli(draw(ssrc), draw(ssrc)))
        elif kind == 1:
            parts.append(rtp.build_fir(draw(ssrc), draw(ssrc), draw(st.integers(0, 255))))
        elif kind == 2:
            parts.append(rtp.build_nack(draw(ssrc), draw(ssrc), draw(st.lists(st.integers(0, 0xFFFF), min_size=1,
                                                                              max_size=40))))
        elif kind == 3:
            parts.append(rtp.build_remb(draw(ssrc), draw(st.integers(0, 2 ** 40)), draw(st.lists(ssrc, max_size=5))))
        elif kind == 4:
            blocks = [rtp.ReportBlock(draw(ssrc), draw(st.integers(0, 255)), draw(st.integers(-2 ** 23, 2 ** 23)),
                                      draw(st.integers(0, 2 ** 32 - 1)), 0, 0, 0)
                      for _ in range(draw(st.integers(0, 3)))]
            parts.append(rtp.build_receiver_report(draw(ssrc), blocks))
        elif kind == 5:  # SR: header, sender info, no blocks
            parts.append(struct.pack("!BBHIIIIII", 0x80, rtp.RTCP_SR, 6, draw(ssrc), 1, 2,
                                     draw(st.integers(0, 2 ** 32 - 1)), 3, 4))
        elif kind == 6:
            arrivals = draw(st.lists(st.one_of(st.none(), st.integers(0, 10 ** 7)), min_size=1, max_size=300))
            try:
                parts.append(twcc.build_feedback(draw(ssrc), draw(ssrc), draw(st.integers(0, 0xFFFF)),
                                                 draw(st.integers(0, 255)), arrivals))
            except ValueError:  # nothing received, or a gap over 8 s: the builder's documented refusal
                pass
        elif kind == 7:  # SDES with a CNAME
            cname = draw(st.binary(max_size=20))
            chunk = struct.pack("!I", draw(ssrc)) + bytes([1, len(cname)]) + cname + b"\x00"
            chunk += b"\x00" * (-len(chunk) % 4)
            parts.append(struct.pack("!BBH", 0x81, rtp.RTCP_SDES, len(chunk) // 4) + chunk)
        elif kind == 8:
            parts.append(struct.pack("!BBHI", 0x81, rtp.RTCP_BYE, 1, draw(ssrc)))
        elif kind == 9:  # the relays' "wanted" APP packet
            wanted = draw(st.lists(ssrc, max_size=6))
            parts.append(struct.pack("!BBHI4s", 0x80, rtp.RTCP_APP, 2 + len(wanted), draw(ssrc), WANTED_NAME)
                         + b"".join(struct.pack("!I", s) for s in wanted))
        else:
            parts.append(draw(st.binary(min_size=4, max_size=60)))
    return bytes(mutate(draw, bytearray(b"".join(parts))))


any_ssrc = (AUDIO, CAMERA, CAROL_AUDIO, CAROL_VIDEO) + LAYERS + RTX


# ---- the readers -----------------------------------------------------------------------------------
def read_rtp(data: bytes) -> None:
    """Everything the receive path reads of one packet (after `is_rtp`, as it does)."""
    if not rtp.is_rtp(data):
        return
    rtp.rtp_ssrc(data), rtp.rtp_seq(data), rtp.rtp_timestamp(data), rtp.rtp_payload_type(data), rtp.rtp_marker(data)
    for ext_id in (0, 1, 3, 5, 14, 15, 16, 255, 256):
        rtp.header_extension(data, ext_id)
        rtp.header_extension(memoryview(data), ext_id)
        rtp.audio_level(data, ext_id)
        twcc.read_transport_seq(data, ext_id)
        assert twcc.write_transport_seq(bytearray(data), ext_id, 7) == (twcc.find_transport_seq(data, ext_id) >= 0)
    off = rtp.payload_offset(data)
    rtp.padding_only(data)
    unwrapped = rtp.unwrap_rtx(data, 0x1234, VP8_PT)
    assert unwrapped is None or rtp.rtp_ssrc(unwrapped) == 0x1234
    end = vp8.payload_end(data)
    for start in ({off, 0, len(data) - 1, len(data), -1} if off is not None else {0, -1}):
        for stop in (end, None, 0):
            d = vp8.parse(data, start, stop)
            assert d is None or 0 < d.size <= len(data)
            vp8.is_keyframe(data, start, stop)
            vp8.keyframe_size(data, start, stop)
            buf = bytearray(data)
            vp8.rewrite(buf, start, 0x7FFF, 0xFF, stop)
            assert len(buf) == len(data)
    buf = bytearray(data)
    rtp.rewrite_rtp(buf, 1, 2, 3)
    assert len(buf) == len(data)


def read_rtcp(data: bytes) -> None:
    """Everything the bridge reads of a compound RTCP packet."""
    walked = 0
    for pt, fmt, off, length in rtp.iter_rtcp(data):
        walked += length
        assert off + length <= len(data)
        rtp.rtcp_sender_ssrc(data, off), rtp.rtcp_media_ssrc(data, off)
        list(rtp.iter_fir(data, off, length))
        rtp.parse_remb(data, off, length)
        rtp.parse_report_blocks(data, off, length)
        rtp.parse_nack(data, off, length)
        fb = twcc.parse_feedback(data, off, length)
        assert fb is None or len(fb.arrivals) <= 0xFFFF
        parse_wanted(data, off, length)
    assert walked <= len(data)
    buf = bytearray(data)
    if not rtp.rewrite_rtcp_ssrcs(buf, lambda s: s ^ 0x5A5A5A5A):
        assert buf == data  # untouched when it cannot rewrite
    rtp.rewrite_rtcp_ssrcs(bytearray(data), lambda s: None)


@budget(400)
@given(data=st.one_of(st.binary(max_size=1500), rtp_packets(any_ssrc)))
@example(data=b"")
@example(data=b"\xa0" + bytes(11))  # padding bit, pad count 0
@example(data=b"\x90\x00" + bytes(10) + b"\xbe\xde\xff\xff")  # extension longer than the packet
def test_rtp_readers(data):
    with watchdog():
        read_rtp(data)


@budget(400)
@given(data=st.one_of(st.binary(max_size=1500), rtcp_packets(any_ssrc)))
@example(data=b"\x80\xcd\x00\x04" + bytes(12) + b"\x00\x05" + b"\xff\xff" + bytes(4) + b"\x00\x00")
def test_rtcp_readers(data):
    with watchdog():
        read_rtcp(data)


@budget(150)
@given(data=st.binary(max_size=200), off=st.integers(-40, 240), length=st.integers(-40, 400))
def test_rtcp_readers_at_any_offset(data, off, length):
    """The packet readers are public: whatever offset and length they are given, no exception."""
    with watchdog():
        rtp.rtcp_sender_ssrc(data, off), rtp.rtcp_media_ssrc(data, off)
        list(rtp.iter_fir(data, off, length))
        rtp.parse_remb(data, off, length), rtp.parse_report_blocks(data, off, length)
        rtp.parse_nack(data, off, length), twcc.parse_feedback(data, off, length), parse_wanted(data, off, length)


# ---- a real conference without sockets -------------------------------------------------------------
class Wire:
    """The network side of an endpoint's transport: what the bridge would send."""

    state = "connected"
    last_received = 0.0

    def __init__(self) -> None:
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []
        self.stats = {"undecryptable": 0, "packets_in": 0, "packets_out": 0}

    def send_rtp(self, data: bytes) -> None:
        assert rtp.is_rtp(data)
        self.rtp.append(data)

    def send_rtcp(self, data: bytes) -> None:
        assert rtp.is_rtcp(data)
        self.rtcp.append(data)

    def refresh_pair(self) -> None:
        pass


def conference(media: list[Media] | None = None) -> tuple[Bridge, Conference, Endpoint, Endpoint]:
    """alice sends audio, a camera and a three-layer simulcast source with RTX; bob receives;
    carol sends audio and video over the relay from jvb2, which wants alice's camera."""
    bridge = Bridge(BridgeSection(id="jvbfuzz", last_n=2, audio_slots=1, endpoint_timeout=60))
    conf = Conference(bridge, "fuzz")
    bridge.conferences[conf.meeting_id] = conf
    taken: set[int] = set()
    alice, bob = Endpoint(conf, "alice"), Endpoint(conf, "bob")
    for ep in (alice, bob):
        ep.set_media(media if media is not None else default_media())
        ep.make_slots(1, 2, taken)
        ep.transport = Wire()  # type: ignore[assignment]
        ep.channel_send = lambda text, sent=[]: sent.append(json.loads(text))  # type: ignore[misc]
        conf.add(ep)
    alice.set_sources([Source(AUDIO, "audio", "alice", "alice-a0"), Source(CAMERA, "video", "alice", "alice-v1")]
                      + [Source(s, "video", "alice", "alice-v0") for s in LAYERS + RTX],
                      [SourceGroup("SIM", list(LAYERS))] + [SourceGroup("FID", [m, r]) for m, r in zip(LAYERS, RTX)])
    relay = Relay(conf, "jvb2", Wire())
    conf.add_relay(relay)
    carol = Endpoint(conf, "carol")
    carol.relay = relay
    relay.endpoints.add(carol.id)
    conf.add(carol)
    carol.set_media(media if media is not None else default_media())
    carol.set_sources([Source(CAROL_AUDIO, "audio", "carol", "carol-a0"),
                       Source(CAROL_VIDEO, "video", "carol", "carol-v0")], [])
    relay.wanted = frozenset({CAMERA})
    conf.reassign()
    return bridge, conf, alice, bob


async def _receive(bridge: Bridge, conf: Conference, alice: Endpoint, bob: Endpoint,
                   packets: list[tuple[str, bytes]]) -> None:
    """Datagrams from alice or bob as their transport hands them on once decrypted: SRTP and
    SRTCP only (first byte 128..191, RFC 7983), told apart by `rtp.is_rtcp`."""
    for who, data in packets:
        if not data or not 127 < data[0] < 192:
            continue  # STUN, DTLS or nothing: never reaches the conference
        if who == "relay":
            relay = conf.relays["jvb2"]
            if rtp.is_rtcp(data):
                conf.on_relay_rtcp(relay, data)
            else:
                conf.on_relay_rtp(relay, data)
            continue
        sender = alice if who in ("rtp", "rtcp-from-sender") else bob
        if rtp.is_rtcp(data):
            conf.on_rtcp(sender, data)
        else:
            conf.on_rtp(sender, data)
    # the periodic work that reads what the packets left behind
    conf.measure()
    conf.tick()
    for ep in (alice, bob):
        for ssrc, st_ in ep.stream_stats.items():
            if st_.started:
                rtp.build_receiver_report(1, [st_.report(ssrc)])
        bridge.send_tcc_feedback(ep)
        ep.stats()
    conf.stats()
    bridge.stats()


def run(coro) -> None:
    """On an event loop, as the bridge runs (NACK retries are timers); timers left are dropped."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(coro)
    finally:
        loop.close()


@budget(80)
@given(data=st.data())
def test_receive_path(data):
    bridge, conf, alice, bob = conference()
    slot_ssrcs = tuple(bob.slot_by_out) + tuple(alice.slot_by_out)
    bursts = data.draw(st.lists(st.one_of(
        rtp_streams(any_ssrc).map(lambda ps: [("rtp", p) for p in ps]),
        st.tuples(st.just("rtp"), st.one_of(rtp_packets(any_ssrc), st.binary(max_size=300))).map(lambda p: [p]),
        st.tuples(st.sampled_from(["rtcp", "rtcp-from-sender", "relay"]),
                  st.one_of(rtcp_packets(slot_ssrcs + any_ssrc), st.binary(max_size=200))).map(lambda p: [p]),
        rtp_streams((CAROL_AUDIO, CAROL_VIDEO, CAMERA)).map(lambda ps: [("relay", p) for p in ps])),
        max_size=8))
    packets = [p for burst in bursts for p in burst]
    with watchdog():
        run(_receive(bridge, conf, alice, bob, packets))
    for wire in (alice.transport, bob.transport):
        assert all(rtp.is_rtp(p) for p in wire.rtp) and all(rtp.is_rtcp(p) for p in wire.rtcp)
    # what bob gets is on its slots' SSRCs only: nothing of alice's leaks through unrewritten
    assert {rtp.rtp_ssrc(p) for p in bob.transport.rtp} <= set(bob.slot_by_out)


# ---- COLIBRI2 as the bridge applies it -------------------------------------------------------------
params = st.dictionaries(st.sampled_from(["apt", "minptime", "x"]),
                         st.one_of(st.sampled_from(["100", "96", "²", "٣", "99999", "-1", ""]), st.text(max_size=5)),
                         max_size=2)
payload_types = st.builds(PayloadType, id=st.integers(0, 127), name=st.sampled_from(["VP8", "rtx", "opus", "RTX", "x"]),
                          clockrate=st.integers(0, 2 ** 32 - 1), channels=st.integers(1, 255), parameters=params)


@budget(80)
@given(pts=st.lists(payload_types, max_size=4), more=st.lists(rtp_packets((RTX[0], LAYERS[0])), max_size=6))
@example(pts=[PayloadType(96, "rtx", 90000, parameters={"apt": "²"})], more=[])  # isdigit() but not int()
@example(pts=[PayloadType(96, "rtx", 90000, parameters={"apt": "99999"})], more=[])  # no payload type
def test_media_from_colibri2(pts, more):
    """Payload types as COLIBRI2 parsing lets them through, applied to an endpoint; then RTX
    packets of each payload type arrive."""
    media = [Media("video", pts + default_media()[1].payload_types[:1], default_media()[1].header_extensions)]
    with watchdog():
        bridge, conf, alice, bob = conference(media)
        packets = [struct.pack("!BBHII", 0x80, pt.id, 1, 2, RTX[0]) + b"\x00\x05" + b"\x10" * 20 for pt in pts]
        run(_receive(bridge, conf, alice, bob, [("rtp", p) for p in packets + more]))


# ---- the bridge channel ------------------------------------------------------------------------------
CLASSES = ["EndpointMessage", "LastNChangedEvent", "LastN", "ReceiverVideoConstraints", "ClientHello", "Other", None]
KEYS = ["colibriClass", "to", "from", "lastN", "defaultConstraints", "constraints", "maxHeight", "onStageSources",
        "onStageEndpoints", "selectedSources", "selectedEndpoints", "msgPayload", "alice", "alice-v0", "bob"]


def _json_containers(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(), st.text(max_size=10),
              st.sampled_from(KEYS + ["alice-v0", "bob"])),
    _json_containers, max_leaves=15)
messages = st.builds(lambda cls, rest: {**rest, "colibriClass": cls} if cls is not None else rest,
                     st.sampled_from(CLASSES), st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6))


def _channel(texts: list[str | dict]) -> list[dict]:
    """Text through `handle_text` as the WebSocket and the data channel hand it on; a dict
    straight to `handle_message`, so that an exception in it is not hidden by the catch-all."""
    bridge, conf, alice, bob = conference()
    replies: list[dict] = []
    alice.channel_send = lambda text: replies.append(json.loads(text))  # type: ignore[assignment]
    for text in texts:
        if isinstance(text, dict):
            handle_message(alice, text)
        else:
            handle_text(alice, text)
    conf.tick()
    return replies


@budget(150)
@given(msgs=st.lists(st.one_of(messages, messages, json_values), min_size=1, max_size=5))
@example(msgs=[{"colibriClass": "EndpointMessage", "to": ["bob"]}])  # unhashable 'to': TypeError
@example(msgs=[{"colibriClass": "LastN", "lastN": math.inf}])  # int(inf): OverflowError
@example(msgs=[{"colibriClass": "ReceiverVideoConstraints", "defaultConstraints": {"maxHeight": math.nan}}])
@example(msgs=[{"colibriClass": "ReceiverVideoConstraints", "constraints": {"bob": {"maxHeight": -math.inf}}}])
@example(msgs=[{"colibriClass": "ReceiverVideoConstraints", "defaultConstraints": {"maxHeight": 10 ** 400}}])
def test_channel_messages(msgs):
    with watchdog():
        run(_as_coro(_channel, [json.loads(json.dumps(m)) if isinstance(m, dict) else json.dumps(m) for m in msgs]))


@budget(150)
@given(texts=st.lists(st.one_of(st.text(max_size=100), st.binary(max_size=100).map(lambda b: b.decode("latin-1"))),
                      min_size=1, max_size=4))
@example(texts=["NaN", "[", "1e999", "{\"colibriClass\": \"LastN\", \"lastN\": 1e999}", "9" * 5000])
@example(texts=["[" * 60_000])  # RecursionError out of json.loads
def test_channel_text(texts):
    replies: list[dict] = []
    with watchdog():
        run(_as_coro(lambda: replies.extend(_channel(texts))))
    assert all(isinstance(r, dict) and "colibriClass" in r for r in replies)


async def _as_coro(fn, *args) -> None:
    fn(*args)


def test_channel_answers_garbage_with_an_error():
    replies = []
    run(_as_coro(lambda: replies.extend(_channel(["not json", "[1]", json.dumps({"colibriClass": "ClientHello"})]))))
    assert [r["colibriClass"] for r in replies] == ["Error", "Error", "ServerHello"]


class DataChannel:
    """aiortc's RTCDataChannel as the bridge uses it: event handlers, state, send."""

    readyState = "open"
    bufferedAmount = 0
    label = "JVB data channel"
    protocol = "http://jitsi.org/protocols/colibri"

    def __init__(self) -> None:
        self.handlers: dict[str, object] = {}
        self.sent: list[str] = []

    def on(self, event: str, handler) -> None:
        self.handlers[event] = handler

    def send(self, text: str) -> None:
        self.sent.append(text)

    def close(self) -> None:
        self.readyState = "closed"


@budget(100)
@given(texts=st.lists(st.one_of(st.text(max_size=80), st.binary(max_size=80), messages.map(json.dumps),
                                   st.builds(lambda to, m: json.dumps({"colibriClass": "EndpointMessage", "to": to,
                                                                       "from": "carol", "msgPayload": m}),
                                             json_values, json_values)),
                         min_size=1, max_size=4))
@example(texts=[b"\xff\xfe{", json.dumps({"colibriClass": "EndpointMessage", "to": ["bob"]})])
@example(texts=["[" * 60_000])
def test_data_channels(texts):
    """Messages on an endpoint's data channel and on the relay's, as aiortc's receive loop
    hands them on: nothing may raise into that loop."""
    async def go() -> None:
        bridge, conf, alice, bob = conference()
        mine, theirs = DataChannel(), DataChannel()
        data_channel(alice, mine)
        relay_channel(conf.relays["jvb2"], theirs)
        for m in texts:
            mine.handlers["message"](m)
            theirs.handlers["message"](m)
        assert all(isinstance(json.loads(t), dict) for t in mine.sent)
    with watchdog():
        run(go())
