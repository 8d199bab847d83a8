"""The `conference` IQ (`http://jitsi.org/protocol/focus`): a participant asks the focus to set
up a room before joining it; the focus answers `ready` once it is in the room as owner."""
from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from jitsi_base import ns
from jitsi_base.errors import StanzaError
from slixmpp.jid import JID

NS = ns.JITSI_FOCUS

# Errors a conference request may meet while the focus starts, is busy, or a room is being set
# up: worth asking again after a moment. Anything else is the focus's final answer.
RETRY_CONDITIONS = frozenset({"service-unavailable", "remote-server-not-found", "recipient-unavailable",
                              "remote-server-timeout", "internal-server-error", "resource-constraint",
                              "item-not-found"})


# `[auth] mode` "secure"/"token": the focus answers a guest's request for a room no host has
# opened with `not-authorized` (as Jicofo does; lib-jitsi-meet then asks for authentication or
# waits for the host), and clients on the guest domain ask again until the host has come.
WAIT_CONDITION = "not-authorized"
WAITING_FOR_HOST = "Waiting for the host: only a registered user can open this meeting"


@dataclass
class ConferenceRequest:
    room: str
    machine_uid: str = ""
    properties: dict[str, str] = field(default_factory=dict)


def parse_request(el: etree._Element, muc_domain: str | None = None) -> ConferenceRequest:
    if el.tag != "{%s}conference" % NS:
        raise StanzaError("bad-request", "Expected <conference xmlns='http://jitsi.org/protocol/focus'/>")
    room = el.get("room", "")
    try:
        jid = JID(room)
    except Exception:
        raise StanzaError("bad-request", f"Invalid room address {room!r}") from None
    if not jid.user or jid.resource:
        raise StanzaError("bad-request", f"The room must be a bare room JID, not {room!r}")
    if muc_domain is not None and jid.domain != muc_domain:
        raise StanzaError("not-acceptable", f"Conferences live at {muc_domain}")
    req = ConferenceRequest(room=jid.bare, machine_uid=el.get("machine-uid", ""))
    for p in el.iterfind("{%s}property" % NS):
        if p.get("name"):
            req.properties[p.get("name")] = p.get("value", "")
    return req


def request_element(req: ConferenceRequest) -> etree._Element:
    el = etree.Element("{%s}conference" % NS, nsmap={None: NS}, room=req.room)
    if req.machine_uid:
        el.set("machine-uid", req.machine_uid)
    for name, value in req.properties.items():
        etree.SubElement(el, "{%s}property" % NS, name=name, value=value)
    return el


def response_element(room: str, focus_jid: str, ready: bool = True,
                     properties: dict[str, str] | None = None) -> etree._Element:
    el = etree.Element("{%s}conference" % NS, nsmap={None: NS}, room=room, ready="true" if ready else "false",
                       focusjid=focus_jid)
    for name, value in (properties or {"authentication": "false"}).items():
        etree.SubElement(el, "{%s}property" % NS, name=name, value=value)
    return el
