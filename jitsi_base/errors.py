"""Stream and stanza errors (RFC 6120 sections 4.9 and 8.3) as exceptions.

Handlers raise these; the edge turns them into the XML the peer sees, so a handler never
builds error XML itself and a mistake in one stanza never escapes as a crash.
"""
from __future__ import annotations

from lxml import etree

from . import ns

# RFC 6120 8.3.3: the default error type of each defined condition.
STANZA_ERROR_TYPES = {
    "bad-request": "modify",
    "conflict": "cancel",
    "feature-not-implemented": "cancel",
    "forbidden": "auth",
    "gone": "cancel",
    "internal-server-error": "cancel",
    "item-not-found": "cancel",
    "jid-malformed": "modify",
    "not-acceptable": "modify",
    "not-allowed": "cancel",
    "not-authorized": "auth",
    "policy-violation": "modify",
    "recipient-unavailable": "wait",
    "redirect": "modify",
    "registration-required": "auth",
    "remote-server-not-found": "cancel",
    "remote-server-timeout": "wait",
    "resource-constraint": "wait",
    "service-unavailable": "cancel",
    "subscription-required": "auth",
    "undefined-condition": "cancel",
    "unexpected-request": "wait",
}


class StreamError(Exception):
    """Fatal for the stream: the peer gets <stream:error/> and the connection closes."""

    def __init__(self, condition: str, text: str | None = None,
                 app_condition: etree._Element | None = None) -> None:
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text
        self.app_condition = app_condition

    def to_element(self) -> etree._Element:
        err = etree.Element(ns.q(ns.STREAMS, "error"), nsmap={"stream": ns.STREAMS})
        etree.SubElement(err, ns.q(ns.STREAM_ERRORS, self.condition), nsmap={None: ns.STREAM_ERRORS})
        if self.text:
            t = etree.SubElement(err, ns.q(ns.STREAM_ERRORS, "text"), nsmap={None: ns.STREAM_ERRORS})
            t.text = self.text
        if self.app_condition is not None:
            err.append(self.app_condition)
        return err


class StanzaError(Exception):
    """Answered to the sender of one stanza; everything else carries on."""

    def __init__(self, condition: str, text: str | None = None, type_: str | None = None,
                 app_condition: etree._Element | None = None) -> None:
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text
        self.type = type_ or STANZA_ERROR_TYPES.get(condition, "cancel")
        self.app_condition = app_condition

    def to_element(self, by: str | None = None) -> etree._Element:
        err = etree.Element("error", type=self.type)
        if by:
            err.set("by", by)
        etree.SubElement(err, ns.q(ns.STANZA_ERRORS, self.condition), nsmap={None: ns.STANZA_ERRORS})
        if self.text:
            t = etree.SubElement(err, ns.q(ns.STANZA_ERRORS, "text"), nsmap={None: ns.STANZA_ERRORS})
            t.text = self.text
        if self.app_condition is not None:
            err.append(self.app_condition)
        return err
