// A small XMPP client for the browser: WebSocket (RFC 7395) with a fallback to BOSH (XEP-0206),
// SASL ANONYMOUS, resource binding, IQ tracking. Stanzas are DOM elements (see xml.js).

import { NS, el, serialize, parse, child, children, childText, newId, stanzaError } from './xml.js';

function escapeAttr(s) {
  return s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export class XmppError extends Error {
  constructor(message, info = {}) {
    super(message);
    this.condition = info.condition || '';
    this.stanza = info.stanza || null;
    this.errorType = info.type || '';
    this.text = info.text || '';
  }
}

/** A queue of received elements for the negotiation phase (before the session is bound). */
class ElementQueue {
  constructor() { this.items = []; this.waiters = []; this.failure = null; }
  push(item) {
    const w = this.waiters.shift();
    if (w) { clearTimeout(w.timer); w.resolve(item); } else this.items.push(item);
  }
  fail(error) {
    this.failure = error;
    for (const w of this.waiters.splice(0)) { clearTimeout(w.timer); w.reject(error); }
  }
  next(timeoutMs, what) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const w = { resolve, reject };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new XmppError(`Timed out waiting for ${what}`, { condition: 'timeout' }));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }
}

class WebSocketTransport {
  constructor(url, domain) {
    this.name = 'websocket';
    this.url = url;
    this.domain = domain;
    this.ws = null;
    this.onElement = () => {};
    this.onClose = () => {};
    this.closing = false;
  }

  connect(timeoutMs = 8000) {
    return new Promise((resolve, reject) => {
      let settled = false;
      let ws;
      try {
        ws = new WebSocket(this.url, 'xmpp');
      } catch (e) {
        reject(new XmppError(`Cannot open ${this.url}: ${e.message}`, { condition: 'remote-connection-failed' }));
        return;
      }
      this.ws = ws;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        try { ws.close(); } catch (e) { /* ignore */ }
        reject(new XmppError('WebSocket connection timed out', { condition: 'remote-connection-failed' }));
      }, timeoutMs);
      ws.onopen = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (ws.protocol !== 'xmpp') {
          ws.close();
          reject(new XmppError('The server did not accept the xmpp WebSocket subprotocol',
            { condition: 'remote-connection-failed' }));
          return;
        }
        resolve();
      };
      ws.onerror = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new XmppError('WebSocket connection failed', { condition: 'remote-connection-failed' }));
      };
      ws.onclose = (ev) => {
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          reject(new XmppError('WebSocket closed while connecting', { condition: 'remote-connection-failed' }));
          return;
        }
        this.onClose({ code: ev.code, reason: ev.reason, expected: this.closing });
      };
      ws.onmessage = (ev) => {
        if (typeof ev.data !== 'string') return;
        const node = parse(ev.data);
        if (node) this.onElement(node);
      };
    });
  }

  openStream() {
    this.sendRaw(serialize(el('open', { xmlns: NS.FRAMING, to: this.domain, version: '1.0' })));
  }

  restart() { this.openStream(); }

  sendRaw(text) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  send(node) { this.sendRaw(serialize(node)); }

  close() {
    this.closing = true;
    if (!this.ws) return;
    try {
      this.sendRaw(serialize(el('close', { xmlns: NS.FRAMING })));
      this.ws.close();
    } catch (e) { /* already closed */ }
  }
}

class BoshTransport {
  constructor(url, domain) {
    this.name = 'bosh';
    this.url = url;
    this.domain = domain;
    this.rid = Math.floor(Math.random() * 1e9) + 1000;
    this.sid = null;
    this.wait = 60;
    this.maxRequests = 2;
    this.queue = [];
    this.inflight = 0;
    this.closed = false;
    this.closing = false;
    this.onElement = () => {};
    this.onClose = () => {};
  }

