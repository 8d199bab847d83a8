"""Incremental, restricted XML parsing of untrusted streams (RFC 6120 section 11).

lxml's XMLPullParser with `resolve_entities="internal"`: `False` stalls on an undeclared entity
and garbles later stanzas, `True` expands external entities (XXE). On top of that we reject any
DOCTYPE, comment or processing instruction, and enforce our own caps on stanza size and nesting
depth, so one hostile peer costs bounded memory and gets a stream error, never a crash.
"""
from __future__ import annotations

from typing import Iterator
from xml.sax.saxutils import quoteattr

from lxml import etree

from jitsi_base import ns
from jitsi_base.errors import StreamError
from .stanza import normalize

STREAM_TAG = ns.q(ns.STREAMS, "stream")


def too_big() -> StreamError:
    return StreamError(
        "policy-violation", "XML stanza is too big",
        etree.Element(ns.q(ns.XMPP_ERRORS, "stanza-too-big"), nsmap={None: ns.XMPP_ERRORS}))


def check_markup_declarations(data: bytes, previous_last: bytes = b"") -> None:
    """Reject `<!DOCTYPE`, `<!ENTITY`, `<!--` before libxml2 sees them: a DTD must never load,
    and an error raised later would name the wrong condition. CDATA sections are allowed."""
    start = 0
    if previous_last == b"<" and data[:1] == b"!":
        data = b"<" + data
    while True:
        i = data.find(b"<!", start)
        if i < 0:
            return
        if data.startswith(b"<![CDATA[", i) or b"<![CDATA[".startswith(data[i:]):
            start = i + 2
            continue
        raise StreamError("restricted-xml", "DTDs, entities and comments are not allowed")


def check_namespaces(el: etree._Element) -> None:
    """libxml2 only warns about an undeclared prefix and keeps `p:name` as a plain name; passed
    on, such an element is XML that the recipients' parsers reject (RFC 6120 11.2: streams must be
    namespace-well-formed), so one guest's message to a room would break everyone's stream."""
    tag = el.tag
    if ":" in tag and tag[0] != "{" or any(":" in k and k[0] != "{" for k in el.attrib):
        raise StreamError("not-well-formed", "Undeclared namespace prefix")


def _new_pull_parser() -> etree.XMLPullParser:
    return etree.XMLPullParser(
        events=("start", "end", "comment", "pi"), resolve_entities="internal",
        no_network=True, load_dtd=False, huge_tree=False, remove_blank_text=False)


