"""bridge.transport.EndpointTransport against a real aiortc RTCPeerConnection on 127.0.0.1.

The bridge side offers (ICE controlling, DTLS actpass -> server), the client answers (active).
The bridge echoes every RTP packet back with its SSRC rewritten in place to the SSRC announced
for that kind in the offer; the client must decode frames on both remote tracks. Garbage
datagrams sent to the bridge's port must not break the flow.
"""
from __future__ import annotations

import asyncio
import inspect
import os
import socket
import struct
import time
from collections import Counter

import pytest

from conftest import until
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from aiortc.sdp import SessionDescription

from bridge.transport import EndpointTransport, host_addresses_override, shared_certificate
from jitsi_protocols.model import Candidate, Fingerprint, IceTransport

AUDIO_PT, VIDEO_PT = 111, 100
BRIDGE_SSRC = {"audio": 0x0A0A0A0A, "video": 0x0B0B0B0B}
RECV_TIMEOUT = 5.0


def candidate_line(c: Candidate) -> str:
    line = (f"a=candidate:{c.foundation} {c.component} {c.protocol} {c.priority}"
            f" {c.ip} {c.port} typ {c.type}")
    if c.rel_addr is not None:
        line += f" raddr {c.rel_addr} rport {c.rel_port}"
    return line


def build_offer(local: IceTransport) -> str:
    """Bridge offer: BUNDLE audio+video, rtcp-mux, actpass, one bridge SSRC per m-section."""
    fp = local.fingerprints[0]
    lines = ["v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
             "a=group:BUNDLE 0 1", "a=msid-semantic: WMS bridge"]
    sections = [("audio", AUDIO_PT, [f"a=rtpmap:{AUDIO_PT} opus/48000/2",
                                     f"a=fmtp:{AUDIO_PT} minptime=10;useinbandfec=1"]),
                ("video", VIDEO_PT, [f"a=rtpmap:{VIDEO_PT} VP8/90000",
                                     f"a=rtcp-fb:{VIDEO_PT} nack",
                                     f"a=rtcp-fb:{VIDEO_PT} nack pli",
                                     f"a=rtcp-fb:{VIDEO_PT} ccm fir"])]
    for mid, (kind, pt, codec_lines) in enumerate(sections):
        lines += [f"m={kind} 9 UDP/TLS/RTP/SAVPF {pt}", "c=IN IP4 0.0.0.0",
                  f"a=ice-ufrag:{local.ufrag}", f"a=ice-pwd:{local.pwd}",
                  f"a=fingerprint:{fp.hash} {fp.value}", f"a=setup:{fp.setup}",
                  f"a=mid:{mid}", "a=sendrecv", "a=rtcp-mux", *codec_lines,
                  f"a=msid:bridge {kind}-0",
                  f"a=ssrc:{BRIDGE_SSRC[kind]} cname:bridge"]
        lines += [candidate_line(c) for c in local.candidates]
        lines.append("a=end-of-candidates")
    return "\r\n".join(lines) + "\r\n"


def parse_answer(sdp: str) -> IceTransport:
    desc = SessionDescription.parse(sdp)
    media = desc.media[0]  # BUNDLE: the first m-section carries the transport
    setup = {"client": "active", "server": "passive"}.get(media.dtls.role, "actpass")
    return IceTransport(
        ufrag=media.ice.usernameFragment,
        pwd=media.ice.password,
        fingerprints=[Fingerprint(f.algorithm, f.value, setup) for f in media.dtls.fingerprints],
        candidates=[Candidate(foundation=c.foundation, component=c.component,
                              protocol=c.protocol, priority=c.priority, ip=c.ip, port=c.port,
                              type=c.type, rel_addr=c.relatedAddress, rel_port=c.relatedPort)
                    for c in media.ice_candidates],
    )


