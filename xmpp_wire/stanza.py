"""Stanzas parsed once at the edge into a small typed wrapper.

Internally a stanza is an lxml element whose top-level tag (and any `jabber:client` children such
as <body/>) carry no namespace: the stream's default namespace supplies it on output. That lets
the same element go out unchanged on a client stream (`jabber:client`), a component stream
(`jabber:component:accept`) or, with one xmlns attribute added, a WebSocket frame.
"""
from __future__ import annotations

from typing import Protocol

from lxml import etree
from slixmpp.jid import JID, InvalidJID

from jitsi_base import ns
from jitsi_base.errors import StanzaError

__all__ = ["JID", "InvalidJID", "Stanza", "DomainHandler", "parse_jid", "make_error", "make_result", "STANZA_NAMES"]

STANZA_NAMES = frozenset(("message", "presence", "iq"))
_STRIP = tuple("{%s}" % n for n in (ns.CLIENT, ns.COMPONENT, ns.SERVER))


def parse_jid(value: str | None) -> JID | None:
    """None for a missing attribute; StanzaError(jid-malformed) for a bad one."""
    if value is None or value == "":
        return None
    try:
        return JID(value)
    except InvalidJID as exc:
        raise StanzaError("jid-malformed", str(exc)) from None


def normalize(el: etree._Element) -> etree._Element:
    """Drop the stream namespaces from a freshly parsed stanza (see module docstring)."""
    changed = False
    for child in el.iter():
        tag = child.tag
        if isinstance(tag, str) and tag[0] == "{":
            for prefix in _STRIP:
                if tag.startswith(prefix):
                    child.tag = tag[len(prefix):]
                    changed = True
                    break
    if changed:
        etree.cleanup_namespaces(el)
    return el


class Stanza:
    """A routed stanza: the element plus the fields every router decision needs."""

    __slots__ = ("el", "name", "type", "id", "from_", "to")

    def __init__(self, el: etree._Element, from_: JID | None = None, to: JID | None = None) -> None:
        self.el = el
        self.name: str = el.tag  # 'message' | 'presence' | 'iq'
        self.type: str | None = el.get("type")
        self.id: str | None = el.get("id")
        self.from_ = from_
        self.to = to

    @classmethod
    def parse(cls, el: etree._Element) -> "Stanza":
        """Raises StanzaError(jid-malformed) for a bad from/to."""
        return cls(el, parse_jid(el.get("from")), parse_jid(el.get("to")))

    def set_from(self, jid: JID) -> None:
        self.from_ = jid
        self.el.set("from", jid.full)

    def payload(self) -> etree._Element | None:
        """The single child of an IQ get/set (RFC 6120 8.2.3)."""
        for child in self.el:
            if isinstance(child.tag, str) and child.tag != "error":
                return child
        return None

    def find(self, qname: str) -> etree._Element | None:
        return self.el.find(qname)

    def __repr__(self) -> str:
        return f"<Stanza {self.name} type={self.type} from={self.from_} to={self.to} id={self.id}>"


def make_result(stanza: Stanza, payload: etree._Element | None = None) -> etree._Element:
    """An IQ result to `stanza`, from its recipient to its sender."""
    reply = etree.Element("iq", type="result")
    if stanza.id is not None:
        reply.set("id", stanza.id)
    if stanza.to is not None:
        reply.set("from", stanza.to.full)
    if stanza.from_ is not None:
        reply.set("to", stanza.from_.full)
    if payload is not None:
        reply.append(payload)
    return reply


def make_error(stanza: Stanza | etree._Element, error: StanzaError,
               include_payload: bool = True) -> etree._Element | None:
    """An error reply, or None where RFC 6120 forbids one (an error to an error)."""
    el = stanza.el if isinstance(stanza, Stanza) else stanza
    if el.get("type") == "error":
        return None
    reply = etree.Element(el.tag, type="error")
    for attr in ("id",):
        if el.get(attr) is not None:
            reply.set(attr, el.get(attr))
    if el.get("to"):
        reply.set("from", el.get("to"))
    if el.get("from"):
        reply.set("to", el.get("from"))
    if include_payload and el.tag != "iq":
        for child in el:
            if isinstance(child.tag, str):
                reply.append(_copy(child))
    elif include_payload:
        for child in el:
            if isinstance(child.tag, str) and child.tag != "error":
                reply.append(_copy(child))
                break
    reply.append(error.to_element())
    return reply


def _copy(el: etree._Element) -> etree._Element:
    from copy import deepcopy
    return deepcopy(el)


class DomainHandler(Protocol):
    """Whatever serves a whole domain (conference.localhost, focus.localhost): a plugin of our
    server or a component attached to another server gets its stanzas the same way."""

    def receive(self, stanza: Stanza) -> None: ...
