// Jingle <-> SDP for the browser, the same mapping as jitsi_protocols/sdp.py:
// the offer gets ONE m-section per remote source that has an msid (the bridge's receive *slots*);
// the first section of each kind is sendrecv (it also carries what we send), the others sendonly
// (from the bridge's side); everything is BUNDLEd on the one transport the bridge allocated.

import { NS, el, child, children } from './xml.js';

/** A <jingle/> element to {action, sid, contents: [...], bundle, bridgeSession, reason}. */
export function parseJingle(jingle) {
  const out = {
    action: jingle.getAttribute('action') || '',
    sid: jingle.getAttribute('sid') || '',
    initiator: jingle.getAttribute('initiator') || '',
    contents: [],
    bundle: [],
    bridgeSession: '',
    reason: '',
    startMuted: null,
  };
  const sm = child(jingle, NS.START_MUTED, 'startmuted');
  if (sm) out.startMuted = { audio: sm.getAttribute('audio') === 'true', video: sm.getAttribute('video') === 'true' };
  for (const c of children(jingle, NS.JINGLE, 'content')) out.contents.push(parseContent(c));
  const group = child(jingle, NS.GROUPING, 'group');
  if (group) out.bundle = children(group, NS.GROUPING, 'content').map((g) => g.getAttribute('name'));
  const bs = child(jingle, NS.FOCUS, 'bridge-session');
  if (bs) out.bridgeSession = bs.getAttribute('id') || '';
  const reason = child(jingle, NS.JINGLE, 'reason');
  if (reason) {
    const r = Array.from(reason.children).find((x) => x.localName !== 'text');
    out.reason = r ? r.localName : '';
  }
  return out;
}

function parseContent(c) {
  const content = {
    name: c.getAttribute('name') || '',
    senders: c.getAttribute('senders') || 'both',
    kind: 'application',
    payloadTypes: [],
    headerExtensions: [],
    sources: [],
    groups: [],
    transport: null,
  };
  const desc = child(c, NS.RTP, 'description');
  if (desc) {
    content.kind = desc.getAttribute('media') || '';
    for (const pt of children(desc, NS.RTP, 'payload-type')) {
      content.payloadTypes.push({
        id: parseInt(pt.getAttribute('id'), 10),
        name: pt.getAttribute('name') || '',
        clockrate: parseInt(pt.getAttribute('clockrate') || '0', 10),
        channels: parseInt(pt.getAttribute('channels') || '1', 10),
        parameters: children(pt, NS.RTP, 'parameter').filter((p) => p.getAttribute('name'))
          .map((p) => [p.getAttribute('name'), p.getAttribute('value') || '']),
        rtcpFb: children(pt, NS.RTCP_FB, 'rtcp-fb').map((f) => [f.getAttribute('type') || '', f.getAttribute('subtype') || '']),
      });
    }
    for (const ext of children(desc, NS.HDREXT, 'rtp-hdrext')) {
      content.headerExtensions.push({ id: parseInt(ext.getAttribute('id'), 10), uri: ext.getAttribute('uri') || '' });
    }
    for (const s of children(desc, NS.SSMA, 'source')) {
      const src = { ssrc: Number(s.getAttribute('ssrc')), kind: content.kind, name: s.getAttribute('name') || '',
        msid: '', cname: '', owner: '' };
      for (const p of children(s, NS.SSMA, 'parameter')) {
        if (p.getAttribute('name') === 'msid') src.msid = p.getAttribute('value') || '';
        else if (p.getAttribute('name') === 'cname') src.cname = p.getAttribute('value') || '';
      }
      const info = child(s, NS.JITMEET, 'ssrc-info');
      if (info) src.owner = info.getAttribute('owner') || '';
      content.sources.push(src);
    }
    for (const g of children(desc, NS.SSMA, 'ssrc-group')) {
      content.groups.push({ semantics: g.getAttribute('semantics') || '',
        ssrcs: children(g, NS.SSMA, 'source').map((s) => Number(s.getAttribute('ssrc'))) });
    }
  }
  const tr = child(c, NS.ICE_UDP, 'transport');
  if (tr) content.transport = parseTransport(tr);
  return content;
}

