"""XEP-0199: the server answers pings (the Jitsi client pings its domain every 10 s)."""
from __future__ import annotations

from jitsi_base import ns
from ..plugin import Plugin
from xmpp_wire.stanza import Stanza


class PingPlugin(Plugin):
    name = "ping"

    async def start(self) -> None:
        self.server.register_iq(ns.q(ns.PING, "ping"), self.on_ping, scopes=("host", "account"))
        self.server.disco_features.add(ns.PING)

    def on_ping(self, stanza: Stanza) -> None:
        return None
