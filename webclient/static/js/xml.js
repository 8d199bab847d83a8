// Small helpers for building and reading XMPP stanzas with the browser's own DOM.
// Elements are built with createElementNS, so XMLSerializer writes namespaces for us.

export const NS = {
  CLIENT: 'jabber:client',
  FRAMING: 'urn:ietf:params:xml:ns:xmpp-framing',
  STREAMS: 'http://etherx.jabber.org/streams',
  SASL: 'urn:ietf:params:xml:ns:xmpp-sasl',
  BIND: 'urn:ietf:params:xml:ns:xmpp-bind',
  SESSION: 'urn:ietf:params:xml:ns:xmpp-session',
  STANZAS: 'urn:ietf:params:xml:ns:xmpp-stanzas',
  BOSH: 'http://jabber.org/protocol/httpbind',
  XBOSH: 'urn:xmpp:xbosh',
  MUC: 'http://jabber.org/protocol/muc',
  MUC_USER: 'http://jabber.org/protocol/muc#user',
  NICK: 'http://jabber.org/protocol/nick',
  DISCO_INFO: 'http://jabber.org/protocol/disco#info',
  PING: 'urn:xmpp:ping',
  DELAY: 'urn:xmpp:delay',
  FOCUS: 'http://jitsi.org/protocol/focus',
  AUDIOMUTED: 'http://jitsi.org/jitmeet/audio',
  VIDEOMUTED: 'http://jitsi.org/jitmeet/video',
  JITMEET: 'http://jitsi.org/jitmeet',
  START_MUTED: 'http://jitsi.org/jitmeet/start-muted',
  MUC_ADMIN: 'http://jabber.org/protocol/muc#admin',
  MUC_OWNER: 'http://jabber.org/protocol/muc#owner',
  MUC_ROOMCONFIG: 'http://jabber.org/protocol/muc#roomconfig',
  DATA_FORMS: 'jabber:x:data',
  JINGLE: 'urn:xmpp:jingle:1',
  JINGLE_ERRORS: 'urn:xmpp:jingle:errors:1',
  RTP: 'urn:xmpp:jingle:apps:rtp:1',
  RTCP_FB: 'urn:xmpp:jingle:apps:rtp:rtcp-fb:0',
  HDREXT: 'urn:xmpp:jingle:apps:rtp:rtp-hdrext:0',
  SSMA: 'urn:xmpp:jingle:apps:rtp:ssma:0',
  ICE_UDP: 'urn:xmpp:jingle:transports:ice-udp:1',
  DTLS: 'urn:xmpp:jingle:apps:dtls:0',
  GROUPING: 'urn:xmpp:jingle:apps:grouping:0',
  COLIBRI: 'http://jitsi.org/protocol/colibri',
  SCTP: 'urn:xmpp:jingle:transports:dtls-sctp:1',
  EXTDISCO: 'urn:xmpp:extdisco:2',
};

const doc = document.implementation.createDocument(null, null, null);

/**
 * Build an element: el('iq', {xmlns: NS.CLIENT, type: 'set'}, [el('ping', {xmlns: NS.PING})]).
 * Children without their own xmlns inherit the parent's namespace; strings become text.
 */
export function el(name, attrs = {}, children = [], parentNs = null) {
  const ns = attrs.xmlns !== undefined ? attrs.xmlns : parentNs;
  const node = ns ? doc.createElementNS(ns, name) : doc.createElement(name);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'xmlns' || value === undefined || value === null) continue;
    if (key.startsWith('xml:')) node.setAttributeNS('http://www.w3.org/XML/1998/namespace', key, String(value));
    else node.setAttribute(key, String(value));
  }
  for (const child of [].concat(children)) {
    if (child === undefined || child === null || child === false) continue;
    if (typeof child === 'string' || typeof child === 'number') node.appendChild(doc.createTextNode(String(child)));
    else if (child.nodeType === 1 && !child.namespaceURI && ns) node.appendChild(rebase(child, ns));
    else node.appendChild(child);
  }
  return node;
}

// An element built before its parent was known: give it (and its namespace-less children) the parent's namespace.
function rebase(node, ns) {
  const copy = doc.createElementNS(ns, node.localName);
  for (const a of Array.from(node.attributes)) copy.setAttribute(a.name, a.value);
  for (const c of Array.from(node.childNodes)) {
    copy.appendChild(c.nodeType === 1 && !c.namespaceURI ? rebase(c, ns) : c.cloneNode(true));
  }
  return copy;
}

const serializer = new XMLSerializer();
export function serialize(node) {
  return serializer.serializeToString(node);
}

const parser = new DOMParser();
/** Parse one XML document (a WebSocket frame, a BOSH body); null if it is not well-formed. */
export function parse(text) {
  const d = parser.parseFromString(text, 'text/xml');
  const root = d.documentElement;
  if (!root || root.getElementsByTagNameNS('http://www.mozilla.org/newlayout/xml/parsererror.xml', 'parsererror').length
      || root.localName === 'parsererror') return null;
  return root;
}

/** Child elements, optionally filtered by namespace (null: any) and local name. */
export function children(node, ns = null, name = null) {
  if (!node) return [];
  return Array.from(node.children).filter(
    (c) => (ns === null || c.namespaceURI === ns) && (name === null || c.localName === name));
}

export function child(node, ns = null, name = null) {
  return children(node, ns, name)[0] || null;
}

export function childText(node, ns, name) {
  const c = child(node, ns, name);
  return c ? c.textContent : null;
}

export function bareJid(jid) {
  return (jid || '').split('/')[0];
}

export function resourceOf(jid) {
  const i = (jid || '').indexOf('/');
  return i < 0 ? '' : jid.slice(i + 1);
}

let counter = 0;
export function newId(prefix = 'w') {
  counter += 1;
  return `${prefix}${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

export function randomHex(chars) {
  const bytes = new Uint8Array(Math.ceil(chars / 2));
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('').slice(0, chars);
}

/** The defined condition of a stanza error (<error><not-authorized xmlns=stanzas/>...) and its parts. */
export function stanzaError(stanza) {
  const err = child(stanza, null, 'error');
  if (!err) return null;
  const cond = children(err, NS.STANZAS).find((c) => c.localName !== 'text');
  return {
    type: err.getAttribute('type') || '',
    condition: cond ? cond.localName : 'undefined-condition',
    text: childText(err, NS.STANZAS, 'text') || '',
    element: err,
  };
}
