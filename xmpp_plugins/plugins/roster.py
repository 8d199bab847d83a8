"""RFC 6121 roster: we keep none, so a get returns an empty roster and a set is refused.

Conference guests have no contacts; ordinary clients still ask for the roster at login and
must get an answer rather than an error that some treat as fatal.
"""
from __future__ import annotations

from lxml import etree

from jitsi_base import ns
from jitsi_base.errors import StanzaError
from ..plugin import Plugin
from xmpp_wire.stanza import Stanza


class RosterPlugin(Plugin):
    name = "roster"

    async def start(self) -> None:
        self.server.register_iq(ns.q(ns.ROSTER, "query"), self.on_roster, scopes=("account",))

    def on_roster(self, stanza: Stanza) -> etree._Element:
        if stanza.from_ is None or stanza.to is None or stanza.from_.bare != stanza.to.bare:
            raise StanzaError("forbidden", "Only the account itself may read its roster")
        if stanza.type == "set":
            raise StanzaError("not-allowed", "This server keeps no roster")
        return etree.Element(ns.q(ns.ROSTER, "query"), nsmap={None: ns.ROSTER})