def rtcp_kinds(data: bytes) -> list[str]:
    """Names of the packets in a compound RTCP packet, e.g. ['SR', 'SDES'], ['PSFB/PLI']."""
    names = {200: "SR", 201: "RR", 202: "SDES", 203: "BYE", 204: "APP", 205: "RTPFB",
             206: "PSFB"}
    fb = {(205, 1): "NACK", (205, 15): "TWCC", (206, 1): "PLI", (206, 4): "FIR",
          (206, 15): "REMB/AFB"}
    out, off = [], 0
    while off + 4 <= len(data):
        fmt, pt = data[off] & 0x1F, data[off + 1]
        name = names.get(pt, str(pt))
        if pt in (205, 206):
            name += "/" + fb.get((pt, fmt), str(fmt))
        out.append(name)
        off += (struct.unpack_from("!H", data, off + 2)[0] + 1) * 4
    return out


def rtcp_subpackets(data: bytes):
    off = 0
    while off + 4 <= len(data):
        end = off + (struct.unpack_from("!H", data, off + 2)[0] + 1) * 4
        yield data[off:end]
        off = end


async def recv_frames(track, n: int) -> list:
    return [await asyncio.wait_for(track.recv(), RECV_TIMEOUT) for _ in range(n)]


async def test_echo_through_bridge_transport_to_aiortc_client():
    rtcp_seen: Counter = Counter()
    client_ssrc: dict[str, int] = {}
    states: list[str] = []
    transport: EndpointTransport

    def on_rtp(data: bytes) -> None:
        assert type(data) is bytes
        pt = data[1] & 0x7F
        kind = "audio" if pt == AUDIO_PT else "video" if pt == VIDEO_PT else None
        if kind is None:
            return
        client_ssrc[kind] = struct.unpack_from("!I", data, 8)[0]
        packet = bytearray(data)
        struct.pack_into("!I", packet, 8, BRIDGE_SSRC[kind])
        transport.send_rtp(bytes(packet))

    rtcp_reports = asyncio.Event()

    def on_rtcp(data: bytes) -> None:
        assert type(data) is bytes
        rtcp_seen.update(rtcp_kinds(data))
        if rtcp_seen["SR"] and rtcp_seen["RR"]:
            rtcp_reports.set()
        # Hand PLI/FIR for our video SSRC to the client's real sender (what an SFU does), which
        # also exercises send_rtcp.
        for sub in rtcp_subpackets(data):
            if sub[1] == 206 and len(sub) >= 12 and "video" in client_ssrc:
                if struct.unpack_from("!I", sub, 8)[0] == BRIDGE_SSRC["video"]:
                    fixed = bytearray(sub)
                    struct.pack_into("!I", fixed, 8, client_ssrc["video"])
                    transport.send_rtcp(bytes(fixed))

    at_connected: list[tuple[int, float]] = []

    def on_state(state: str) -> None:
        states.append(state)
        if state == "connected":  # called before the DTLS receive loop handled any media
            at_connected.append((transport.stats["packets_in"], transport.last_received))

    transport = EndpointTransport("127.0.0.1", on_rtp, on_rtcp,
                                  certificate=shared_certificate(), on_state=on_state)
    created = transport.last_received
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    garbage = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert transport.state == "new"
        transport.send_rtp(b"\x80" + bytes(20))  # not connected: counted, dropped
        assert transport.stats["dropped"] == 1 and transport.stats["packets_out"] == 0

        await transport.gather()
        local = transport.local_description()
        port = local.candidates[0].port
        # An empty datagram before ICE completes (no source filter yet) is dropped too: aiortc
        # would otherwise queue it and die on data[0] in the DTLS handshake (IndexError).
        garbage.sendto(b"", ("127.0.0.1", port))
        await until(lambda: transport.stats["rejected"] >= 1, what="the empty datagram to be rejected")
        assert transport.stats["rejected"] == 1
        assert local.candidates and all(c.ip == "127.0.0.1" and c.type == "host"
                                        for c in local.candidates)
        assert local.fingerprints[0].hash == "sha-256"
        assert local.fingerprints[0].setup == "actpass"
        assert len(local.ufrag) >= 4 and len(local.pwd) >= 22

        await pc.setRemoteDescription(RTCSessionDescription(build_offer(local), "offer"))
        pc.addTrack(AudioStreamTrack())
        pc.addTrack(VideoStreamTrack())
        answer = await pc.createAnswer()
        # The client gathers on loopback too (this sandbox may have no routable interface).
        with host_addresses_override(["127.0.0.1"]):
            await pc.setLocalDescription(answer)
        remote = parse_answer(pc.localDescription.sdp)
        assert remote.fingerprints[0].setup == "active"

        t0 = time.monotonic()
        await transport.start(remote)
        assert transport.state == "connected"
        assert states == ["connecting", "connected"]
        # authenticated STUN checks (no media yet) already count as "received"
        assert at_connected[0][0] == 0 and at_connected[0][1] > created
        connect_time = time.monotonic() - t0

        tracks = {t.receiver.track.kind: t.receiver.track for t in pc.getTransceivers()}
        audio = await recv_frames(tracks["audio"], 10)
        video = await recv_frames(tracks["video"], 5)
        assert audio[0].sample_rate == 48000
        assert video[0].width == 640 and video[0].height == 480

        stats1 = dict(transport.stats)
        assert stats1["packets_in"] > 0 and stats1["packets_out"] > 0
        assert stats1["bytes_in"] > 0 and stats1["bytes_out"] > 0
        assert time.monotonic() - transport.last_received < 1.0

        # Garbage from an unrelated socket to the bridge's port.
        junk = [
            b"\x47" + os.urandom(299),
            b"\x80" + os.urandom(299),  # looks like SRTP, fails authentication
            b"\x80\xc8" + os.urandom(98),  # looks like SRTCP
            b"\x80\x6f\x00",  # truncated RTP header
            b"\x80",
            # fake DTLS records: handshake (epoch 0), alert (epoch 0 and 1), app data (epoch 1)
            b"\x16\xfe\xfd\x00\x00" + bytes(6) + b"\x00\x0c" + b"\x01" + os.urandom(11),
            b"\x15\xfe\xfd\x00\x00" + b"\x00\x00\x00\x00\x00\x63" + b"\x00\x02\x02\x28",
            b"\x15\xfe\xfd\x00\x01" + b"\x00\x00\x00\x00\x00\x63" + b"\x00\x02\x01\x00",
            b"\x17\xfe\xfd\x00\x01" + b"\x00\x00\x00\x00\x00\x63" + b"\x00\x20" + os.urandom(32),
            b"\x00\x01\x00\x00" + os.urandom(16),  # STUN-looking, broken
        ]
        for data in junk + [b""]:
            garbage.sendto(data, ("127.0.0.1", port))
        # The same junk from the client's own ICE socket (a buggy or hostile peer): it passes
        # the source filter and goes through aiortc's demux / unprotect / DTLS record layer.
        client_ice = pc.getTransceivers()[0].sender.transport.transport._connection
        client_pair = client_ice._nominated[1]
        for data in junk:
            client_pair.protocol.transport.sendto(data, client_pair.remote_addr)
        # stranger: all but the STUN-looking one rejected before aioice; peer's: none
        await until(lambda: transport.stats["rejected"] >= 1 + len(junk) - 1 + 1, what="the junk to be rejected")
        assert transport.stats["rejected"] == 1 + len(junk) - 1 + 1

        audio = await recv_frames(tracks["audio"], 10)
        video = await recv_frames(tracks["video"], 5)
        assert transport.state == "connected"

        # Once connected, media from the peer is unprotected as the datagram arrives, not queued
        # for aiortc's receive loop: a burst of (here undecryptable) SRTP and SRTCP is handled
        # and counted before datagram_received returns; the session goes on.
        protocol = next(p for p in transport._connection._protocols if p.transport is not None)
        queue = transport._connection._queue
        before = transport.stats["undecryptable"]
        for i in range(300):
            protocol.datagram_received((b"\x80\x6f" if i % 2 else b"\x80\xc8") + os.urandom(98), transport._source)
        assert transport.stats["undecryptable"] == before + 300
        assert queue.qsize() == 0
        audio = await recv_frames(tracks["audio"], 10)
        video = await recv_frames(tracks["video"], 5)
        assert transport.state == "connected"
        # aiortc sends SR+SDES per sender and RR per receiver every 0.5-1.5 s
        await asyncio.wait_for(rtcp_reports.wait(), 5)
        stats2 = dict(transport.stats)
        assert stats2["packets_in"] > stats1["packets_in"]
        assert stats2["packets_out"] > stats1["packets_out"]
        assert stats2["bytes_out"] > stats1["bytes_out"]
        print(f"\nconnected in {connect_time:.3f} s; stats {stats2}; "
              f"client RTCP seen by bridge: {dict(rtcp_seen)}")
    finally:
        garbage.close()
        await pc.close()
        await transport.stop()
    assert transport.state == "closed"
    assert states[-1] == "closed"
    transport.send_rtp(b"\x80" + bytes(20))
    assert transport.stats["dropped"] >= 2


