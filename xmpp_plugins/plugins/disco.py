"""XEP-0030 service discovery for the server and accounts.

The server lists its features (added by each plugin) and, as items, every domain served by a
plugin or a connected component, so clients find `conference.<domain>` without configuration.
"""
from __future__ import annotations

from lxml import etree

from jitsi_base import ns
from jitsi_base.errors import StanzaError
from ..plugin import Plugin
from xmpp_wire.stanza import Stanza


class DiscoPlugin(Plugin):
    name = "disco"

    async def start(self) -> None:
        self.server.register_iq(ns.q(ns.DISCO_INFO, "query"), self.on_info, scopes=("host", "account"))
        self.server.register_iq(ns.q(ns.DISCO_ITEMS, "query"), self.on_items, scopes=("host", "account"))
        self.server.disco_features.update((ns.DISCO_INFO, ns.DISCO_ITEMS))

    def on_info(self, stanza: Stanza) -> etree._Element:
        if stanza.type != "get":
            raise StanzaError("bad-request")
        query = stanza.payload()
        assert query is not None and stanza.to is not None
        out = etree.Element(ns.q(ns.DISCO_INFO, "query"), nsmap={None: ns.DISCO_INFO})
        if query.get("node"):
            raise StanzaError("item-not-found")
        if stanza.to.user:
            etree.SubElement(out, ns.q(ns.DISCO_INFO, "identity"), category="account",
                             type="anonymous" if stanza.to.domain == self.server.guest_domain else "registered")
            for var in (ns.DISCO_INFO, ns.DISCO_ITEMS, ns.PING):
                etree.SubElement(out, ns.q(ns.DISCO_INFO, "feature"), var=var)
            return out
        etree.SubElement(out, ns.q(ns.DISCO_INFO, "identity"), category="server", type="im", name="jitsi-py")
        for ident in self.server.disco_identities:
            etree.SubElement(out, ns.q(ns.DISCO_INFO, "identity"), **ident)
        for var in sorted(self.server.disco_features):
            etree.SubElement(out, ns.q(ns.DISCO_INFO, "feature"), var=var)
        return out

    def on_items(self, stanza: Stanza) -> etree._Element:
        if stanza.type != "get":
            raise StanzaError("bad-request")
        assert stanza.to is not None
        out = etree.Element(ns.q(ns.DISCO_ITEMS, "query"), nsmap={None: ns.DISCO_ITEMS})
        if not stanza.to.user:
            for domain in sorted(self.server.router.domains):
                etree.SubElement(out, ns.q(ns.DISCO_ITEMS, "item"), jid=domain)
        return out