function parseTransport(tr) {
  const t = { ufrag: tr.getAttribute('ufrag') || '', pwd: tr.getAttribute('pwd') || '', fingerprints: [],
    candidates: [], websocketUrl: '', sctpPort: null };
  for (const fp of children(tr, NS.DTLS, 'fingerprint')) {
    t.fingerprints.push({ hash: fp.getAttribute('hash') || 'sha-256', value: fp.textContent.trim(),
      setup: fp.getAttribute('setup') || 'actpass' });
  }
  for (const c of children(tr, NS.ICE_UDP, 'candidate')) {
    t.candidates.push({
      foundation: c.getAttribute('foundation'), component: parseInt(c.getAttribute('component') || '1', 10),
      protocol: (c.getAttribute('protocol') || 'udp').toLowerCase(), priority: Number(c.getAttribute('priority') || '0'),
      ip: c.getAttribute('ip'), port: parseInt(c.getAttribute('port'), 10), type: c.getAttribute('type') || 'host',
      relAddr: c.getAttribute('rel-addr'), relPort: c.getAttribute('rel-port'), tcptype: c.getAttribute('tcptype'),
      generation: c.getAttribute('generation') || '0',
    });
  }
  const ws = child(tr, NS.COLIBRI, 'web-socket');
  if (ws) t.websocketUrl = ws.getAttribute('url') || '';
  const sctp = child(tr, NS.SCTP, 'sctpmap');
  if (sctp) t.sctpPort = parseInt(sctp.getAttribute('number') || '5000', 10);
  return t;
}

function candidateLine(c) {
  let line = `a=candidate:${c.foundation} ${c.component} ${c.protocol.toUpperCase()} ${c.priority} ${c.ip} ${c.port} typ ${c.type}`;
  if (c.relAddr) line += ` raddr ${c.relAddr} rport ${c.relPort || 0}`;
  if (c.tcptype) line += ` tcptype ${c.tcptype}`;
  return line;
}

function mediaLines(content) {
  const lines = [];
  for (const pt of content.payloadTypes) {
    lines.push(`a=rtpmap:${pt.id} ${pt.name}/${pt.clockrate}${pt.channels > 1 ? '/' + pt.channels : ''}`);
    if (pt.parameters.length) lines.push(`a=fmtp:${pt.id} ` + pt.parameters.map(([k, v]) => `${k}=${v}`).join(';'));
    for (const [type, sub] of pt.rtcpFb) lines.push(`a=rtcp-fb:${pt.id} ${type}${sub ? ' ' + sub : ''}`);
  }
  for (const ext of content.headerExtensions) lines.push(`a=extmap:${ext.id} ${ext.uri}`);
  return lines;
}

/** The transport of a session-initiate (the first content that has one). */
export function offerTransport(session) {
  const c = session.contents.find((x) => x.transport);
  return c ? c.transport : null;
}

/**
 * An SDP offer from a parsed session-initiate, plus the m-section layout:
 * {sdp, sections: [{mid, kind, slot, source}]} where slot is the index among sections of that kind.
 */
