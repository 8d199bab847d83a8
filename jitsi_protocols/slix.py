"""Glue between slixmpp (the focus's, bridge's and participants' client library, which uses
xml.etree) and our lxml-based protocol modules, written once for all three."""
from __future__ import annotations

import ssl
import xml.etree.ElementTree as ET

import slixmpp
from lxml import etree

from jitsi_base.errors import StanzaError


def to_lxml(el: ET.Element) -> etree._Element:
    """A slixmpp payload as lxml, for the parsers in this package (signalling, not media)."""
    return etree.fromstring(ET.tostring(el))


def to_et(el: etree._Element) -> ET.Element:
    return ET.fromstring(etree.tostring(el))


def configure_tls(client: slixmpp.ClientXMPP, cafile: str | None, starttls: bool = True,
                  verify: bool = True) -> None:
    """STARTTLS against our certificate (or the system's trust), or, on loopback only where the
    server allows it, a plain stream (the caller decides that it is loopback)."""
    client.enable_direct_tls = False
    if not starttls:
        client.enable_starttls = False
        client.enable_plaintext = True
        mechs = client["feature_mechanisms"]
        mechs.unencrypted_scram = True
        mechs.unencrypted_plain = True
        return
    if cafile:
        client.ssl_context = ssl.create_default_context(cafile=cafile)
    if not verify:
        client.ssl_context.check_hostname = False
        client.ssl_context.verify_mode = ssl.CERT_NONE


def reply_error(iq: slixmpp.Iq, exc: StanzaError) -> None:
    """Answer `iq` with the error a StanzaError describes (condition, type, text, app element)."""
    reply = iq.reply(clear=True)
    reply["type"] = "error"
    reply["error"]["condition"] = exc.condition
    reply["error"]["type"] = exc.type
    if exc.text:
        reply["error"]["text"] = exc.text
    if exc.app_condition is not None:
        reply["error"].xml.append(to_et(exc.app_condition))
    reply.send()