class StreamParser:
    """Turns bytes of one XML stream into ('open', root) / ('stanza', el) / ('close', None).

    A stream restart (after STARTTLS or SASL) needs a new instance.
    """

    __slots__ = ("_parser", "_depth", "_root", "_pending", "_last", "max_stanza", "max_depth", "root_tag")

    def __init__(self, max_stanza: int, max_depth: int, root_tag: str = STREAM_TAG) -> None:
        self._parser = _new_pull_parser()
        self._depth = 0
        self._root: etree._Element | None = None
        self._pending = 0
        self._last = b""
        self.max_stanza = max_stanza
        self.max_depth = max_depth
        self.root_tag = root_tag

    def feed(self, data: bytes) -> list[tuple[str, etree._Element | None]]:
        """Parse one chunk. Byte accounting is per stanza where lxml lets us see it: a chunk
        that completes stanzas resets the count to the bytes after its last '>', a chunk that
        completes none adds to it; when the count before a chunk plus the chunk exceed the limit,
        the stanzas it completes are measured one by one.
        """
        check_markup_declarations(data, self._last)
        self._last = data[-1:]
        try:
            self._parser.feed(data)
        except etree.XMLSyntaxError as exc:
            # what libxml2 read before the error may already break one of our rules (its own
            # depth limit of 256 would otherwise hide ours): that is the error to report
            list(self._events(self._parser.read_events()))
            raise StreamError("not-well-formed", str(exc).split(" (line")[0]) from None
        out = list(self._events(self._parser.read_events()))
        if any(kind == "stanza" for kind, _ in out):
            # the first stanza completed here began in earlier chunks (`_pending` bytes ago)
            if self._pending + len(data) > self.max_stanza:
                for kind, el in out:
                    if kind == "stanza" and len(etree.tostring(el)) > self.max_stanza:
                        raise too_big()
            self._pending = len(data) - (data.rfind(b">") + 1)
        else:
            self._pending += len(data)
        if self._pending > self.max_stanza:
            raise too_big()
        return out

    def _events(self, events) -> Iterator[tuple[str, etree._Element | None]]:
        for ev, el in events:
            if ev == "start":
                self._depth += 1
                check_namespaces(el)
                if self._depth == 1:
                    if el.getroottree().docinfo.doctype:
                        raise StreamError("restricted-xml", "DOCTYPE is not allowed")
                    if el.tag != self.root_tag:
                        if etree.QName(el).localname == "stream":
                            raise StreamError("invalid-namespace", "Wrong stream namespace")
                        raise StreamError("not-well-formed", "Expected a stream header")
                    self._root = el
                    yield ("open", el)
                elif self._depth > self.max_depth:
                    raise StreamError("policy-violation", "XML nesting too deep")
            elif ev == "end":
                self._depth -= 1
                if self._depth == 1:
                    assert self._root is not None
                    self._root.remove(el)
                    el.tail = None
                    yield ("stanza", normalize(el))
                elif self._depth == 0:
                    yield ("close", None)
            else:  # comment / pi
                raise StreamError("restricted-xml", f"XML {'comments' if ev == 'comment' else 'processing instructions'} are not allowed")


def parse_document(data: bytes, max_size: int, max_depth: int) -> etree._Element:
    """One complete document (a WebSocket frame or a BOSH body) under the same restrictions."""
    if len(data) > max_size:
        raise too_big()
    check_markup_declarations(data)
    parser = _new_pull_parser()
    root = None
    depth = 0
    error = None
    try:
        parser.feed(data)
        parser.close()
    except etree.XMLSyntaxError as exc:
        error = StreamError("not-well-formed", str(exc).split(" (line")[0])
    for ev, el in parser.read_events():  # before the syntax error, if any: see StreamParser.feed
        if ev == "start":
            depth += 1
            check_namespaces(el)
            if root is None:
                root = el
                if el.getroottree().docinfo.doctype:
                    raise StreamError("restricted-xml", "DOCTYPE is not allowed")
            if depth > max_depth:
                raise StreamError("policy-violation", "XML nesting too deep")
        elif ev == "end":
            depth -= 1
        else:
            raise StreamError("restricted-xml", "XML comments and processing instructions are not allowed")
    if error is not None:
        raise error
    if root is None:
        raise StreamError("not-well-formed", "Empty document")
    return root


def serialize(el: etree._Element) -> bytes:
    return etree.tostring(el)


def stream_header(default_ns: str, stream_id: str | None, from_: str | None, to: str | None = None,
                  version: str | None = "1.0", lang: str = "en") -> bytes:
    """The opening tag of a stream; the one piece of XML that cannot be an element (it never closes)."""
    attrs = [f"xmlns={quoteattr(default_ns)}", f"xmlns:stream={quoteattr(ns.STREAMS)}"]
    if stream_id:
        attrs.append(f"id={quoteattr(stream_id)}")
    if from_:
        attrs.append(f"from={quoteattr(from_)}")
    if to:
        attrs.append(f"to={quoteattr(to)}")
    if version:
        attrs.append(f"version={quoteattr(version)}")
    attrs.append(f"xml:lang={quoteattr(lang)}")
    return ("<?xml version='1.0'?><stream:stream " + " ".join(attrs) + ">").encode()


STREAM_CLOSE = b"</stream:stream>"