export function buildOffer(session, sessionId = Date.now()) {
  const transport = offerTransport(session);
  if (!transport) throw new Error('session-initiate without a transport');
  const sections = [];
  for (const content of session.contents) {
    if (content.kind !== 'audio' && content.kind !== 'video') continue; // no data channel: we use colibri-ws
    const fmts = content.payloadTypes.map((pt) => pt.id).join(' ');
    let remote = content.sources.filter((s) => s.msid);
    if (!remote.length) remote = content.sources;
    const count = Math.max(1, remote.length);
    for (let i = 0; i < count; i += 1) {
      const mid = i === 0 ? content.name : `${content.name}${i}`;
      const lines = [`m=${content.kind} 9 UDP/TLS/RTP/SAVPF ${fmts}`, 'c=IN IP4 0.0.0.0', `a=mid:${mid}`, 'a=rtcp-mux'];
      const src = remote[i];
      if (src) {
        lines.push(`a=${i === 0 && content.senders === 'both' ? 'sendrecv' : 'sendonly'}`);
        if (src.msid) lines.push(`a=msid:${src.msid}`);
        const cname = src.cname || src.owner || 'jvb';
        lines.push(`a=ssrc:${src.ssrc} cname:${cname}`);
        if (src.msid) lines.push(`a=ssrc:${src.ssrc} msid:${src.msid}`);
        for (const g of content.groups) {
          if (g.ssrcs.includes(src.ssrc)) {
            lines.push(`a=ssrc-group:${g.semantics} ${g.ssrcs.join(' ')}`);
            for (const other of g.ssrcs.slice(1)) lines.push(`a=ssrc:${other} cname:${cname}`);
          }
        }
      } else {
        lines.push(content.senders === 'both' ? 'a=recvonly' : 'a=inactive');
      }
      lines.push(...mediaLines(content));
      sections.push({ mid, kind: content.kind, slot: i, source: src || null, lines, content });
    }
  }
  const head = ['v=0', `o=- ${sessionId} 2 IN IP4 127.0.0.1`, 's=-', 't=0 0',
    `a=group:BUNDLE ${sections.map((s) => s.mid).join(' ')}`, 'a=msid-semantic: WMS *'];
  const body = [];
  for (const s of sections) {
    body.push(...s.lines, `a=ice-ufrag:${transport.ufrag}`, `a=ice-pwd:${transport.pwd}`);
    for (const fp of transport.fingerprints) body.push(`a=fingerprint:${fp.hash} ${fp.value}`, `a=setup:${fp.setup}`);
    for (const c of transport.candidates) body.push(candidateLine(c));
    body.push('a=end-of-candidates');
  }
  return {
    sdp: head.concat(body).join('\r\n') + '\r\n',
    sections: sections.map(({ mid, kind, slot, source }) => ({ mid, kind, slot, source })),
    transport,
  };
}

/** `candidate:...` (with or without `a=`) to the candidate model; null for what the bridge cannot use. */
export function parseCandidate(text) {
  let t = text.trim();
  if (t.startsWith('a=')) t = t.slice(2);
  if (t.startsWith('candidate:')) t = t.slice('candidate:'.length);
  const bits = t.split(/\s+/);
  if (bits.length < 8 || bits[6] !== 'typ') return null;
  const c = { foundation: bits[0], component: parseInt(bits[1], 10), protocol: bits[2].toLowerCase(),
    priority: Number(bits[3]), ip: bits[4], port: parseInt(bits[5], 10), type: bits[7], generation: '0',
    relAddr: null, relPort: null, tcptype: null };
  const rest = bits.slice(8);
  for (let i = 0; i + 1 < rest.length; i += 2) {
    if (rest[i] === 'raddr') c.relAddr = rest[i + 1];
    else if (rest[i] === 'rport') c.relPort = rest[i + 1];
    else if (rest[i] === 'tcptype') c.tcptype = rest[i + 1];
    else if (rest[i] === 'generation') c.generation = rest[i + 1];
  }
  return c;
}