  _body(attrs, payload = '') {
    const all = { rid: this.rid++, ...attrs };
    const attrText = Object.entries(all).map(([k, v]) => ` ${k}="${escapeAttr(String(v))}"`).join('');
    const head = `<body xmlns="${NS.BOSH}" xmlns:xmpp="${NS.XBOSH}"${attrText}`;
    return payload ? `${head}>${payload}</body>` : `${head}/>`;
  }

  async _post(text, timeoutMs) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const res = await fetch(this.url, {
        method: 'POST', body: text, signal: controller.signal,
        headers: { 'Content-Type': 'text/xml; charset=utf-8' },
      });
      const reply = await res.text();
      const body = parse(reply);
      if (!res.ok && !body) throw new XmppError(`BOSH HTTP ${res.status}`, { condition: 'remote-connection-failed' });
      if (!body || body.localName !== 'body') throw new XmppError('Bad BOSH response', { condition: 'bad-format' });
      return body;
    } catch (e) {
      if (e instanceof XmppError) throw e;
      throw new XmppError(`BOSH request failed: ${e.message}`, { condition: 'remote-connection-failed' });
    } finally {
      clearTimeout(timer);
    }
  }

  async connect(timeoutMs = 10000) {
    const text = this._body({
      to: this.domain, 'xml:lang': 'en', ver: '1.6', wait: this.wait, hold: 1,
      content: 'text/xml; charset=utf-8', 'xmpp:version': '1.0',
    });
    const body = await this._post(text, timeoutMs);
    if (body.getAttribute('type') === 'terminate') {
      throw new XmppError(`BOSH session refused: ${body.getAttribute('condition') || 'terminate'}`,
        { condition: body.getAttribute('condition') || 'remote-connection-failed' });
    }
    this.sid = body.getAttribute('sid');
    if (!this.sid) throw new XmppError('BOSH session without a sid', { condition: 'bad-format' });
    this.wait = parseInt(body.getAttribute('wait') || '60', 10);
    this.maxRequests = Math.max(1, parseInt(body.getAttribute('requests') || '2', 10));
    this._firstBody = body;
  }

  openStream() {
    // the creation response carries (or a poll will carry) the first stream features
    const body = this._firstBody;
    this._firstBody = null;
    if (body) setTimeout(() => this._deliver(body), 0);
    this._flush();
  }

  restart() {
    this.queue.push({ restart: true });
    this._flush();
  }

  send(node) {
    this.queue.push(serialize(node));
    this._flush();
  }

  _deliver(body) {
    for (const c of Array.from(body.children)) this.onElement(c);
  }

  _flush() {
    if (this.closed || !this.sid) return;
    if (this.inflight >= this.maxRequests) return;
    if (!this.queue.length && this.inflight > 0) return;
    let text;
    if (this.queue.length && this.queue[0].restart) {
      this.queue.shift();
      text = this._body({ sid: this.sid, to: this.domain, 'xml:lang': 'en', 'xmpp:restart': 'true' });
    } else {
      const payload = this.queue.filter((q) => typeof q === 'string');
      this.queue = this.queue.filter((q) => typeof q !== 'string');
      text = this._body({ sid: this.sid }, payload.join(''));
    }
    this._request(text, 0);
  }

  async _request(text, attempt) {
    this.inflight += 1;
    let body;
    try {
      body = await this._post(text, (this.wait + 10) * 1000);
    } catch (e) {
      this.inflight -= 1;
      if (this.closed) return;
      if (attempt < 2) {
        setTimeout(() => this._request(text, attempt + 1), 1000 * (attempt + 1));
        return;
      }
      this._terminated(e.message);
      return;
    }
    this.inflight -= 1;
    if (this.closed) return;
    this._deliver(body);
    if (body.getAttribute('type') === 'terminate') {
      this.serverEnded = true;
      this._terminated(body.getAttribute('condition') || 'terminated');
      return;
    }
    this._flush();
  }

  _terminated(reason) {
    if (this.closed) return;
    this.closed = true;
    this.onClose({ reason, expected: this.closing });
  }

  close() {
    if (!this.sid || this.closing || this.serverEnded) return;
    this.closing = true;
    const payload = this.queue.filter((q) => typeof q === 'string').join('');
    this.queue = [];
    const text = this._body({ sid: this.sid, type: 'terminate' },
      payload + serialize(el('presence', { xmlns: NS.CLIENT, type: 'unavailable' })));
    const wasClosed = this.closed;
    this.closed = true;
    // also after our requests failed: if the server still has the session, it ends now rather
    // than after its inactivity timeout (others would see us twice until then)
    fetch(this.url, { method: 'POST', body: text, keepalive: true }).catch(() => {});
    if (!wasClosed) this.onClose({ reason: 'closed', expected: true });
  }
}

