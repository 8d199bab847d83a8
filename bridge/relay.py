"""A bridge-to-bridge link of one cascaded conference (Jitsi calls it a relay; Octo before it).

When the focus spreads a conference over several bridges, each pair of them is joined by one
relay: an ICE/DTLS-SRTP transport like an endpoint's (one side ICE-controlling and DTLS client,
the other controlled and DTLS server), over which each bridge sends the streams of its *own*
endpoints that the other side needs, unchanged (original SSRCs, sequence numbers, timestamps).
The endpoints at the other end appear in the conference as relayed endpoints: they send (over
the relay) and take part in the speaker ranking, but have no slots and receive nothing from us,
since their own bridge forwards to them.

What crosses a relay:
- audio: every local source that is not silent (silence is dropped before routing anyway), so
  both bridges rank speakers from the same audio;
- video: only the sources the other bridge's receivers hold in their slots. Each bridge tells
  the other which of its sources it wants in an RTCP APP packet (name ``JPYw``, the SSRC list)
  whenever that set changes and once a second, so the set is never guessed from a ranking
  that may differ by a few milliseconds between the two bridges;
- RTCP: PLI/FIR and NACK for the original SSRCs towards the sender's bridge, which asks the
  sender (or answers from its cache); sender reports, unchanged, towards the receivers' bridge;
- bridge channel messages between participants (EndpointMessage), over an SCTP data channel on
  the relay's DTLS (the ICE-controlling side opens it), so a message reaches the participants
  on the other bridge as it reaches those on ours.
Relays never carry what arrived over another relay: with three bridges each pair has its own.
"""
from __future__ import annotations

import json
import logging
import struct
from typing import TYPE_CHECKING, Any

from .rtp import RTCP_APP

if TYPE_CHECKING:
    from .conference import Conference

log = logging.getLogger(__name__)

WANTED_NAME = b"JPYw"  # RTCP APP name of "the sources I want from you"
_APP_HEAD = struct.Struct("!BBHI4s")


class PassThrough:
    """The route entry of a relay: packets cross unchanged (the slot interface of slots.py)."""

    __slots__ = ()

    @staticmethod
    def rewrite(data: bytes, tcc: Any = None) -> bytes:
        # the sender's transport-wide sequence number crosses as it is: the far bridge numbers
        # each receiver's copy itself (twcc.SendLog.stamp)
        return data

    @staticmethod
    def sender_report(sr: bytes) -> bytes:
        return sr


PASS = PassThrough()


class Relay:
    def __init__(self, conference: "Conference", relay_id: str, transport: Any) -> None:
        self.conference = conference
        self.id = relay_id
        self.transport = transport
        self.endpoints: set[str] = set()  # ids of the relayed endpoints (at the other end)
        self.wanted: frozenset[int] = frozenset()  # our logical video sources the other side wants
        self.sent_wanted: frozenset[int] | None = None  # what we last told the other side we want
        self.expired = False
        self.failure_reported = False
        self.channel_send: Any = None  # the data channel to the other bridge, once open

    def send_message(self, message: dict[str, Any]) -> None:
        """A bridge channel message for participants on the other bridge (dropped while the
        data channel is not open)."""
        if self.channel_send is not None:
            self.channel_send(json.dumps(message))

    @property
    def connected(self) -> bool:
        return self.transport is not None and self.transport.state == "connected"

    def send_wanted(self, ssrcs: frozenset[int], force: bool = False) -> None:
        """Tell the other bridge which of its video sources our receivers hold."""
        if not force and ssrcs == self.sent_wanted:
            return
        if not self.connected:
            return
        self.sent_wanted = ssrcs
        self.transport.send_rtcp(build_wanted(self.conference.bridge.feedback_ssrc_video, sorted(ssrcs)))

    def stats(self) -> dict[str, Any]:
        t = self.transport
        return {"id": self.id, "transport": t.state if t is not None else "none",
                "endpoints": sorted(self.endpoints), "wanted": len(self.wanted),
                **({k: v for k, v in t.stats.items()} if t is not None else {})}


def build_wanted(sender_ssrc: int, ssrcs: list[int]) -> bytes:
    """RTCP APP (RFC 3550 6.7), subtype 0, name JPYw, data: the wanted SSRCs."""
    ssrcs = ssrcs[:255]
    # RTCP length: 32-bit words minus one (SSRC and name, then the data)
    return _APP_HEAD.pack(0x80, RTCP_APP, 2 + len(ssrcs), sender_ssrc, WANTED_NAME) + \
        b"".join(s.to_bytes(4, "big") for s in ssrcs)


def parse_wanted(data: bytes, off: int, length: int) -> frozenset[int] | None:
    """The SSRC list of a JPYw APP packet at ``off``; None if it is another APP packet."""
    if length < 12 or off + 12 > len(data) or data[off + 8:off + 12] != WANTED_NAME:
        return None
    end = min(off + length, len(data))
    return frozenset(int.from_bytes(data[p:p + 4], "big") for p in range(off + 12, end - 3, 4))