/** What an answer tells the bridge: {transport, sources, groups} (as sdp.parse_answer). */
export function parseAnswer(sdp) {
  let ufrag = '';
  let pwd = '';
  const fingerprints = [];
  const candidates = [];
  const sources = new Map();
  const groups = [];
  let kind = '';
  let direction = '';
  let msid = '';
  let setup = 'active';
  for (const raw of sdp.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith('m=')) {
      kind = line.slice(2).split(' ')[0];
      direction = '';
      msid = '';
    } else if (line.startsWith('a=ice-ufrag:') && !ufrag) ufrag = line.split(':')[1];
    else if (line.startsWith('a=ice-pwd:') && !pwd) pwd = line.slice('a=ice-pwd:'.length);
    else if (line.startsWith('a=fingerprint:')) {
      const [algo, value] = line.slice('a=fingerprint:'.length).split(' ');
      if (!fingerprints.some((f) => f.value === value)) fingerprints.push({ hash: algo.toLowerCase(), value, setup });
    } else if (line.startsWith('a=setup:')) {
      setup = line.slice('a=setup:'.length);
      for (const f of fingerprints) f.setup = setup;
    } else if (line.startsWith('a=candidate:')) {
      const c = parseCandidate(line);
      if (c && c.component === 1 && c.protocol === 'udp' && !c.ip.endsWith('.local')
          && !candidates.some((o) => o.ip === c.ip && o.port === c.port)) candidates.push(c);
    } else if (['a=sendrecv', 'a=sendonly', 'a=recvonly', 'a=inactive'].includes(line)) direction = line.slice(2);
    else if (line.startsWith('a=msid:')) msid = line.slice('a=msid:'.length);
    else if (line.startsWith('a=ssrc-group:') && (kind === 'audio' || kind === 'video')
             && (direction === 'sendrecv' || direction === 'sendonly')) {
      const [semantics, ...ssrcs] = line.slice('a=ssrc-group:'.length).split(' ');
      groups.push({ kind, semantics, ssrcs: ssrcs.map(Number) });
    } else if (line.startsWith('a=ssrc:') && (kind === 'audio' || kind === 'video')
               && (direction === 'sendrecv' || direction === 'sendonly')) {
      const m = /^a=ssrc:(\d+) ([\w-]+):?(.*)$/.exec(line);
      if (m) {
        const ssrc = Number(m[1]);
        if (!sources.has(ssrc)) sources.set(ssrc, { ssrc, kind, msid, cname: '' });
        const src = sources.get(ssrc);
        if (m[2] === 'cname') src.cname = m[3];
        else if (m[2] === 'msid') src.msid = m[3];
      }
    }
  }
  // groups of what is sent (a browser may list an RTX group in a receive-only section too)
  const sent = groups.filter((g) => g.ssrcs.every((ssrc) => sources.has(ssrc)));
  return { transport: { ufrag, pwd, fingerprints, candidates }, sources: Array.from(sources.values()), groups: sent };
}

function payloadTypeElement(pt) {
  return el('payload-type', { xmlns: NS.RTP, id: pt.id, name: pt.name, clockrate: pt.clockrate,
    channels: pt.channels !== 1 ? pt.channels : undefined }, [
    ...pt.parameters.map(([name, value]) => el('parameter', { xmlns: NS.RTP, name, value })),
    ...pt.rtcpFb.map(([type, subtype]) => el('rtcp-fb', { xmlns: NS.RTCP_FB, type, subtype: subtype || undefined })),
  ]);
}

export function transportElement(t) {
  return el('transport', { xmlns: NS.ICE_UDP, ufrag: t.ufrag, pwd: t.pwd }, [
    ...t.fingerprints.map((fp) => el('fingerprint', { xmlns: NS.DTLS, hash: fp.hash, setup: fp.setup }, [fp.value])),
    ...t.candidates.map((c, i) => el('candidate', {
      xmlns: NS.ICE_UDP, foundation: c.foundation, component: c.component, protocol: c.protocol, priority: c.priority,
      ip: c.ip, port: c.port, type: c.type, generation: c.generation || '0', network: '0', id: `c${i}${c.port}`,
      'rel-addr': c.relAddr || undefined, 'rel-port': c.relPort || undefined, tcptype: c.tcptype || undefined,
    })),
  ]);
}

export function sourceElement(src, owner = '') {
  return el('source', { xmlns: NS.SSMA, ssrc: src.ssrc, name: src.name || undefined }, [
    src.cname ? el('parameter', { xmlns: NS.SSMA, name: 'cname', value: src.cname }) : null,
    src.msid ? el('parameter', { xmlns: NS.SSMA, name: 'msid', value: src.msid }) : null,
    owner ? el('ssrc-info', { xmlns: NS.JITMEET, owner }) : null,
  ]);
}

/** The <content/> elements of our session-accept: payload types as offered, our sources, our transport. */
export function acceptContents(offer, answer) {
  const out = [];
  for (const content of offer.contents) {
    if (content.kind !== 'audio' && content.kind !== 'video') continue;
    const mine = answer.sources.filter((s) => s.kind === content.kind);
    const ssrcs = new Set(mine.map((s) => s.ssrc));
    const groups = answer.groups.filter((g) => g.kind === content.kind && g.ssrcs.every((s) => ssrcs.has(s)));
    out.push(el('content', { xmlns: NS.JINGLE, creator: 'initiator', name: content.name, senders: 'both' }, [
      el('description', { xmlns: NS.RTP, media: content.kind }, [
        ...content.payloadTypes.map(payloadTypeElement),
        ...content.headerExtensions.map((e) => el('rtp-hdrext', { xmlns: NS.HDREXT, id: e.id, uri: e.uri })),
        el('rtcp-mux', { xmlns: NS.RTP }),
        ...mine.map((s) => sourceElement(s)),
        ...groups.map((g) => el('ssrc-group', { xmlns: NS.SSMA, semantics: g.semantics },
          g.ssrcs.map((s) => el('source', { xmlns: NS.SSMA, ssrc: s })))),
      ]),
      transportElement(answer.transport),
    ]));
  }
  return out;
}