async def test_start_times_out_without_peer():
    transport = EndpointTransport("127.0.0.1", lambda d: None, lambda d: None)
    transport.start_timeout = 0.5
    await transport.gather()
    remote = IceTransport(ufrag="abcd", pwd="a" * 22,
                          fingerprints=[Fingerprint("sha-256", "00:" * 31 + "00", "active")],
                          candidates=[Candidate("1", 1, "udp", 2130706431, "127.0.0.1", 9, "host")])
    with pytest.raises(ConnectionError):
        await transport.start(remote)
    assert transport.state == "failed"
    await transport.stop()
    assert transport.state == "closed"


def test_private_aiortc_names_exist():
    """The private aiortc/aioice names bridge.transport relies on (fails loudly on upgrade)."""
    import aioice.ice
    from aiortc.rtcdtlstransport import RTCDtlsTransport
    from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport

    for name in ("_handle_rtp_data", "_handle_rtcp_data", "_set_role", "_recv_next",
                 "_setup_srtp"):
        assert callable(getattr(RTCDtlsTransport, name, None)), name
    assert list(inspect.signature(RTCDtlsTransport._handle_rtp_data).parameters) == [
        "self", "data", "arrival_time_ms"]
    assert list(inspect.signature(RTCDtlsTransport._handle_rtcp_data).parameters) == [
        "self", "data"]
    # _recv_next must still hand the decrypted bytes to the two hooks
    src = inspect.getsource(RTCDtlsTransport._recv_next)
    assert "self._handle_rtp_data(" in src and "self._handle_rtcp_data(" in src
    assert "self._tx_srtp = Session(" in inspect.getsource(RTCDtlsTransport._setup_srtp)

    gatherer = RTCIceGatherer(iceServers=[])
    connection = gatherer._connection
    assert isinstance(connection, aioice.Connection)
    assert connection.ice_controlling is False
    assert isinstance(connection._nominated, dict)
    assert callable(connection.check_incoming)
    assert "self.check_incoming(" in inspect.getsource(aioice.Connection.request_received)
    ice = RTCIceTransport(gatherer)
    dtls = RTCDtlsTransport(ice, [shared_certificate()])
    assert dtls._role == "auto" and dtls._tx_srtp is None
    assert "remote_addr" in dir(aioice.ice.CandidatePair)
    assert "self.protocol = protocol" in inspect.getsource(aioice.ice.CandidatePair.__init__)
    assert "_protocols" in vars(connection)
    assert isinstance(connection._queue, asyncio.Queue)
    assert list(inspect.signature(aioice.Connection.get_component_candidates).parameters) == [
        "self", "component", "addresses", "timeout"]
    assert "self.get_component_candidates(" in inspect.getsource(aioice.Connection.gather_candidates)
    assert callable(aioice.ice.StunProtocol) and "local_candidate" in inspect.getsource(aioice.ice.StunProtocol)
    assert "self._rx_srtp = Session(" in inspect.getsource(RTCDtlsTransport._setup_srtp)
    assert "self._queue.put_nowait((data, component))" in inspect.getsource(aioice.Connection.data_received)
    assert "self.receiver.data_received(" in inspect.getsource(
        aioice.ice.StunProtocol.datagram_received)
    assert "transport.sendto(" in inspect.getsource(aioice.ice.StunProtocol.send_data)
    assert "get_host_addresses(" in inspect.getsource(aioice.Connection.gather_candidates)
    assert callable(aioice.ice.get_host_addresses)

    # SCTP (bridge channel over a data channel): EndpointTransport._start_sctp runs in the task
    # that awaited RTCDtlsTransport.start, which must only have scheduled the receive loop; and
    # RTCSctpTransport.start must become the DTLS data receiver before it first awaits, or the
    # peer's first SCTP packet can be dropped (aiortc drops application data with no receiver).
    from aiortc.rtcsctptransport import RTCSctpTransport
    src = inspect.getsource(RTCDtlsTransport.start)
    assert "self._task = asyncio.ensure_future(self.__run())" in src
    assert src.rindex("ensure_future(self.__run())") > src.rindex("await ")
    src = inspect.getsource(RTCSctpTransport.start)
    assert "self.__transport._register_data_receiver(self)" in src
    assert src.index("_register_data_receiver(self)") < src.index("await ")
    assert "elif data and self._data_receiver:" in inspect.getsource(RTCDtlsTransport._recv_next)
    assert "self.transport._role" in inspect.getsource(RTCSctpTransport.is_server.fget)