export class XmppClient extends EventTarget {
  constructor({ websocketUrl, boshUrl, domain, token = '', user = '', password = '' }) {
    super();
    // a JWT travels on the URL and SASL is ANONYMOUS, as Jitsi's clients do ([auth] mode "token")
    const withToken = (url) => (url && token ? `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : url);
    this.websocketUrl = withToken(websocketUrl);
    this.boshUrl = withToken(boshUrl);
    this.domain = domain;
    this.user = user; // a registered user signs in with PLAIN (the server offers it over TLS or on loopback)
    this.password = password;
    this.transport = null;
    this.jid = null;
    this.connected = false;
    this.pending = new Map();
    this.iqHandlers = [];
    this._queue = null;
    // keepalive: a ping to the server now and then; no answer means the connection is dead even
    // if the socket has not noticed (a network that silently went away)
    this.keepaliveMs = 20000;
    this.keepaliveTimeoutMs = 10000;
    this._keepalive = null;
  }

  get transportName() { return this.transport ? this.transport.name : ''; }

  /** Connect and log in anonymously: WebSocket first, BOSH if that fails. */
  async connect({ preferBosh = false } = {}) {
    const order = preferBosh ? ['bosh', 'websocket'] : ['websocket', 'bosh'];
    const errors = [];
    for (const kind of order) {
      const url = kind === 'websocket' ? this.websocketUrl : this.boshUrl;
      if (!url) continue;
      const transport = kind === 'websocket' ? new WebSocketTransport(url, this.domain)
        : new BoshTransport(url, this.domain);
      try {
        await transport.connect();
      } catch (e) {
        errors.push(`${kind}: ${e.message}`);
        console.warn(`XMPP over ${kind} failed:`, e.message);
        continue;
      }
      this.transport = transport;
      try {
        await this._login();
      } catch (e) {
        transport.onClose = () => {};
        transport.close();
        this.transport = null;
        throw e;
      }
      return this.jid;
    }
    throw new XmppError(`Cannot reach the server (${errors.join('; ')})`, { condition: 'remote-connection-failed' });
  }

  async _login() {
    const t = this.transport;
    const q = this._queue = new ElementQueue();
    t.onElement = (node) => this._onElement(node);
    t.onClose = (info) => this._onClose(info);
    const features = async () => {
      for (;;) {
        const node = await q.next(10000, 'stream features');
        if (node.localName === 'features') return node;
        if (node.localName === 'error' && node.namespaceURI === NS.STREAMS) throw this._streamError(node);
      }
    };
    t.openStream();
    let feats = await features();
    const mechs = children(child(feats, NS.SASL, 'mechanisms'), NS.SASL, 'mechanism').map((m) => m.textContent.trim());
    if (this.user) {
      if (!mechs.includes('PLAIN')) {
        throw new XmppError('This server offers no password sign-in to this page (open it over https)',
          { condition: 'not-authorized' });
      }
      const authcid = this.user.includes('@') ? this.user.split('@')[0] : this.user;
      const raw = new TextEncoder().encode(`\0${authcid}\0${this.password}`);
      t.send(el('auth', { xmlns: NS.SASL, mechanism: 'PLAIN' }, [btoa(String.fromCharCode(...raw))]));
    } else {
      if (!mechs.includes('ANONYMOUS')) {
        throw new XmppError('This server does not let guests in here (no SASL ANONYMOUS)', { condition: 'not-authorized' });
      }
      t.send(el('auth', { xmlns: NS.SASL, mechanism: 'ANONYMOUS' }));
    }
    for (;;) {
      const node = await q.next(10000, 'SASL result');
      if (node.localName === 'success') break;
      if (node.localName === 'failure') {
        const cond = Array.from(node.children).find((c) => c.localName !== 'text');
        const text = (Array.from(node.children).find((c) => c.localName === 'text') || {}).textContent || '';
        const who = this.user ? 'Sign-in' : 'Guest login';
        throw new XmppError(`${who} refused (${cond ? cond.localName : 'failure'})${text ? ': ' + text : ''}`,
          { condition: cond ? cond.localName : 'not-authorized', text });
      }
      if (node.localName === 'error' && node.namespaceURI === NS.STREAMS) throw this._streamError(node);
    }
    t.restart();
    feats = await features();
    if (!child(feats, NS.BIND, 'bind')) throw new XmppError('No resource binding offered', { condition: 'bad-format' });
    const bindId = newId('bind');
    t.send(el('iq', { xmlns: NS.CLIENT, type: 'set', id: bindId }, [el('bind', { xmlns: NS.BIND })]));
    for (;;) {
      const node = await q.next(10000, 'resource binding');
      if (node.localName === 'iq' && node.getAttribute('id') === bindId) {
        if (node.getAttribute('type') !== 'result') {
          const err = stanzaError(node);
          throw new XmppError(`Resource binding failed: ${err ? err.condition : '?'}`, { condition: err && err.condition });
        }
        this.jid = childText(child(node, NS.BIND, 'bind'), NS.BIND, 'jid');
        break;
      }
    }
    const session = child(feats, NS.SESSION, 'session');
    this._queue = null;
    this.connected = true;
    if (session && !child(session, NS.SESSION, 'optional')) {
      await this.sendIQ(el('iq', { xmlns: NS.CLIENT, type: 'set' }, [el('session', { xmlns: NS.SESSION })]));
    }
    this._startKeepalive();
  }

  _startKeepalive() {
    clearInterval(this._keepalive);
    this._keepalive = setInterval(async () => {
      if (!this.connected) {
        clearInterval(this._keepalive);
        return;
      }
      try {
        await this.sendIQ(el('iq', { xmlns: NS.CLIENT, type: 'get', to: this.domain }, [el('ping', { xmlns: NS.PING })]),
          this.keepaliveTimeoutMs);
      } catch (e) {
        if (e.condition === 'timeout' && this.connected) this.drop('the server stopped answering');
      }
    }, this.keepaliveMs);
  }

  /** Give up on the current connection as if it had dropped (a `disconnected` event follows). */
  drop(reason = 'dropped') {
    const t = this.transport;
    if (t) {
      t.onClose = () => {};
      t.close();
    }
    this._onClose({ reason, expected: false });
  }

  _streamError(node) {
    const cond = Array.from(node.children).find((c) => c.localName !== 'text');
    return new XmppError(`Stream error: ${cond ? cond.localName : 'unknown'}`, { condition: cond ? cond.localName : '' });
  }

  _onElement(node) {
    if (node.namespaceURI === NS.FRAMING && node.localName === 'open') return;
    if (this._queue) { this._queue.push(node); return; }
    if (node.namespaceURI === NS.FRAMING && node.localName === 'close') {
      this._onClose({ reason: 'the server closed the stream', expected: false });
      return;
    }
    if (node.localName === 'error' && node.namespaceURI === NS.STREAMS) {
      this._streamErr = this._streamError(node);
      return;
    }
    switch (node.localName) {
      case 'iq': this._onIq(node); break;
      case 'message': this.dispatchEvent(new CustomEvent('message', { detail: node })); break;
      case 'presence': this.dispatchEvent(new CustomEvent('presence', { detail: node })); break;
      default: break;
    }
  }

  _onIq(iq) {
    const type = iq.getAttribute('type');
    const id = iq.getAttribute('id');
    if (type === 'result' || type === 'error') {
      const p = this.pending.get(id);
      if (!p) return;
      this.pending.delete(id);
      clearTimeout(p.timer);
      if (type === 'result') p.resolve(iq);
      else {
        const err = stanzaError(iq) || { condition: 'undefined-condition', text: '', type: '' };
        p.reject(new XmppError(`${err.condition}${err.text ? ': ' + err.text : ''}`,
          { condition: err.condition, stanza: iq, type: err.type, text: err.text }));
      }
      return;
    }
    for (const handler of this.iqHandlers) {
      try {
        if (handler(iq)) return;
      } catch (e) {
        console.error('IQ handler failed', e);
        this.sendError(iq, 'cancel', 'internal-server-error');
        return;
      }
    }
    const payload = iq.firstElementChild;
    if (type === 'get' && payload && payload.namespaceURI === NS.PING) {
      this.send(this.resultFor(iq));
    } else if (type === 'get' && payload && payload.namespaceURI === NS.DISCO_INFO) {
      this.send(this.resultFor(iq, [el('query', { xmlns: NS.DISCO_INFO }, [
        el('identity', { category: 'client', type: 'web', name: 'jitsi-py web' }),
        ...[NS.DISCO_INFO, NS.PING, NS.JINGLE, NS.RTP, NS.ICE_UDP, NS.DTLS].map((v) => el('feature', { var: v })),
      ])]));
    } else {
      this.sendError(iq, 'cancel', 'service-unavailable');
    }
  }

  resultFor(iq, payload = []) {
    return el('iq', { xmlns: NS.CLIENT, type: 'result', id: iq.getAttribute('id'), to: iq.getAttribute('from') }, payload);
  }

  sendError(iq, type, condition, app = null, text = '') {
    this.send(el('iq', { xmlns: NS.CLIENT, type: 'error', id: iq.getAttribute('id'), to: iq.getAttribute('from') }, [
      el('error', { type }, [el(condition, { xmlns: NS.STANZAS }), text ? el('text', { xmlns: NS.STANZAS }, [text]) : null,
        app]),
    ]));
  }

  send(node) {
    if (!this.transport || !this.connected) return; // stanzas only on a bound, live session
    this.transport.send(node);
  }

  /** Send an IQ (id added if missing); resolves with the result, rejects with XmppError. */
  sendIQ(iq, timeoutMs = 15000) {
    if (!this.connected) return Promise.reject(new XmppError('Not connected', { condition: 'remote-connection-failed' }));
    if (!iq.getAttribute('id')) iq.setAttribute('id', newId('iq'));
    const id = iq.getAttribute('id');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new XmppError('No answer from the server', { condition: 'timeout' }));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.send(iq);
    });
  }

  _onClose(info) {
    const wasConnected = this.connected;
    this.connected = false;
    clearInterval(this._keepalive);
    if (this._queue) this._queue.fail(new XmppError(`Connection closed (${info.reason || info.code || ''})`,
      { condition: 'remote-connection-failed' }));
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new XmppError('Connection closed', { condition: 'remote-connection-failed' }));
    }
    this.pending.clear();
    if (wasConnected) {
      this.dispatchEvent(new CustomEvent('disconnected', {
        detail: { expected: !!info.expected, reason: (this._streamErr && this._streamErr.message) || info.reason || '' },
      }));
    }
  }

  disconnect() {
    if (!this.transport) return;
    const t = this.transport;
    this.connected = false;
    clearInterval(this._keepalive);
    t.onClose = () => {};
    t.close();
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new XmppError('Disconnected', { condition: 'remote-connection-failed' }));
    }
    this.pending.clear();
  }
}
