"""SASL OAUTHBEARER (RFC 7628) for slixmpp: how a participant over plain XMPP (no web page
URL to carry `?token=`) signs in with a JWT in `[auth] mode = "token"`."""
from __future__ import annotations

from slixmpp.util.sasl.client import Mech, sasl_mech


@sasl_mech(2)
class OAUTHBEARER(Mech):
    name = "OAUTHBEARER"
    required_credentials = {"access_token"}

    def setup(self, name: str) -> None:
        self._sent = False

    def process(self, challenge: bytes = b"") -> bytes:
        if self._sent:
            return b"\x01"  # RFC 7628 3.2.3: acknowledge the server's error; its failure follows
        self._sent = True
        return b"n,,\x01auth=Bearer " + self.credentials["access_token"] + b"\x01\x01"