async def test_start_fails_on_fingerprint_mismatch():
    transport = EndpointTransport("127.0.0.1", lambda d: None, lambda d: None)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        await transport.gather()
        await pc.setRemoteDescription(
            RTCSessionDescription(build_offer(transport.local_description()), "offer"))
        pc.addTrack(AudioStreamTrack())
        answer = await pc.createAnswer()
        with host_addresses_override(["127.0.0.1"]):
            await pc.setLocalDescription(answer)
        remote = parse_answer(pc.localDescription.sdp)
        remote.fingerprints = [Fingerprint("sha-256", "AB:" * 31 + "AB", "active")]
        with pytest.raises(ConnectionError, match="DTLS"):
            await transport.start(remote)
        assert transport.state == "failed"
        transport.send_rtp(b"\x80" + bytes(20))
        assert transport.stats["dropped"] == 1
    finally:
        await pc.close()
        await transport.stop()


async def test_media_ports_come_from_the_configured_range():
    """One port per transport, round-robin in the range, skipping one in use; an exhausted range
    is a clear error. Behind NAT the public address is advertised too, on the same port."""
    from bridge.transport import PortRange
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    low = busy.getsockname()[1]  # a port taken by someone else: the first of our range
    ports = PortRange(low, low + 2)
    transports = [EndpointTransport("127.0.0.1", lambda d: None, lambda d: None, ports=ports,
                                    public_address="203.0.113.7") for _ in range(3)]
    try:
        for t in transports[:2]:
            await t.gather()
        got = [t.local_description().candidates for t in transports[:2]]
        assert [c[0].port for c in got] == [low + 1, low + 2]
        for cands in got:
            host, public = cands
            assert (host.type, host.ip) == ("host", "127.0.0.1")
            assert (public.type, public.ip, public.port) == ("srflx", "203.0.113.7", host.port)
            assert (public.rel_addr, public.rel_port) == ("127.0.0.1", host.port) and public.priority < host.priority
        with pytest.raises(OSError, match=f"no free UDP port in {low}-{low + 2} on 127.0.0.1"):
            await transports[2].gather()
    finally:
        busy.close()
        for t in transports:
            await t.stop()
