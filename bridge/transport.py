"""Media transport of one bridge endpoint: ICE + DTLS-SRTP, raw RTP/RTCP in and out.

Built from aiortc's ORTC-level classes (``RTCIceGatherer``, ``RTCIceTransport``,
``RTCDtlsTransport``), never ``RTCPeerConnection``: the bridge forwards packets, it does not
decode them. A subclass of ``RTCDtlsTransport`` overrides the two per-packet hooks that
``RTCDtlsTransport._recv_next`` awaits after SRTP unprotect, so the decrypted bytes go straight
to our callbacks without ``RtpPacket.parse`` or aiortc's ``RtpRouter``.

Roles: the bridge's transport goes into the OFFER (the focus puts it in Jingle session-initiate)
and clients answer, so the bridge is ICE-controlling and advertises ``setup=actpass``. Answerers
say ``active``, which makes the bridge the DTLS server (a ``passive`` answer makes it the client).

Private aiortc/aioice names relied on (aiortc==1.16.0, aioice 0.13; checked by
``tests/test_bridge_transport.py::test_private_aiortc_names_exist``):

- ``RTCDtlsTransport._handle_rtp_data(data, arrival_time_ms)`` and
  ``._handle_rtcp_data(data)`` (overridden), ``._set_role(role)``, ``._tx_srtp`` and
  ``._rx_srtp`` (``pylibsrtp.Session``s created by ``_setup_srtp`` once the handshake is done).
- ``RTCIceGatherer._connection`` (the ``aioice.Connection``); its ``ice_controlling`` and
  ``_nominated`` (component -> ``CandidatePair``, whose ``protocol.transport`` and
  ``remote_addr`` give the UDP socket and peer address of the selected pair),
  ``check_incoming`` (called for every authenticated STUN binding request; wrapped per
  instance for ``last_received``), ``_protocols`` (its ``StunProtocol`` sockets, whose
  ``datagram_received`` is wrapped per instance to drop empty and off-path datagrams), and
  ``get_component_candidates(component, addresses, timeout)``, replaced per instance to bind
  host candidates on ports from a :class:`PortRange` (``aioice.ice.StunProtocol``,
  ``aioice.candidate.candidate_foundation/_priority`` build them as aioice does).
- ``aioice.ice.get_host_addresses`` (module function, wrapped once, see
  :func:`host_addresses_override`).
- Not called by us, but relied on for SCTP: ``RTCSctpTransport.start`` calls
  ``RTCDtlsTransport._register_data_receiver`` before its first ``await``, and
  ``RTCDtlsTransport.start`` only schedules its receive loop (``__run``) as a task.

SCTP (WebRTC data channels, RFC 8831/8832) uses aiortc's public ``RTCSctpTransport`` on our DTLS
transport, started the way ``RTCPeerConnection`` starts it: in the same task, right after
``RTCDtlsTransport.start`` returns, so it registers as the DTLS data receiver before the receive
loop (scheduled by ``start`` but not yet run) can see the peer's first SCTP packet; application
data arriving with no receiver registered is dropped by aiortc.

Receive path, once connected (hot, synchronous): SRTP/SRTCP datagrams from the selected peer
are unprotected with ``_rx_srtp`` right in our wrapper of ``StunProtocol.datagram_received`` and
handed to ``on_rtp``/``on_rtcp``; what fails to unprotect is counted in ``undecryptable``.
Everything else (STUN, DTLS records: the handshake, alerts, SCTP) and anything before the
handshake took aiortc's way: aioice ``Connection`` queue -> ``RTCDtlsTransport._recv_next`` (a
coroutine step per datagram) -> our hooks. Skipping the queue and the coroutine for media took
a third of the bridge's receive cost (bench/RESULTS.md), and leaves the kernel's socket buffer
as the only queue: overload becomes loss, not ever-growing latency.
Send path (hot, synchronous): ``pylibsrtp.Session.protect`` + ``DatagramTransport.sendto`` on
the selected pair's socket; no coroutine per packet.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import datetime
import ipaddress
import logging
import secrets
import time
from typing import Any, Callable, Iterator

import aioice.candidate
import aioice.ice
import pylibsrtp
from aiortc.rtcdtlstransport import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
)
from aiortc.rtcicetransport import (
    RTCIceCandidate,
    RTCIceGatherer,
    RTCIceParameters,
    RTCIceTransport,
)
from aiortc.rtcsctptransport import RTCSctpTransport

from jitsi_protocols.model import Candidate, Fingerprint, IceTransport

from .rtp import is_rtcp

logger = logging.getLogger(__name__)

__all__ = ["EndpointTransport", "shared_certificate", "host_addresses_override"]

#: Default limit for :meth:`EndpointTransport.start` (ICE + DTLS), seconds.
START_TIMEOUT = 15.0
#: SCTP port of WebRTC data channels, ours and the peer's (a=sctp-port, Jingle sctpmap).
SCTP_PORT = 5000

# ---------------------------------------------------------------------------------------------
# Host addresses for ICE gathering
# ---------------------------------------------------------------------------------------------
# aioice 0.13 has no way to choose the addresses a Connection binds to: gather_candidates()
# calls the module function aioice.ice.get_host_addresses(), which lists every interface and
# skips 127.0.0.1. RTCIceGatherer builds its Connection itself and forwards only credentials,
# STUN/TURN and the transport policy. So we wrap that function ONCE: when the context variable
# below is set (inside host_addresses_override(), i.e. in the task that runs gather() and the
# tasks it spawns), the wrapper returns those addresses; otherwise it calls the original, so
# other aioice users in the process (RTCPeerConnection in a participant, tests) are unaffected.

_host_addresses: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "bridge_host_addresses", default=None
)
_original_get_host_addresses: Callable[[bool, bool], list[str]] | None = None


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    override = _host_addresses.get()
    if override is not None:
        return list(override)
    assert _original_get_host_addresses is not None
    return _original_get_host_addresses(use_ipv4, use_ipv6)


def _install_host_address_hook() -> None:
    global _original_get_host_addresses
    if _original_get_host_addresses is None:
        _original_get_host_addresses = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = _get_host_addresses


@contextlib.contextmanager
def host_addresses_override(addresses: list[str]) -> Iterator[None]:
    """Within this block (and tasks created in it), aioice gathers host candidates only on
    ``addresses`` (127.0.0.1 included). Used by :meth:`EndpointTransport.gather`."""
    _install_host_address_hook()
    token = _host_addresses.set(list(addresses))
    try:
        yield
    finally:
        _host_addresses.reset(token)


# ---------------------------------------------------------------------------------------------
# Certificate
# ---------------------------------------------------------------------------------------------
_shared_cert: RTCCertificate | None = None


def shared_certificate() -> RTCCertificate:
    """One DTLS certificate for all endpoints of this process (generating one costs ~ms of CPU
    per endpoint). aiortc's certificates are valid 30 days; a new one is made when the current
    one has less than a week left (existing endpoints keep theirs)."""
    global _shared_cert
    now = datetime.datetime.now(tz=datetime.timezone.utc)
    if _shared_cert is None or _shared_cert.expires - now < datetime.timedelta(days=7):
        _shared_cert = RTCCertificate.generateCertificate()
    return _shared_cert


# ---------------------------------------------------------------------------------------------
# Media ports from a configured range
# ---------------------------------------------------------------------------------------------
class PortRange:
    """UDP ports `low`..`high` handed out round-robin (one per endpoint transport), so an admin
    can open one range in a firewall. A port in use (by anything) is skipped; when the whole
    range is taken, binding fails with a message naming it."""

    def __init__(self, low: int, high: int) -> None:
        if not 0 < low <= high <= 65535:
            raise ValueError(f"{low}..{high} is not a UDP port range")
        self.low, self.high = low, high
        self._next = low

    async def bind(self, factory: Callable[[], Any], address: str) -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        size = self.high - self.low + 1
        for _ in range(size):
            port = self._next
            self._next = self.low + (port - self.low + 1) % size
            try:
                return await loop.create_datagram_endpoint(factory, local_addr=(address, port))
            except OSError:
                continue  # taken
        raise OSError(f"no free UDP port in {self.low}-{self.high} on {address}")


# ---------------------------------------------------------------------------------------------
# DTLS transport with raw-packet hooks
# ---------------------------------------------------------------------------------------------
class _RawDtlsTransport(RTCDtlsTransport):
    """RTCDtlsTransport whose decrypted RTP/RTCP goes to the owning EndpointTransport."""

    def __init__(self, ice: RTCIceTransport, certificate: RTCCertificate,
                 owner: "EndpointTransport") -> None:
        super().__init__(ice, [certificate])
        self._owner = owner

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        self._owner._received(data, False)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        self._owner._received(data, True)


# ---------------------------------------------------------------------------------------------
# Conversions between our model and aiortc's types
# ---------------------------------------------------------------------------------------------
def _candidate_to_rtc(c: Candidate) -> RTCIceCandidate:
    return RTCIceCandidate(
        component=c.component,
        foundation=c.foundation,
        ip=c.ip,
        port=c.port,
        priority=c.priority,
        protocol=c.protocol.lower(),
        type=c.type,
        relatedAddress=c.rel_addr,
        relatedPort=c.rel_port,
        tcpType=c.tcptype,
    )


def _candidate_from_rtc(c: RTCIceCandidate) -> Candidate:
    return Candidate(
        foundation=c.foundation,
        component=c.component,
        protocol=c.protocol,
        priority=c.priority,
        ip=c.ip,
        port=c.port,
        type=c.type,
        generation=0,
        id=secrets.token_hex(5),
        rel_addr=c.relatedAddress,
        rel_port=c.relatedPort,
        tcptype=c.tcpType,
    )


SOCKET_BUFFER = 2 * 1024 * 1024  # a busy bridge falls behind for a few ms; the kernel's default drops


def _grow_buffers(protocol: Any) -> None:
    sock = protocol.transport.get_extra_info("socket") if protocol.transport is not None else None
    if sock is None:
        return
    import socket as _socket
    for opt in (_socket.SO_RCVBUF, _socket.SO_SNDBUF):
        try:
            sock.setsockopt(_socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        except OSError:
            pass  # capped by net.core.rmem_max; the default is still usable


class EndpointTransport:
    """ICE (controlling) + DTLS (server) + SRTP for one endpoint, BUNDLE + rtcp-mux (one
    component). ``on_rtp``/``on_rtcp`` get decrypted packets as ``bytes``, synchronously from
    the receive loop; they must not block. ``send_rtp``/``send_rtcp`` take plain packets.

    ``stats`` counts media only (RTP+RTCP, not STUN/DTLS); bytes are plain (unencrypted)
    lengths. ``dropped`` counts packets not sent (not connected, protect error) and received
    packets whose callback raised; ``rejected`` counts datagrams dropped before aioice (empty,
    or non-STUN from an address other than the selected peer). Undecryptable datagrams from
    the peer are dropped inside aiortc and not counted.

    ``last_received`` is the ``time.monotonic()`` of the last media packet or authenticated
    STUN request (peers send consent checks every ~5 s), starting at construction time.
    """

    start_timeout: float = START_TIMEOUT

    def __init__(
        self,
        media_address: str,
        on_rtp: Callable[[bytes], None],
        on_rtcp: Callable[[bytes], None],
        certificate: RTCCertificate | None = None,
        on_state: Callable[[str], None] | None = None,
        ice_controlling: bool = True,
        setup: str = "actpass",
        ports: PortRange | None = None,
        public_address: str = "",
    ) -> None:
        ipaddress.ip_address(media_address)  # ValueError for a name or garbage
        if public_address:
            ipaddress.ip_address(public_address)
        self.media_address = media_address
        self.public_address = public_address
        self._ports = ports
        self.on_rtp = on_rtp
        self.on_rtcp = on_rtcp
        self.on_state = on_state
        self.certificate = certificate or shared_certificate()
        self.stats: dict[str, int] = {
            "packets_in": 0, "packets_out": 0, "bytes_in": 0, "bytes_out": 0, "dropped": 0,
            "rejected": 0, "undecryptable": 0,
        }
        self.last_received: float = time.monotonic()

        self._gatherer = RTCIceGatherer(iceServers=[])
        self._connection = self._gatherer._connection
        # towards participants: controlling, and actpass (answerers say active: we serve DTLS);
        # between bridges (relay.py) one side is controlling + active (DTLS client), the
        # other controlled + passive
        self._connection.ice_controlling = ice_controlling
        self.setup = setup
        self._ice = RTCIceTransport(self._gatherer)
        self._dtls = _RawDtlsTransport(self._ice, self.certificate, self)
        self._dtls._set_role("client" if setup == "active" else "server")
        self._candidates: list[Candidate] = []
        self._state = "new"
        self._stopping = False
        # Set once DTLS is connected: the SRTP sessions and the selected pair's socket + address.
        self._tx_srtp: Any = None
        self._rx_srtp: Any = None
        self._udp: asyncio.DatagramTransport | None = None
        self._peer: tuple[str, int] | None = None
        # Source filter for non-STUN datagrams, set once ICE selected a pair (never cleared).
        self._source: tuple[str, int] | None = None
        # SCTP association over DTLS, if enable_sctp() was called; created once DTLS connects.
        self._on_datachannel: Callable[[Any], None] | None = None
        self._sctp_port = SCTP_PORT
        self.sctp: RTCSctpTransport | None = None

        # Liveness from authenticated STUN requests: wrap the instance's check_incoming, which
        # aioice calls only after USERNAME + MESSAGE-INTEGRITY were verified.
        original_check = self._connection.check_incoming

        def check_incoming(*args: Any) -> None:
            self.last_received = time.monotonic()
            original_check(*args)

        self._connection.check_incoming = check_incoming
        if ports is not None:
            # aioice binds host candidates to port 0: take ours from the range instead
            self._connection.get_component_candidates = self._host_candidates
        self._ice.on("statechange", self._on_ice_state)
        self._dtls.on("statechange", self._on_dtls_state)

    # -- state ---------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """new | connecting | connected | failed | closed"""
        return self._state

    def _set_state(self, state: str) -> None:
        if state == self._state:
            return
        logger.debug("endpoint transport %s: %s -> %s", self.media_address, self._state, state)
        self._state = state
        if state != "connected":
            self._udp = None
            self._peer = None
            self._tx_srtp = None
            self._rx_srtp = None
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception:
                logger.exception("on_state callback failed")

    def _on_ice_state(self) -> None:
        # ICE goes "failed" after connect when consent expires (RFC 7675) or the socket dies.
        if self._ice.state == "failed" and not self._stopping and self._state != "new":
            self._set_state("failed")

    def _on_dtls_state(self) -> None:
        dtls_state = self._dtls.state
        if self._state == "connected" and dtls_state in ("closed", "failed"):
            # closed: close_notify from the peer, or the ICE connection went away.
            self._set_state(dtls_state)

    # -- setup ---------------------------------------------------------------------------------
    async def gather(self) -> None:
        """Gather host candidates on ``media_address`` (no STUN/TURN)."""
        with host_addresses_override([self.media_address]):
            await self._gatherer.gather()
        for protocol in self._connection._protocols:
            self._guard_protocol(protocol)
            _grow_buffers(protocol)
        self._candidates = [_candidate_from_rtc(c) for c in self._gatherer.getLocalCandidates()]
        if not self._candidates:
            raise OSError(f"could not bind an ICE host candidate on {self.media_address}")

    async def _host_candidates(self, component: int, addresses: list[str], timeout: int = 5) -> list[Any]:
        """aioice's ``Connection.get_component_candidates`` for host candidates only (what we
        gather anyway), on ports from our range."""
        assert self._ports is not None
        connection = self._connection
        candidates = []
        for address in addresses:
            transport, protocol = await self._ports.bind(lambda: aioice.ice.StunProtocol(connection), address)
            host, port = transport.get_extra_info("sockname")[:2]
            protocol.local_candidate = aioice.Candidate(
                foundation=aioice.candidate.candidate_foundation("host", "udp", host), component=component,
                transport="udp", priority=aioice.candidate.candidate_priority(component, "host"),
                host=host, port=port, type="host")
            connection._protocols.append(protocol)
            candidates.append(protocol.local_candidate)
        return candidates

    def _guard_protocol(self, protocol: Any) -> None:
        """Filter datagrams before aioice sees them.

        - Empty datagrams are dropped: aioice queues them as data and aiortc 1.16.0's
          ``_recv_next`` does ``data[0]``, so one empty UDP datagram ends the DTLS receive loop
          (IndexError) and kills the session.
        - Once ICE selected a pair (before the DTLS handshake), non-STUN datagrams (first byte
          > 3) from any other address are dropped, so nobody off-path can feed SRTP/DTLS records
          into the session. STUN still goes through (aioice authenticates it), so checks and
          consent keep working.
        Both are counted in ``stats["rejected"]``.
        - Once connected, SRTP/SRTCP (first byte 128-191) is unprotected and delivered here,
          synchronously (see the module doc).
        """
        original = protocol.datagram_received
        received = self._received
        stats = self.stats

        def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
            if not data:
                self.stats["rejected"] += 1
                return
            source = self._source
            if source is not None and data[0] > 3 and (addr[0], addr[1]) != source:
                self.stats["rejected"] += 1
                return
            rx = self._rx_srtp
            if rx is not None and 127 < data[0] < 192:
                try:
                    if is_rtcp(data):
                        received(rx.unprotect_rtcp(data), True)
                    else:
                        received(rx.unprotect(data), False)
                except pylibsrtp.Error:
                    stats["undecryptable"] += 1
                return
            original(data, addr)

        protocol.datagram_received = datagram_received

    def enable_sctp(self, on_datachannel: Callable[[Any], None], port: int = SCTP_PORT) -> None:
        """Run an SCTP association (WebRTC data channels) over DTLS once it is connected, with
        ``port`` as both local and remote SCTP port. Each channel the peer opens (DCEP) is passed
        to ``on_datachannel`` (an aiortc ``RTCDataChannel``, already open). Call before
        :meth:`start`."""
        self._on_datachannel = on_datachannel
        self._sctp_port = port

    async def _start_sctp(self) -> None:
        """Called by ``_connect`` straight after ``RTCDtlsTransport.start`` (see module doc)."""
        assert self._on_datachannel is not None
        sctp = RTCSctpTransport(self._dtls, self._sctp_port)
        sctp.on("datachannel", self._datachannel)
        self.sctp = sctp
        try:
            # registers the data receiver before its first await, then sends our INIT
            await sctp.start(None, self._sctp_port)
        except Exception as exc:  # media works without it; the channel falls back to the WebSocket
            logger.warning("endpoint transport %s: SCTP start failed: %s", self.media_address, exc)
        if self._stopping and self.sctp is None:
            # stop() ran while we sent INIT, and start() then armed the INIT timer again
            with contextlib.suppress(Exception):
                await sctp.stop()

    def _datachannel(self, channel: Any) -> None:
        # runs inside aiortc's DTLS receive loop: an exception here would end the session
        try:
            if self._on_datachannel is not None and not self._stopping:
                self._on_datachannel(channel)
        except Exception:
            logger.exception("on_datachannel callback failed")

    def local_description(self) -> IceTransport:
        params = self._gatherer.getLocalParameters()
        fingerprints = [
            Fingerprint(hash=f.algorithm, value=f.value, setup=self.setup)
            for f in self._dtls.getLocalParameters().fingerprints
            if f.algorithm == "sha-256"
        ]
        candidates = list(self._candidates)
        if self.public_address:
            # behind NAT: the same port on the public address, as a server-reflexive candidate
            candidates += [dataclasses.replace(
                c, foundation=f"{c.foundation}1", type="srflx", ip=self.public_address, id=secrets.token_hex(5),
                priority=aioice.candidate.candidate_priority(c.component, "srflx"), rel_addr=c.ip, rel_port=c.port)
                for c in self._candidates]
        return IceTransport(
            ufrag=params.usernameFragment or "",
            pwd=params.password or "",
            fingerprints=fingerprints,
            candidates=candidates,
            rtcp_mux=True,
        )

    async def add_remote_candidate(self, c: Candidate) -> None:
        """Add a (trickled) remote candidate; non-UDP and other-component ones are ignored."""
        if c.protocol.lower() != "udp" or c.component != 1 or self._state in ("closed", "failed"):
            return
        await self._ice.addRemoteCandidate(_candidate_to_rtc(c))

    async def start(self, remote: IceTransport) -> None:
        """Run ICE (controlling) then DTLS; return once DTLS is connected.

        End-of-candidates is not signalled, so trickled candidates still count; a failure is
        therefore reported by the timeout (``start_timeout``) rather than as soon as all pairs
        failed. Raises ``ConnectionError`` (state ``failed``) on failure or timeout.
        """
        if self._state != "new":
            raise RuntimeError(f"start() in state {self._state}")
        if not self._candidates:
            await self.gather()
        if not remote.fingerprints:
            raise ValueError("remote transport has no DTLS fingerprint")
        # a=setup: active (or actpass) peer -> we are the DTLS server; passive -> client.
        setups = {f.setup for f in remote.fingerprints}
        if "passive" in setups and self.setup != "passive":
            self._dtls._set_role("client")
        dtls_params = RTCDtlsParameters(
            fingerprints=[RTCDtlsFingerprint(algorithm=f.hash.lower(), value=f.value.upper())
                          for f in remote.fingerprints]
        )
        self._set_state("connecting")
        try:
            for c in remote.candidates:
                await self.add_remote_candidate(c)
            await asyncio.wait_for(self._connect(remote, dtls_params), self.start_timeout)
        except asyncio.TimeoutError:
            if self._state == "connecting":
                self._set_state("failed")
            raise ConnectionError(
                f"ICE/DTLS not connected after {self.start_timeout:.0f} s "
                f"(ice {self._ice.state}, dtls {self._dtls.state})") from None
        except BaseException:
            if self._state == "connecting":
                self._set_state("failed")
            raise

    async def _connect(self, remote: IceTransport, dtls_params: RTCDtlsParameters) -> None:
        await self._ice.start(RTCIceParameters(usernameFragment=remote.ufrag,
                                               password=remote.pwd))
        if self._ice.state != "completed":
            raise ConnectionError(f"ICE {self._ice.state}")
        pair = self._connection._nominated.get(1)
        if pair is None:
            raise ConnectionError("ICE completed without a selected pair")
        self._source = pair.remote_addr
        await self._dtls.start(dtls_params)
        # nothing below may await before _start_sctp() registered the SCTP receiver
        if self._dtls.state != "connected":
            raise ConnectionError(f"DTLS {self._dtls.state}")
        if self._state != "connecting":
            raise ConnectionError("transport closed during the DTLS handshake")
        self._tx_srtp = self._dtls._tx_srtp
        self._rx_srtp = self._dtls._rx_srtp
        # aioice may nominate another pair while DTLS runs (a peer with several addresses whose
        # checks all succeed): follow it rather than fail
        if not self.refresh_pair():
            raise ConnectionError("ICE pair lost during DTLS handshake")
        if self._on_datachannel is not None:
            await self._start_sctp()
            if self._state != "connecting":
                raise ConnectionError("transport closed while SCTP started")
        self._set_state("connected")

    def refresh_pair(self) -> bool:
        """Send to the pair ICE has selected now; the bridge calls this once a second."""
        pair = self._connection._nominated.get(1) if self._connection is not None else None
        if pair is None or pair.protocol.transport is None:
            return False
        self._udp = pair.protocol.transport
        self._peer = pair.remote_addr
        self._source = pair.remote_addr
        return True

    # -- data path -----------------------------------------------------------------------------
    def _received(self, data: bytes, rtcp: bool) -> None:
        self.last_received = time.monotonic()
        stats = self.stats
        stats["packets_in"] += 1
        stats["bytes_in"] += len(data)
        try:
            if rtcp:
                self.on_rtcp(data)
            else:
                self.on_rtp(data)
        except Exception:
            stats["dropped"] += 1
            logger.exception("on_%s callback failed", "rtcp" if rtcp else "rtp")

    def send_rtp(self, data: bytes) -> None:
        """SRTP-protect and send one plain RTP packet; counted in ``dropped`` if not possible."""
        srtp = self._tx_srtp
        if srtp is None:
            self.stats["dropped"] += 1
            return
        try:
            packet = srtp.protect(data if type(data) is bytes else bytes(data))
        except pylibsrtp.Error:
            self.stats["dropped"] += 1
            return
        try:
            self._udp.sendto(packet, self._peer)  # type: ignore[union-attr]
        except (AttributeError, OSError):
            # the socket went away under us (ICE closed it before our state followed): a
            # dropped packet, never an exception into the sender's fan-out loop, which would
            # cost every receiver after this one the packet
            self.stats["dropped"] += 1
            return
        stats = self.stats
        stats["packets_out"] += 1
        stats["bytes_out"] += len(data)

    def send_rtcp(self, data: bytes) -> None:
        """SRTCP-protect and send one plain (compound) RTCP packet."""
        srtp = self._tx_srtp
        if srtp is None:
            self.stats["dropped"] += 1
            return
        try:
            packet = srtp.protect_rtcp(data if type(data) is bytes else bytes(data))
        except pylibsrtp.Error:
            self.stats["dropped"] += 1
            return
        try:
            self._udp.sendto(packet, self._peer)  # type: ignore[union-attr]
        except (AttributeError, OSError):
            # the socket went away under us (ICE closed it before our state followed): a
            # dropped packet, never an exception into the sender's fan-out loop, which would
            # cost every receiver after this one the packet
            self.stats["dropped"] += 1
            return
        stats = self.stats
        stats["packets_out"] += 1
        stats["bytes_out"] += len(data)

    # -- teardown ------------------------------------------------------------------------------
    async def stop(self) -> None:
        """Send DTLS close_notify if connected, close the sockets. Idempotent."""
        if self._stopping:
            return
        self._stopping = True
        self._set_state("closed")
        sctp, self.sctp = self.sctp, None
        if sctp is not None:
            try:
                await sctp.stop()  # ABORT to the peer while DTLS still runs; stops its timers
            except Exception:
                logger.debug("SCTP stop failed", exc_info=True)
        try:
            await self._dtls.stop()
        except Exception:  # close_notify is best effort
            logger.debug("DTLS stop failed", exc_info=True)
        await self._ice.stop()
