"""XEP-0092: software version of the server."""
from __future__ import annotations

import platform

from lxml import etree

from jitsi_base import ns
from ..plugin import Plugin
from xmpp_wire.stanza import Stanza
from jitsi_base.errors import StanzaError


class VersionPlugin(Plugin):
    name = "version"

    async def start(self) -> None:
        self.server.register_iq(ns.q(ns.VERSION, "query"), self.on_version, scopes=("host",))
        self.server.disco_features.add(ns.VERSION)

    def on_version(self, stanza: Stanza) -> etree._Element:
        if stanza.type != "get":
            raise StanzaError("bad-request")
        from .. import __version__
        q = etree.Element(ns.q(ns.VERSION, "query"), nsmap={None: ns.VERSION})
        etree.SubElement(q, ns.q(ns.VERSION, "name")).text = "jitsi-py"
        etree.SubElement(q, ns.q(ns.VERSION, "version")).text = __version__
        etree.SubElement(q, ns.q(ns.VERSION, "os")).text = platform.system()
        return q
