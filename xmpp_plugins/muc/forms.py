"""XEP-0004 data forms for room configuration (XEP-0045 section 10.2) and room info (15.5.4).

The room's settings are a typed dataclass; this module is the only place that knows their
form field names, so the room logic never touches form XML.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lxml import etree

from jitsi_base import ns
from jitsi_base.errors import StanzaError

X = ns.q(ns.DATA_FORMS, "x")
FIELD = ns.q(ns.DATA_FORMS, "field")
VALUE = ns.q(ns.DATA_FORMS, "value")

WHOIS = ("moderators", "anyone")
ALLOW_PM = ("anyone", "participants", "moderators", "none")


@dataclass
class RoomConfig:
    name: str = ""
    description: str = ""
    persistent: bool = False
    public: bool = True
    password: str = ""
    members_only: bool = False
    moderated: bool = False
    max_occupants: int = 0  # 0: no limit
    whois: str = "moderators"
    allow_pm: str = "anyone"
    change_subject: bool = False
    lobby: bool = False  # a waiting room for non-members while members_only is on

    def copy(self) -> "RoomConfig":
        return dataclasses.replace(self)


# field var -> (attribute, type, label)
FIELDS: list[tuple[str, str, str, str]] = [
    ("muc#roomconfig_roomname", "name", "text-single", "Room name"),
    ("muc#roomconfig_roomdesc", "description", "text-single", "Description"),
    ("muc#roomconfig_persistentroom", "persistent", "boolean", "Keep the room when the last occupant leaves"),
    ("muc#roomconfig_publicroom", "public", "boolean", "List the room in the directory"),
    ("muc#roomconfig_passwordprotectedroom", "", "boolean", "Password protected"),
    ("muc#roomconfig_roomsecret", "password", "text-private", "Password"),
    ("muc#roomconfig_membersonly", "members_only", "boolean", "Only members may join"),
    ("muc#roomconfig_moderatedroom", "moderated", "boolean", "Only occupants with voice may speak"),
    ("muc#roomconfig_maxusers", "max_occupants", "text-single", "Maximum occupants (0 for no limit)"),
    ("muc#roomconfig_whois", "whois", "list-single", "Who may see occupants' real JIDs"),
    ("muc#roomconfig_allowpm", "allow_pm", "list-single", "Who may send private messages"),
    ("muc#roomconfig_changesubject", "change_subject", "boolean", "Occupants may change the subject"),
    ("muc#roomconfig_lobby", "lobby", "boolean", "Non-members wait in a lobby until a moderator admits them"),
]
OPTIONS = {"whois": WHOIS, "allow_pm": ALLOW_PM}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def config_form(cfg: RoomConfig) -> etree._Element:
    x = etree.Element(X, nsmap={None: ns.DATA_FORMS}, type="form")
    etree.SubElement(x, ns.q(ns.DATA_FORMS, "title")).text = "Room configuration"
    hidden = etree.SubElement(x, FIELD, var="FORM_TYPE", type="hidden")
    etree.SubElement(hidden, VALUE).text = ns.MUC_ROOMCONFIG
    for var, attr, ftype, label in FIELDS:
        f = etree.SubElement(x, FIELD, var=var, type=ftype, label=label)
        value = bool(cfg.password) if var == "muc#roomconfig_passwordprotectedroom" else getattr(cfg, attr)
        etree.SubElement(f, VALUE).text = _text(value)
        for option in OPTIONS.get(attr, ()):
            opt = etree.SubElement(f, ns.q(ns.DATA_FORMS, "option"), label=option)
            etree.SubElement(opt, VALUE).text = option
    return x


def _bool(var: str, text: str) -> bool:
    if text in ("1", "true"):
        return True
    if text in ("0", "false", ""):
        return False
    raise StanzaError("not-acceptable", f"{var}: {text!r} is not a boolean")


def apply_submission(cfg: RoomConfig, x: etree._Element) -> RoomConfig:
    """A new config from a submitted form; the old one is untouched if anything is wrong."""
    if x.get("type") != "submit":
        raise StanzaError("bad-request", "Expected a form of type 'submit'")
    new = cfg.copy()
    by_var = {var: (attr, ftype) for var, attr, ftype, _ in FIELDS}
    protected: bool | None = None
    for f in x.iterfind(FIELD):
        var = f.get("var", "")
        values = [v.text or "" for v in f.iterfind(VALUE)]
        text = values[0].strip() if values else ""
        if var == "FORM_TYPE":
            if text and text != ns.MUC_ROOMCONFIG:
                raise StanzaError("not-acceptable", f"Unknown form type {text!r}")
            continue
        if var == "muc#roomconfig_passwordprotectedroom":
            protected = _bool(var, text)
            continue
        if var not in by_var:
            continue  # XEP-0004: ignore fields we do not know (other services' extensions)
        attr, ftype = by_var[var]
        if ftype == "boolean":
            setattr(new, attr, _bool(var, text))
        elif attr == "max_occupants":
            if text in ("", "none"):
                new.max_occupants = 0
            elif not text.isdigit() or int(text) > 100_000:
                raise StanzaError("not-acceptable", f"{var}: {text!r} is not a number of occupants")
            else:
                new.max_occupants = int(text)
        elif attr in OPTIONS:
            if text not in OPTIONS[attr]:
                raise StanzaError("not-acceptable", f"{var}: {text!r} is not one of {', '.join(OPTIONS[attr])}")
            setattr(new, attr, text)
        else:
            if len(text) > 1024:
                raise StanzaError("not-acceptable", f"{var}: too long")
            setattr(new, attr, text)
    if protected is False:
        new.password = ""
    return new


def info_form(cfg: RoomConfig, occupants: int, subject: str, extra: dict[str, str]) -> etree._Element:
    x = etree.Element(X, nsmap={None: ns.DATA_FORMS}, type="result")
    fields = [("FORM_TYPE", ns.MUC_ROOMINFO, "hidden"),
              ("muc#roominfo_description", cfg.description, None),
              ("muc#roominfo_occupants", str(occupants), None),
              ("muc#roominfo_subject", subject, None),
              ("muc#roomconfig_roomname", cfg.name, None)]
    fields += [(k, v, None) for k, v in extra.items()]
    for var, value, ftype in fields:
        f = etree.SubElement(x, FIELD, var=var)
        if ftype:
            f.set("type", ftype)
        etree.SubElement(f, VALUE).text = value
    return x