// ---- simulcast (client-only: the focus's offer and sdp.py know nothing of it) ----------------
// Chromium, as the answerer, sends simulcast only when the offer asks to *receive* it: rids with
// direction `recv` and `a=simulcast:recv` on the m-section, plus the RID header extension
// (without it Chromium rejects the offer). Its answer then names the rids but no SSRCs, so the
// caller learns each layer's SSRC from getStats() and signals them to the focus the way Jitsi's
// bridge expects: all layer SSRCs as sources of one msid and an `ssrc-group SIM`, lowest first.

export const SIMULCAST_RIDS = ['l0', 'l1', 'l2']; // lowest resolution first
export const RID_URI = 'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id';

/**
 * The offer with simulcast receive rids on the m-section `mid`. The RID extension gets an id no
 * m-section uses, taken from the top of the one-byte range: every receiver gets the same offer
 * from the bridge, so no receiver has that id negotiated for something else (packets keep their
 * extensions through the bridge; an id a receiver did not negotiate is ignored).
 */
export function offerSimulcastReceive(sdp, mid, rids) {
  const used = new Set([...sdp.matchAll(/^a=extmap:(\d+)/gm)].map((m) => Number(m[1])));
  let id = 14;
  while (used.has(id) && id > 1) id -= 1;
  const lines = sdp.split('\r\n');
  const out = [];
  let section = '';
  let done = false;
  const add = () => {
    if (section === mid && !done) {
      out.push(`a=extmap:${id} ${RID_URI}`, ...rids.map((r) => `a=rid:${r} recv`), `a=simulcast:recv ${rids.join(';')}`);
      done = true;
    }
  };
  for (const line of lines) {
    if (line.startsWith('m=')) {
      add(); // end of the previous m-section
      section = '';
    } else if (line.startsWith('a=mid:')) section = line.slice('a=mid:'.length);
    if (line === '' && section === mid) add(); // the SDP's last m-section
    out.push(line);
  }
  add();
  return out.join('\r\n');
}

/**
 * `answer` (as parseAnswer gives it) plus our simulcast video source: `layers` are
 * [{ssrc, rtxSsrc}] lowest first, `sdp` our local answer (for the m-section's msid, the cname,
 * and whether RTX was negotiated at all: if not, Chromium reserves RTX SSRCs it never sends).
 */
export function withSimulcastSources(answer, sdp, mid, layers) {
  const section = sdp.split(/\r\n(?=m=)/).find((s) => s.split('\r\n').includes(`a=mid:${mid}`)) || '';
  const msid = (/^a=msid:(.+)$/m.exec(section) || [])[1] || '';
  const cname = (/^a=ssrc:\d+ cname:(.+)$/m.exec(sdp) || [])[1] || '';
  const rtx = /^a=rtpmap:\d+ rtx\//m.test(section);
  const ssrcs = layers.map((l) => l.ssrc);
  const sources = answer.sources.filter((s) => !ssrcs.includes(s.ssrc));
  const groups = answer.groups.slice();
  for (const l of layers) {
    sources.push({ ssrc: l.ssrc, kind: 'video', msid, cname });
    if (rtx && l.rtxSsrc) {
      sources.push({ ssrc: l.rtxSsrc, kind: 'video', msid, cname });
      groups.push({ kind: 'video', semantics: 'FID', ssrcs: [l.ssrc, l.rtxSsrc] });
    }
  }
  if (layers.length > 1) groups.push({ kind: 'video', semantics: 'SIM', ssrcs });
  return { ...answer, sources, groups };
}
