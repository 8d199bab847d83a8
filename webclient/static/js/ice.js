// STUN/TURN servers for the RTCPeerConnection, from our XMPP server (XEP-0215 external service
// discovery). A participant whose network drops UDP (most company networks) reaches the bridge
// only through the TURN relay; the credentials are time-limited, so they are asked for again
// before every new RTCPeerConnection. `iceTransportPolicy: 'relay'` in the page's config (not set
// by the server; a test or a debugging operator adds it) makes the page use TURN only.
import { NS, el, children } from './xml.js';

/** The <services/> answer as RTCIceServer dictionaries (entries we cannot use are skipped). */
export function iceServersFrom(services) {
  const out = [];
  for (const s of children(services, NS.EXTDISCO, 'service')) {
    const type = s.getAttribute('type');
    const transport = s.getAttribute('transport') || 'udp';
    const host = s.getAttribute('host') || '';
    const port = s.getAttribute('port') || '';
    if (!host || /[\/?#\s]/.test(host) || (port && !/^[0-9]{1,5}$/.test(port))) continue;
    const where = (host.includes(':') ? `[${host}]` : host) + (port ? `:${port}` : '');
    if (type === 'stun' && transport === 'udp') {
      out.push({ urls: `stun:${where}` });
    } else if ((type === 'turn' || type === 'turns') && s.getAttribute('username') && s.getAttribute('password')) {
      out.push({ urls: `${type}:${where}?transport=${transport}`, username: s.getAttribute('username'),
        credential: s.getAttribute('password') });
    }
  }
  return out;
}

/** Ask `domain` for its services; none (not an error) when it offers none or does not answer. */
export async function fetchIceServers(xmpp, domain) {
  try {
    const res = await xmpp.sendIQ(el('iq', { xmlns: NS.CLIENT, type: 'get', to: domain }, [
      el('services', { xmlns: NS.EXTDISCO }),
    ]), 5000);
    const services = children(res, NS.EXTDISCO, 'services')[0];
    return services ? iceServersFrom(services) : [];
  } catch (e) {
    return [];
  }
}
