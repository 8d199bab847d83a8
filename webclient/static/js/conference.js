// One conference as this page takes part in it: XMPP login, the focus handshake, the MUC room
// (presence, chat, lobby), the Jingle session with the bridge (one RTCPeerConnection) and the
// bridge channel. The page (room.js) listens to the events and owns the UI and local devices.
//
// Events (CustomEvent, details in brackets):
//   status {text}                 progress while joining
//   joined {nick}                 we are in the room
//   participant {participant}     someone joined or changed (name, mute state, ...)
//   participant-left {participant}
//   chat {nick, name, text, self, delayed, stamp}
//   tracks {}                     remote tracks were (re)assigned: see remoteTracks(nick)
//   audio-track {slot, track}     a receive slot for audio (play them all)
//   dominant {nick}
//   media-state {state}           the peer connection's state
//   lobby {room}                  waiting in the lobby
//   password {}                   the room needs a (different) password
//   ended {reason, message}       kicked, room-full, connection-lost, unreachable, left,
//                                 conference-refused (the focus did not set the room up: never joined), ...
//   reconnecting {attempt, delayMs, reason}  the XMPP connection dropped: trying again (backoff)
//   reconnected {}                back in the room after a reconnect
//   room-config {config}          (owners) the room's lobby and password settings
//   knockers {list}               (owners) people waiting in the lobby: [{nick, name, jid}]

import { NS, el, child, children, childText, bareJid, resourceOf, randomHex, stanzaError } from './xml.js';
import { nickFor } from './names.js';
import { XmppClient, XmppError } from './xmpp.js';
import { fetchIceServers } from './ice.js';
import { parseJingle, buildOffer, parseAnswer, acceptContents, offerSimulcastReceive, withSimulcastSources,
  SIMULCAST_RIDS } from './sdp.js';

// Camera simulcast, lowest layer first: each layer has half the height of the next (the bridge
// picks layer 0 for tiles up to 180 px high, 1 up to 360, else 2) and these bit rates at most.
const LAYER_BITRATES = [150000, 500000, 1500000];
const SCREEN_BITRATE = 2000000; // a shared screen is one full-resolution stream (layer 0 alone)

/**
 * How many simulcast layers a camera capture gets: WebRTC's own simulcast table allows 3 from
 * 960x540 and 2 from 480x270 (below that one), so we ask for no more than that; a layer that
 * still does not come is skipped by the bridge, which measures it at 0 bit/s.
 * No camera yet: what we ask getUserMedia for (1280x720) makes 3.
 */
export function simulcastLayers(track) {
  if (!track) return 3;
  const s = track.getSettings();
  const pixels = (s.width || 0) * (s.height || 0);
  return pixels >= 960 * 540 ? 3 : pixels >= 480 * 270 ? 2 : 1;
}

function machineUid() {
  try {
    let uid = localStorage.getItem('jitsi-py.machine-uid');
    if (!uid) {
      uid = randomHex(32);
      localStorage.setItem('jitsi-py.machine-uid', uid);
    }
    return uid;
  } catch (e) {
    return randomHex(32);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// conference IQ errors worth trying again (the focus is starting or busy), as the Python participant
/**
 * Mute state and video type from a Jitsi client's presence (lib-jitsi-meet sends only this):
 * JSON {"<nick>-a0": {"muted": bool}, "<nick>-v0": {"muted": bool, "videoType": "camera"}}.
 * Anything else in it (or not JSON at all) is ignored.
 */
function readSourceInfo(p, text) {
  if (!text || text.length > 4096) return;
  let info;
  try { info = JSON.parse(text); } catch (e) { return; }
  if (!info || typeof info !== 'object') return;
  for (const [name, state] of Object.entries(info)) {
    if (!state || typeof state !== 'object' || !name.startsWith(`${p.nick}-`)) continue;
    const kind = name.slice(p.nick.length + 1, p.nick.length + 2);
    if (kind === 'a' && typeof state.muted === 'boolean') p.audioMuted = state.muted;
    if (kind === 'v' && typeof state.muted === 'boolean') p.videoMuted = state.muted;
    if (kind === 'v' && (state.videoType === 'camera' || state.videoType === 'desktop')) p.videoType = state.videoType;
  }
}

const TRANSIENT_CONDITIONS = new Set(['service-unavailable', 'remote-server-not-found', 'recipient-unavailable',
  'remote-server-timeout', 'internal-server-error', 'resource-constraint', 'item-not-found', 'timeout']);

export class Conference extends EventTarget {
  constructor(config, { room, name, password = '', preferBosh = false, token = '' }) {
    super();
    this.config = config;
    // who we sign in as ([auth] mode): a token from the page URL, a registered user after "I am
    // the host", else a guest (on the guest domain in mode "secure")
    this.token = token;
    this.login = null; // {user, password}
    this.waitingForHost = false;
    this.hostPollMs = 3000; // a waiting guest asks the focus again this often
    this._wakeWait = null;
    this.roomName = room;
    this.roomJid = `${room.toLowerCase()}@${config.mucDomain}`;
    this.name = name;
    this._nickTry = 1;
    this.nick = nickFor(name);
    this.password = password;
    this.preferBosh = preferBosh;
    this.audioMuted = false;
    this.videoMuted = false;
    this.videoType = 'camera';
    this.participants = new Map(); // nick -> {nick, name, audioMuted, videoMuted, videoType, role, jid, chatOnly}
    this.localTracks = { audio: null, video: null };
    this.localStream = new MediaStream();
    this.xmpp = null;
    this.focusAccount = ''; // the focus's real JID, from the conference IQ answer
    this._focusRealJid = ''; // the real JID the room shows for its occupant `focus`
    this.focusAttempts = 4; // conference requests before giving up on a transient error
    this.pc = null;
    this.sid = null;
    this.session = null;
    this.sections = [];
    this.slotTracks = { audio: [], video: [] };
    this.slotOwners = { audio: [], video: [] };
    this.dominant = null;
    this.bridgeWs = null;
    this.bridgeUrl = '';
    this.simulcast = 1; // layers our camera is sent in this session (1: no simulcast)
    this.wantedHeight = Infinity; // the most anyone watches of our camera (SenderVideoConstraints)
    this._constraints = null; // the ReceiverVideoConstraints we want (sent whenever the channel opens)
    this._constraintsSent = '';
    this.joined = false;
    this.ended = false;
    this.leaving = false;
    this._joinWaiter = null;
    this._lobbyRoom = null;
    this._jingleQueue = Promise.resolve();
    this._presenceTimer = null;
    this.role = '';
    this.affiliation = '';
    this.sessions = 0; // Jingle sessions so far (a new one follows when the bridge moves)
    // reconnecting after an unexpected loss of the XMPP connection
    this.reconnecting = false;
    this.reconnects = 0; // successful reconnects so far
    this.reconnectGiveUpMs = 120000; // stop trying (and show "Connection lost") after this long
    this.reconnectMaxDelayMs = 30000;
    this._oldJids = new Set(); // our own earlier sessions: their ghosts in the room are not others
    this._staleNicks = null; // participants from before a reconnect not (yet) seen again
    // owners: the room's settings and the lobby they watch
    this.roomConfig = null; // {lobby, membersOnly, password}
    this.modLobby = null; // {jid, joined} the lobby room we sit in as its moderator
    this.knockers = new Map(); // lobby nick -> {nick, name, jid}
  }

  get occupantJid() { return `${this.roomJid}/${this.nick}`; }
  get focusJid() { return `${this.roomJid}/focus`; }

  emit(type, detail = {}) { this.dispatchEvent(new CustomEvent(type, { detail })); }
  status(text) { this.emit('status', { text }); }

  // ---- joining ---------------------------------------------------------------------------
  async join() {
    this.status('Connecting to the server…');
    const xmpp = this._newXmpp();
    try {
      await xmpp.connect({ preferBosh: this.preferBosh });
    } catch (e) {
      if (this.login && e.condition === 'not-authorized') {
        // a wrong host password: say so and go on waiting as a guest
        this.login = null;
        this.waitingForHost = true; // still waiting: the page keeps its dialog open with the error
        this.emit('host-login-failed', { text: 'Wrong user name or password.' });
        this.join();
        return;
      }
      this._end(this.token && e.condition === 'not-authorized' ? 'token-refused' : 'unreachable',
        e.condition === 'not-authorized' ? e.message
          : 'The server cannot be reached. Check your connection and try again.');
      return;
    }
    if (this.ended) {
      xmpp.disconnect();
      return;
    }
    this.status('Asking the conference service to set up the room…');
    const focus = await this._askFocus();
    if (this.ended || xmpp !== this.xmpp || !xmpp.connected) return; // lost meanwhile: reconnecting
    if (!focus.ok && focus.condition === 'host-sign-in') return; // join() runs again as the host
    if (!focus.ok) {
      // without the focus nobody trustworthy would be in the room: do not join it at all
      this._end('conference-refused', focusFailure(focus));
      return;
    }
    await this._joinRoom();
  }

  /**
   * "I am the host": sign in again as a registered user and open the meeting. A wrong password
   * gives `host-login-failed` and the page goes on waiting as a guest.
   */
  signInAsHost(user, password) {
    this.login = { user, password };
    this.waitingForHost = false;
    this.status('Signing in…');
    if (this._wakeWait) this._wakeWait(); // the waiting loop ends; join() starts over as the host
    this.join();
  }

  /** Try to reconnect now rather than after the current backoff delay (the browser is online again). */
  reconnectNow() {
    if (this._wakeReconnect) this._wakeReconnect();
  }

  /** A new XMPP client (the old one, if any, is dropped); its events reach us while it is current. */
  _newXmpp() {
    const old = this.xmpp;
    if (old) {
      if (old.jid) this._oldJids.add(old.jid);
      old.disconnect();
    }
    const guest = !this.token && !this.login;
    const xmpp = this.xmpp = new XmppClient({ websocketUrl: this.config.websocketUrl, boshUrl: this.config.boshUrl,
      domain: guest ? (this.config.guestDomain || this.config.domain) : this.config.domain, token: this.token,
      user: this.login ? this.login.user : '', password: this.login ? this.login.password : '' });
    xmpp.addEventListener('presence', (ev) => { if (xmpp === this.xmpp) this._onPresence(ev.detail); });
    xmpp.addEventListener('message', (ev) => { if (xmpp === this.xmpp) this._onMessage(ev.detail); });
    xmpp.addEventListener('disconnected', (ev) => {
      if (xmpp !== this.xmpp || ev.detail.expected || this.leaving || this.ended) return;
      this._connectionLost(ev.detail.reason);
    });
    xmpp.iqHandlers.push((iq) => (xmpp === this.xmpp ? this._onIq(iq) : false));
    return xmpp;
  }

  // ---- reconnecting --------------------------------------------------------------------------
  /**
   * The connection dropped: keep the page as it is, try again with backoff (1, 2, 4 ... s, at most
   * reconnectMaxDelayMs), and once through sign in again, ask the focus, rejoin the room with the
   * same name and mute state (a new nick) and take the new Jingle session the focus sends.
   * After reconnectGiveUpMs without success the conference ends ("connection-lost").
   */
  _connectionLost(reason) {
    console.warn('XMPP connection lost:', reason);
    if (this._joinWaiter) {
      const w = this._joinWaiter;
      this._joinWaiter = null;
      w.resolve(false);
    }
    const wasInRoom = this.joined;
    this._focusRealJid = ''; // the room tells us again who `focus` is
    this._closeMedia(); // while still "joined": the page redraws the tiles without video
    this.joined = false;
    this._leftModLobby();
    if (wasInRoom || this._staleNicks) {
      this._staleNicks = new Set([...this.participants.keys(), ...(this._staleNicks || [])]);
    }
    if (this.dominant) {
      this.dominant = null;
      this.emit('dominant', { nick: null });
    }
    if (this.role || this.affiliation) {
      // a new session is a new (anonymous) user: the room decides our role afresh
      this.role = '';
      this.affiliation = '';
      this.roomConfig = null;
      this.emit('role', { role: '', affiliation: '' });
    }
    if (this.reconnecting) {
      this._wakeReconnect?.(); // a reconnect that dropped again: the loop goes on
      return;
    }
    this._reconnectLoop(reason);
  }

  async _reconnectLoop(reason) {
    this.reconnecting = true;
    const started = Date.now();
    let delay = 1000;
    for (let attempt = 1; !this.ended; attempt += 1) {
      this.emit('reconnecting', { attempt, delayMs: delay, reason });
      this.status(`Connection lost. Reconnecting (attempt ${attempt})…`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delay);
        this._wakeReconnect = () => { clearTimeout(timer); resolve(); };
      });
      this._wakeReconnect = null;
      if (this.ended) return;
      if (await this._rejoin()) {
        this.reconnecting = false;
        this.reconnects += 1;
        return;
      }
      if (this.ended) return;
      if (Date.now() - started + delay >= this.reconnectGiveUpMs) {
        this.reconnecting = false;
        this._end('connection-lost', 'The connection to the server was lost and could not be restored.');
        return;
      }
      delay = Math.min(delay * 2, this.reconnectMaxDelayMs);
    }
  }

  /** One reconnect attempt: true once we are in the room (or waiting in its lobby) again. */
  async _rejoin() {
    const xmpp = this._newXmpp();
    try {
      await xmpp.connect({ preferBosh: this.preferBosh });
    } catch (e) {
      console.warn('reconnect failed:', e.message);
      return false;
    }
    if (this.ended || xmpp !== this.xmpp) {
      xmpp.disconnect();
      return false;
    }
    this.status('Reconnected to the server. Rejoining the meeting…');
    const focus = await this._askFocus();
    if (this.ended || xmpp !== this.xmpp || !xmpp.connected) return false;
    if (!focus.ok) {
      if (focus.transient) return false; // the reconnect loop tries again later
      this._end('conference-refused', focusFailure(focus));
      return false;
    }
    if (this._lobbyRoom) {
      // we were waiting in the lobby: knock again (the room answers with the lobby's address)
      this._lobbyRoom = null;
    }
    // the name again as nick: our old occupant may still hold it, and then "conflict" moves on
    this._nickTry = 1;
    this.nick = nickFor(this.name);
    this.videoWanted = true;
    this._rejoinPending = true;
    const joined = await this._joinRoom();
    return joined !== false && xmpp === this.xmpp && xmpp.connected;
  }

  /** Participants from before a reconnect that are gone now: their tiles go. */
  _dropStale() {
    const stale = this._staleNicks;
    this._staleNicks = null;
    if (!stale) return;
    for (const nick of stale) {
      const p = this.participants.get(nick);
      if (p) {
        this.participants.delete(nick);
        this.emit('participant-left', { participant: p, kicked: false });
      }
    }
  }

  /**
   * Ask the focus to set up the room. {ok: true} once it is ready (the focus is in the room);
   * else {ok: false, condition, text, transient}. Transient errors (the focus starting or busy,
   * no answer) are tried again with backoff (1, 2, 4 s), focusAttempts times in all.
   */
  async _askFocus() {
    const xmpp = this.xmpp;
    let last = { ok: false, condition: 'not-ready', text: 'the room was not ready in time', transient: true };
    let delay = 1000;
    for (let attempt = 1; attempt <= this.focusAttempts && !this.ended; attempt += 1) {
      const iq = el('iq', { xmlns: NS.CLIENT, type: 'set', to: this.config.focus }, [
        el('conference', { xmlns: NS.FOCUS, room: this.roomJid, 'machine-uid': machineUid() }),
      ]);
      try {
        const res = await xmpp.sendIQ(iq, 20000);
        const conf = child(res, NS.FOCUS, 'conference');
        if (conf && conf.getAttribute('ready') === 'true') {
          this.focusAccount = conf.getAttribute('focusjid') || '';
          if (this.waitingForHost) {
            this.waitingForHost = false;
            this.emit('host-arrived');
          }
          return { ok: true };
        }
      } catch (e) {
        console.warn('conference request failed', e);
        if (e.condition === 'remote-connection-failed') return { ok: false, condition: e.condition, transient: true };
        last = { ok: false, condition: e.condition || 'undefined-condition', text: e.text || '',
          transient: TRANSIENT_CONDITIONS.has(e.condition) };
        if (e.condition === 'not-authorized' && !this.token && !this.login && this.config.authMode !== 'open') {
          // Jicofo's answer to a guest of a meeting no host has opened: wait, ask again
          if (!this.waitingForHost) {
            this.waitingForHost = true;
            this.emit('waiting-for-host', { text: e.text || 'Waiting for the host' });
          }
          const woken = await new Promise((resolve) => {
            const timer = setTimeout(() => resolve(false), this.hostPollMs);
            this._wakeWait = () => { clearTimeout(timer); resolve(true); };
          });
          this._wakeWait = null;
          if (woken) return { ok: false, condition: 'host-sign-in', transient: false };
          if (xmpp !== this.xmpp || !xmpp.connected) return { ok: false, condition: 'remote-connection-failed', transient: true };
          attempt -= 1; // waiting for the host is not a failed attempt
          continue;
        }
        if (!last.transient) return last;
      }
      if (attempt < this.focusAttempts && !this.ended && xmpp === this.xmpp && xmpp.connected) {
        this.status(`The conference service is not ready (${last.condition}); trying again…`);
        await sleep(delay);
        delay = Math.min(delay * 2, 4000);
      }
      if (xmpp !== this.xmpp || !xmpp.connected) return { ok: false, condition: 'remote-connection-failed', transient: true };
    }
    return last;
  }

  /** The focus's account (bare JID): as the conference IQ answer named it, else the default. */
  get expectedFocus() {
    return bareJid(this.focusAccount || `focus@auth.${this.config.domain}`);
  }

  /**
   * Why an IQ that steers our media (Jingle, a mute order) is refused, or null if it comes from
   * the focus: the room's occupant `focus` whose real JID (in the room's presence) is the focus
   * account. Anyone may send us an IQ, and a guest may sit in a room as `focus`.
   */
  _notFromFocus(iq) {
    const from = iq.getAttribute('from') || '';
    if (from !== this.focusJid) return { condition: 'not-acceptable', text: 'Only the focus may do this' };
    if (!this._focusRealJid || bareJid(this._focusRealJid) !== this.expectedFocus) {
      return { condition: 'forbidden', text: `${from} is not the conference focus (${this.expectedFocus})` };
    }
    return null;
  }

  _refuseNotFromFocus(iq) {
    const why = this._notFromFocus(iq);
    if (!why) return false;
    console.warn(`refused ${iq.firstElementChild ? iq.firstElementChild.localName : 'an IQ'} from`,
      iq.getAttribute('from'), `(real JID ${this._focusRealJid || 'unknown'}):`, why.text);
    this.xmpp.sendError(iq, 'cancel', why.condition, null, why.text);
    return true;
  }

  _presence(withMuc, to = this.occupantJid) {
    const kids = [];
    if (withMuc) kids.push(el('x', { xmlns: NS.MUC }, this.password ? [el('password', {}, [this.password])] : []));
    kids.push(el('nick', { xmlns: NS.NICK }, [this.name]));
    kids.push(el('audiomuted', { xmlns: NS.AUDIOMUTED }, [String(this.audioMuted)]));
    kids.push(el('videomuted', { xmlns: NS.VIDEOMUTED }, [String(this.videoMuted)]));
    kids.push(el('videoType', { xmlns: NS.CLIENT }, [this.videoType]));
    // the same state per source, as Jitsi clients read it (lib-jitsi-meet's SourceInfo)
    kids.push(el('SourceInfo', { xmlns: NS.CLIENT }, [JSON.stringify({
      [`${this.nick}-a0`]: { muted: this.audioMuted },
      [`${this.nick}-v0`]: { muted: this.videoMuted, videoType: this.videoType },
    })]));
    return el('presence', { xmlns: NS.CLIENT, to }, kids);
  }

  /**
   * Send the join presence. Resolves true once in the room, 'lobby' or 'password' when the room
   * sends us there, false when joining failed or the connection dropped meanwhile.
   */
  _joinRoom(done = null) {
    this.status('Joining the room…');
    return new Promise((resolve) => {
      const finish = done || resolve;
      const timer = setTimeout(() => {
        if (this._joinWaiter && this._joinWaiter.timer === timer) {
          this._joinWaiter = null;
          finish(false);
          this._end('join-failed', 'The room did not answer. Try again in a moment.');
        }
      }, 20000);
      this._joinWaiter = { resolve: (v) => { clearTimeout(timer); finish(v); }, finish, timer };
      this.xmpp.send(this._presence(true));
    });
  }

  _joinFailed(pres) {
    const err = stanzaError(pres) || { condition: 'undefined-condition', text: '' };
    const w = this._joinWaiter;
    this._joinWaiter = null;
    if (w) clearTimeout(w.timer);
    const settle = (v) => { if (w) w.finish(v); };
    switch (err.condition) {
      case 'not-authorized':
        settle('password');
        this.emit('password', { retry: !!this.password });
        break;
      case 'service-unavailable':
        settle(false);
        this._end('room-full', 'Nobody else can join right now. Try again later.');
        break;
      case 'registration-required': {
        const lobby = childText(err.element, NS.JITMEET, 'lobbyroom');
        if (lobby) {
          settle('lobby');
          this._enterLobby(lobby.trim());
        } else {
          settle(false);
          this._end('members-only', 'This room is for members only.');
        }
        break;
      }
      case 'forbidden':
        settle(false);
        this._end('banned', err.text || 'You are not allowed in this room.'); // e.g. a token for another room
        break;
      case 'conflict':
        this._nickTry += 1;
        this.nick = nickFor(this.name, this._nickTry);
        this._joinRoom(w ? w.finish : null);
        break;
      case 'item-not-found':
        // a room being set up is locked until its owner (the focus) has configured it
        this._joinRetries = (this._joinRetries || 0) + 1;
        if (this._joinRetries <= 5) {
          setTimeout(() => {
            if (!this.ended && this.xmpp && this.xmpp.connected) this._joinRoom(w ? w.finish : null);
            else settle(false);
          }, 1000);
        } else {
          settle(false);
          this._end('not-found', 'The room is not available yet. Try again in a moment.');
        }
        break;
      default:
        settle(false);
        this._end('join-failed', `Could not join the room (${err.condition}${err.text ? ': ' + err.text : ''}).`);
    }
  }

  /** Try again with a password (after a `password` event). */
  retryWithPassword(password) {
    this.password = password;
    this._joinRoom();
  }

  _enterLobby(lobbyJid) {
    this._lobbyRoom = lobbyJid;
    this.emit('lobby', { room: lobbyJid });
    this.status('Waiting in the lobby…');
    this.xmpp.send(this._presence(true, `${lobbyJid}/${this.nick}`));
  }

  _lobbyAdmitted(room) {
    const lobby = this._lobbyRoom;
    this._lobbyRoom = null;
    if (lobby) this.xmpp.send(el('presence', { xmlns: NS.CLIENT, to: `${lobby}/${this.nick}`, type: 'unavailable' }));
    if (room && bareJid(room) !== this.roomJid) this.roomJid = bareJid(room);
    this.emit('lobby-admitted', {});
    this._joinRoom();
  }

  // ---- presence and chat -------------------------------------------------------------------
  _onPresence(pres) {
    const from = pres.getAttribute('from') || '';
    const room = bareJid(from);
    const nick = resourceOf(from);
    const type = pres.getAttribute('type') || '';
    const x = child(pres, NS.MUC_USER, 'x');
    const codes = x ? children(x, NS.MUC_USER, 'status').map((s) => s.getAttribute('code')) : [];
    if (this._lobbyRoom && room === this._lobbyRoom) {
      if (type === 'error') this._end('lobby', 'The lobby could not be joined.');
      else if (type === 'unavailable' && nick === this.nick) {
        if (codes.includes('307') || codes.includes('301')) this._end('lobby-denied', 'You were not let into this meeting.');
      }
      return;
    }
    if (this.modLobby && room === this.modLobby.jid) {
      this._onModLobbyPresence(pres, nick, type, codes, x);
      return;
    }
    if (room !== this.roomJid) return;
    if (type === 'error') {
      if (this._joinWaiter) this._joinFailed(pres);
      return;
    }
    const self = nick === this.nick || codes.includes('110');
    if (type === 'unavailable') {
      if (self) {
        if (this.leaving) return;
        if (codes.includes('307')) this._end('kicked', 'You were removed from the meeting by a moderator.');
        else if (codes.includes('301')) this._end('kicked', 'You were banned from this meeting.');
        else if (codes.includes('332')) this._end('connection-lost', 'The server is shutting down.');
        else if (child(x, NS.MUC_USER, 'destroy')) this._end('ended', 'The meeting was ended.');
        else this._end('kicked', 'You are no longer in the meeting.');
        return;
      }
      if (nick === 'focus') this._focusRealJid = '';
      const p = this.participants.get(nick);
      if (p) {
        this.participants.delete(nick);
        if (this.dominant === nick) this.dominant = null;
        this.emit('participant-left', { participant: p, kicked: codes.includes('307') });
      }
      return;
    }
    if (self) {
      const selfItem = child(x, NS.MUC_USER, 'item');
      const role = selfItem ? selfItem.getAttribute('role') || '' : '';
      const affiliation = selfItem ? selfItem.getAttribute('affiliation') || '' : '';
      const changed = (role && role !== this.role) || (affiliation && affiliation !== this.affiliation);
      if (role) this.role = role;
      if (affiliation) this.affiliation = affiliation;
      if (this._joinWaiter) {
        const w = this._joinWaiter;
        this._joinWaiter = null;
        this.joined = true;
        this.status('');
        const rejoined = !!this._rejoinPending;
        this._rejoinPending = false;
        this._dropStale();
        this.emit('joined', { nick: this.nick, rejoined });
        w.resolve(true);
        if (rejoined) this.emit('reconnected', {});
      }
      if (changed) {
        this.emit('role', { role: this.role, affiliation: this.affiliation });
        if (this.isOwner) this.refreshRoomConfig();
      }
      return;
    }
    const item = child(x, NS.MUC_USER, 'item');
    const realJid = item ? item.getAttribute('jid') || '' : '';
    if (nick === 'focus') this._focusRealJid = realJid; // checked on every Jingle IQ and mute order
    if (nick === 'focus' || realJid.startsWith(`focus@auth.${this.config.domain}`)) return;
    if (realJid && this._oldJids.has(realJid)) return; // ourselves before a reconnect, on the way out
    if (this._staleNicks) this._staleNicks.delete(nick);
    let p = this.participants.get(nick);
    if (!p) {
      p = { nick, name: '', audioMuted: false, videoMuted: false, videoType: 'camera', role: '', jid: realJid,
        chatOnly: false };
      this.participants.set(nick, p);
    }
    p.name = (childText(pres, NS.NICK, 'nick') || '').trim() || p.name
      || (/^[0-9a-f]{8}$/.test(nick) ? `Guest ${nick.slice(0, 4)}` : nick);
    const am = childText(pres, NS.AUDIOMUTED, 'audiomuted');
    const vm = childText(pres, NS.VIDEOMUTED, 'videomuted');
    if (am !== null) p.audioMuted = am.trim() === 'true';
    if (vm !== null) p.videoMuted = vm.trim() === 'true';
    const vt = childText(pres, null, 'videoType');
    if (vt) p.videoType = vt.trim();
    const sourceInfo = childText(pres, null, 'SourceInfo');
    readSourceInfo(p, sourceInfo);
    // a client that takes calls (ours, the Python participant, Jitsi's) says how its mic and
    // camera are; a presence with none of that is a text-only XMPP client: chat, no tile
    p.chatOnly = am === null && vm === null && !vt && sourceInfo === null;
    if (item) p.role = item.getAttribute('role') || '';
    this.emit('participant', { participant: p });
  }

  _onMessage(msg) {
    const from = msg.getAttribute('from') || '';
    const type = msg.getAttribute('type') || 'normal';
    const access = child(msg, NS.JITMEET, 'lobby-access');
    if (access && this._lobbyRoom !== null) {
      if (access.getAttribute('granted') === 'true') this._lobbyAdmitted(access.getAttribute('room') || this.roomJid);
      else this._end('lobby-denied', 'You were not let into this meeting.');
      return;
    }
    if (bareJid(from) !== this.roomJid) return;
    const ux = child(msg, NS.MUC_USER, 'x');
    if (ux && !resourceOf(from) && children(ux, NS.MUC_USER, 'status').some((st) => st.getAttribute('code') === '104')) {
      if (this.isOwner) this.refreshRoomConfig(); // the settings changed (maybe by another owner)
    }
    if (type === 'error') {
      const err = stanzaError(msg);
      this.emit('chat-error', { text: err ? err.condition : 'error' });
      return;
    }
    if (type !== 'groupchat') return;
    const body = childText(msg, NS.CLIENT, 'body') ?? childText(msg, null, 'body');
    if (body === null) return;
    const nick = resourceOf(from);
    if (!nick) return; // a room notice
    const p = this.participants.get(nick);
    const delay = child(msg, NS.DELAY, 'delay');
    this.emit('chat', {
      nick, self: nick === this.nick,
      name: nick === this.nick ? this.name : ((childText(msg, NS.NICK, 'nick') || '').trim() || (p && p.name) || nick),
      text: body, delayed: !!delay,
      stamp: delay ? new Date(delay.getAttribute('stamp')) : new Date(),
    });
  }

  sendChat(text) {
    if (!this.joined || !text.trim()) return;
    this.xmpp.send(el('message', { xmlns: NS.CLIENT, to: this.roomJid, type: 'groupchat' }, [
      el('body', {}, [text]),
      el('nick', { xmlns: NS.NICK }, [this.name]),
    ]));
  }

  _sendPresenceSoon() {
    if (!this.joined || this._presenceTimer) return;
    this._presenceTimer = setTimeout(() => {
      this._presenceTimer = null;
      if (this.joined && !this.ended) this.xmpp.send(this._presence(false));
    }, 0);
  }

  get isModerator() { return this.role === 'moderator'; }

  /** Moderators: ask the focus to mute someone (they alone may unmute themselves). */
  async muteParticipant(nick, kind = 'audio') {
    const ns = kind === 'audio' ? NS.AUDIOMUTED : NS.VIDEOMUTED;
    await this.xmpp.sendIQ(el('iq', { xmlns: NS.CLIENT, type: 'set', to: this.focusJid }, [
      el('mute', { xmlns: ns, jid: `${this.roomJid}/${nick}` }, ['true']),
    ]));
  }

  /** Moderators: remove someone from the room (role none, status 307 for them). */
  async kickParticipant(nick, reason = '') {
    await this.xmpp.sendIQ(el('iq', { xmlns: NS.CLIENT, type: 'set', to: this.roomJid }, [
      el('query', { xmlns: NS.MUC_ADMIN }, [
        el('item', { nick, role: 'none' }, reason ? [el('reason', {}, [reason])] : []),
      ]),
    ]));
  }


  // ---- owners: lobby, password, admitting knockers ------------------------------------------
  get isOwner() { return this.affiliation === 'owner'; }

  /** (Owners) read the room's settings (muc#owner form); joins or leaves the lobby to match. */
  refreshRoomConfig() {
    this._configChain = (this._configChain || Promise.resolve()).then(() => this._refreshRoomConfig())
      .catch((e) => { console.warn('room configuration', e); return this.roomConfig; });
    return this._configChain;
  }

  async _refreshRoomConfig() {
    if (!this.isOwner || !this.joined || this.ended) return this.roomConfig;
    const res = await this.xmpp.sendIQ(el('iq', { xmlns: NS.CLIENT, type: 'get', to: this.roomJid }, [
      el('query', { xmlns: NS.MUC_OWNER }),
    ]));
    const f = formFields(child(child(res, NS.MUC_OWNER, 'query'), NS.DATA_FORMS, 'x'));
    const bool = (v) => v === '1' || v === 'true';
    const membersOnly = bool(f['muc#roomconfig_membersonly']);
    const cfg = {
      membersOnly,
      lobby: membersOnly && bool(f['muc#roomconfig_lobby']),
      password: bool(f['muc#roomconfig_passwordprotectedroom']) ? f['muc#roomconfig_roomsecret'] || '' : '',
    };
    this.roomConfig = cfg;
    if (cfg.password) this.password = cfg.password; // so that a reconnect gets back in
    this.emit('room-config', { config: cfg });
    await this._syncModLobby();
    return cfg;
  }

  async _submitConfig(values) {
    const fields = [el('field', { var: 'FORM_TYPE', type: 'hidden' }, [el('value', {}, [NS.MUC_ROOMCONFIG])])];
    for (const [name, value] of Object.entries(values)) {
      fields.push(el('field', { var: name }, [el('value', {}, [String(value)])]));
    }
    await this.xmpp.sendIQ(el('iq', { xmlns: NS.CLIENT, type: 'set', to: this.roomJid }, [
      el('query', { xmlns: NS.MUC_OWNER }, [el('x', { xmlns: NS.DATA_FORMS, type: 'submit' }, fields)]),
    ]));
    return this.refreshRoomConfig();
  }

  /** (Owners) the lobby on or off: a members-only room whose non-members wait in the lobby. */
  setLobby(on) {
    return this._submitConfig({ 'muc#roomconfig_membersonly': on ? '1' : '0', 'muc#roomconfig_lobby': on ? '1' : '0' });
  }

  /** (Owners) set the room's password ('' removes it). */
  setRoomPassword(password) {
    return this._submitConfig({
      'muc#roomconfig_passwordprotectedroom': password ? '1' : '0',
      'muc#roomconfig_roomsecret': password,
    });
  }

  /** Sit in the lobby room while the lobby is on (owners see who knocks), leave it when off. */
  async _syncModLobby() {
    const want = this.isOwner && this.joined && !this.ended && this.roomConfig && this.roomConfig.lobby;
    if (want && !this.modLobby) {
      let jid = '';
      try {
        const info = await this.xmpp.sendIQ(el('iq', { xmlns: NS.CLIENT, type: 'get', to: this.roomJid }, [
          el('query', { xmlns: NS.DISCO_INFO }),
        ]));
        const form = children(child(info, NS.DISCO_INFO, 'query'), NS.DATA_FORMS, 'x')[0];
        jid = (formFields(form)['muc#roominfo_lobbyroom'] || '').trim();
      } catch (e) {
        console.warn('room info', e);
      }
      if (!jid || this.modLobby) return;
      this.modLobby = { jid: bareJid(jid), joined: false };
      this.xmpp.send(this._presence(true, `${this.modLobby.jid}/${this.nick}`));
    } else if (!want && this.modLobby) {
      const lobby = this.modLobby;
      this._leftModLobby();
      if (this.xmpp && this.xmpp.connected) {
        this.xmpp.send(el('presence', { xmlns: NS.CLIENT, to: `${lobby.jid}/${this.nick}`, type: 'unavailable' }));
      }
    }
  }

  _leftModLobby() {
    this.modLobby = null;
    if (this.knockers.size) {
      this.knockers.clear();
      this.emit('knockers', { list: [] });
    }
  }

  /** Presence from the lobby room we watch as its moderator. */
  _onModLobbyPresence(pres, nick, type, codes, x) {
    const self = nick === this.nick || codes.includes('110');
    if (type === 'error') {
      if (self || !nick) {
        console.warn('could not join the lobby room', stanzaError(pres));
        this._leftModLobby();
      }
      return;
    }
    if (self) {
      if (type === 'unavailable') this._leftModLobby(); // the lobby was closed (destroyed)
      else this.modLobby.joined = true;
      return;
    }
    if (type === 'unavailable') {
      if (this.knockers.delete(nick)) this.emit('knockers', { list: [...this.knockers.values()] });
      return;
    }
    const item = child(x, NS.MUC_USER, 'item');
    const jid = item ? item.getAttribute('jid') || '' : '';
    const role = item ? item.getAttribute('role') || '' : '';
    if (role === 'moderator') return; // another moderator watching the lobby, not a knocker
    const name = (childText(pres, NS.NICK, 'nick') || '').trim() || nick;
    this.knockers.set(nick, { nick, name, jid });
    this.emit('knockers', { list: [...this.knockers.values()] });
  }

  /** (Owners) let a knocker in: member of the main room (the lobby tells them to come in). */
  async admit(nick) {
    const k = this.knockers.get(nick);
    if (!k || !k.jid) throw new XmppError('That person is no longer waiting', { condition: 'item-not-found' });
    await this.xmpp.sendIQ(el('iq', { xmlns: NS.CLIENT, type: 'set', to: this.roomJid }, [
      el('query', { xmlns: NS.MUC_ADMIN }, [el('item', { affiliation: 'member', jid: bareJid(k.jid) })]),
    ]));
    if (this.knockers.delete(nick)) this.emit('knockers', { list: [...this.knockers.values()] });
  }

  /** (Owners) turn a knocker away: kicked from the lobby room. */
  async deny(nick) {
    if (!this.modLobby) throw new XmppError('The lobby is closed', { condition: 'item-not-found' });
    await this.xmpp.sendIQ(el('iq', { xmlns: NS.CLIENT, type: 'set', to: this.modLobby.jid }, [
      el('query', { xmlns: NS.MUC_ADMIN }, [el('item', { nick, role: 'none' }, [el('reason', {}, ['The moderator declined your request'])])]),
    ]));
    if (this.knockers.delete(nick)) this.emit('knockers', { list: [...this.knockers.values()] });
  }

  // ---- local media -------------------------------------------------------------------------
  setAudioMuted(muted) {
    this.audioMuted = muted;
    if (this.localTracks.audio) this.localTracks.audio.enabled = !muted;
    this._sendPresenceSoon();
  }

  setVideoMuted(muted, videoType = this.videoType) {
    this.videoMuted = muted;
    if (videoType !== this.videoType) {
      this.videoType = videoType;
      this._applyVideoEncodings();
    }
    this._sendPresenceSoon();
  }

  /**
   * What we send: a track (or null) for 'audio' or 'video'; no renegotiation needed. For video,
   * `videoType` 'desktop' sends it as one full-resolution stream, 'camera' as simulcast layers.
   */
  async setLocalTrack(kind, track, videoType = this.videoType) {
    const old = this.localTracks[kind];
    if (old && old !== track) this.localStream.removeTrack(old);
    this.localTracks[kind] = track;
    if (track) {
      this.localStream.addTrack(track);
      if (kind === 'audio') track.enabled = !this.audioMuted;
    }
    const sender = this._sender(kind);
    if (sender) {
      try {
        await sender.replaceTrack(kind === 'video' && this.videoWanted === false ? null : track);
      } catch (e) {
        console.warn('replaceTrack failed', e);
      }
    }
    if (kind === 'video' && videoType !== this.videoType) {
      this.videoType = videoType;
      await this._applyVideoEncodings();
    }
  }

  /**
   * Configure the simulcast encodings for what we send now: a camera in all layers (scaled
   * 1/4, 1/2, 1), a screen as layer 0 alone at full resolution. The SIM group we signalled stays
   * as it is: the bridge sees the upper layers go silent and gives every receiver layer 0.
   * Camera layers above what anyone watches (the bridge's SenderVideoConstraints: <= 180 px
   * high needs layer 0, <= 360 px layer 1) are switched off, so we upload no video in vain.
   */
  async _applyVideoEncodings() {
    const sender = this._sender('video');
    if (!sender || this.simulcast < 2) return;
    const params = sender.getParameters();
    const n = params.encodings ? params.encodings.length : 0;
    if (n < 2) return;
    const screen = this.videoType === 'desktop';
    const h = this.wantedHeight;
    const top = h <= 180 ? 0 : h <= 360 ? 1 : n - 1;
    params.encodings.forEach((e, i) => {
      e.active = screen ? i === 0 : i <= top;
      e.scaleResolutionDownBy = screen ? 1 : 2 ** (n - 1 - i);
      e.maxBitrate = screen ? SCREEN_BITRATE : LAYER_BITRATES[i];
    });
    try {
      await sender.setParameters(params);
    } catch (e) {
      console.warn('setParameters failed', e);
    }
  }

  _sender(kind) {
    if (!this.pc) return null;
    const t = this.pc.getTransceivers().find((x) => x.mid === kind);
    return t ? t.sender : null;
  }

  // ---- Jingle -------------------------------------------------------------------------------
  _onIq(iq) {
    const mute = child(iq, NS.AUDIOMUTED, 'mute') || child(iq, NS.VIDEOMUTED, 'mute');
    if (mute && iq.getAttribute('type') === 'set') {
      if (this._refuseNotFromFocus(iq)) return true;
      this.xmpp.send(this.xmpp.resultFor(iq));
      if (mute.textContent.trim() === 'true') {
        const actor = this.participants.get(mute.getAttribute('actor') || '');
        this.emit('muted-by', { kind: mute.namespaceURI === NS.AUDIOMUTED ? 'audio' : 'video',
          actor: actor ? actor.name : 'A moderator' });
      }
      return true;
    }
    const jingle = child(iq, NS.JINGLE, 'jingle');
    if (!jingle || iq.getAttribute('type') !== 'set') return false;
    if (this._refuseNotFromFocus(iq)) return true;
    let j;
    try {
      j = parseJingle(jingle);
    } catch (e) {
      this.xmpp.sendError(iq, 'modify', 'bad-request');
      return true;
    }
    if (j.action !== 'session-initiate' && j.sid !== this.sid) {
      this.xmpp.sendError(iq, 'cancel', 'item-not-found', el('unknown-session', { xmlns: NS.JINGLE_ERRORS }));
      return true;
    }
    this.xmpp.send(this.xmpp.resultFor(iq));
    this._jingleQueue = this._jingleQueue.then(() => this._handleJingle(j)).catch((e) => {
      console.error('Jingle handling failed', e);
      this.emit('warning', { text: `Media setup failed: ${e.message}` });
    });
    return true;
  }

  async _handleJingle(j) {
    if (this.ended) return;
    switch (j.action) {
      case 'session-initiate':
        await this._onSessionInitiate(j);
        break;
      case 'session-terminate':
        this._closeMedia();
        this.emit('media-state', { state: 'reconnecting' });
        break;
      default:
        // source-add / source-remove: the bridge's slots and the sources maps cover them
        break;
    }
  }

  async _onSessionInitiate(j) {
    this._closeMedia();
    this.sessions += 1;
    this.sid = j.sid;
    this.session = j;
    if (j.startMuted && (j.startMuted.audio || j.startMuted.video)) this.emit('start-muted', j.startMuted);
    const offer = buildOffer(j);
    this.sections = offer.sections;
    this.slotTracks = { audio: [], video: [] };
    // STUN/TURN (XEP-0215), asked for each session: TURN credentials expire
    this.iceServers = await fetchIceServers(this.xmpp, this.config.domain);
    if (this.ended || this.session !== j) return;  // left, or a newer offer, meanwhile
    const pc = this.pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require',
      iceServers: this.iceServers, iceTransportPolicy: this.config.iceTransportPolicy || 'all' });
    pc.ontrack = (ev) => {
      const section = this.sections.find((s) => s.mid === ev.transceiver.mid);
      if (!section || pc !== this.pc) return;
      this.slotTracks[section.kind][section.slot] = ev.track;
      if (section.kind === 'audio') this.emit('audio-track', { slot: section.slot, track: ev.track });
      this.emit('tracks', {});
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      this.emit('media-state', { state: pc.connectionState });
      if (pc.connectionState === 'failed' && this.sid) this._reportIceFailed();
    };
    // our camera goes out in simulcast layers, which Chromium sends only if the offer asks for them
    const video = j.contents.find((c) => c.kind === 'video' && c.senders === 'both');
    const layers = video ? (this.videoType === 'desktop' ? 3 : simulcastLayers(this.localTracks.video)) : 1;
    let rids = layers > 1 ? SIMULCAST_RIDS.slice(0, layers) : [];
    try {
      await pc.setRemoteDescription({ type: 'offer',
        sdp: rids.length ? offerSimulcastReceive(offer.sdp, video.name, rids) : offer.sdp });
    } catch (e) {
      if (!rids.length) throw e;
      console.warn('simulcast offer refused, sending one stream:', e.message);
      rids = [];
      await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    }
    this.simulcast = rids.length || 1;
    this.wantedHeight = Infinity; // a new bridge endpoint tells us again
    for (const t of pc.getTransceivers()) {
      if (t.mid === 'audio' || t.mid === 'video') {
        t.direction = 'sendrecv';
        const track = this.localTracks[t.mid];
        await t.sender.replaceTrack(track || null);
        try { t.sender.setStreams(this.localStream); } catch (e) { /* older browsers */ }
      } else {
        t.direction = 'recvonly';
      }
    }
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    let sent = [];
    if (rids.length) {
      await this._applyVideoEncodings();
      sent = await sendLayers(pc, video.name, rids, 3000);
    }
    await waitForIceGathering(pc, 4000);
    if (pc !== this.pc) return;
    let parsed = parseAnswer(pc.localDescription.sdp);
    if (sent.length) parsed = withSimulcastSources(parsed, pc.localDescription.sdp, video.name, sent);
    const accept = el('iq', { xmlns: NS.CLIENT, type: 'set', to: this.focusJid }, [
      el('jingle', { xmlns: NS.JINGLE, action: 'session-accept', sid: j.sid, initiator: j.initiator || this.focusJid,
        responder: this.occupantJid }, [
        ...acceptContents(j, parsed),
        el('group', { xmlns: NS.GROUPING, semantics: 'BUNDLE' },
          j.contents.filter((c) => c.kind === 'audio' || c.kind === 'video')
            .map((c) => el('content', { name: c.name }))),
        j.bridgeSession ? el('bridge-session', { xmlns: NS.FOCUS, id: j.bridgeSession }) : null,
      ]),
    ]);
    await this.xmpp.sendIQ(accept);
    if (offer.transport.websocketUrl) this._openBridgeChannel(offer.transport.websocketUrl);
    this._watchMedia(pc, j.sid);
  }

  /**
   * No media at all some seconds into a session although someone sends video: tell the focus
   * ICE failed, which gets us a fresh session (the browser itself may think all is well when
   * the bridge gave up on its side of the transport).
   */
  _watchMedia(pc, sid, delayMs = 12000) {
    setTimeout(async () => {
      if (pc !== this.pc || this.sid !== sid || this.ended) return;
      const senders = [...this.participants.values()].filter((p) => !p.videoMuted);
      if (!senders.length) {
        this._watchMedia(pc, sid, delayMs); // nobody to hear from yet: look again later
        return;
      }
      const s = await this.stats();
      if (pc !== this.pc || this.sid !== sid) return;
      if (s.inbound.video === 0 && s.inbound.audio === 0) {
        console.warn('no media received: asking the focus for a new session');
        this._reportIceFailed();
      }
    }, delayMs);
  }

  _reportIceFailed() {
    this.xmpp.send(el('iq', { xmlns: NS.CLIENT, type: 'set', to: this.focusJid }, [
      el('jingle', { xmlns: NS.JINGLE, action: 'session-info', sid: this.sid, initiator: this.focusJid }, [
        el('ice-state', { xmlns: NS.FOCUS }, ['failed']),
        this.session && this.session.bridgeSession
          ? el('bridge-session', { xmlns: NS.FOCUS, id: this.session.bridgeSession }) : null,
      ]),
    ]));
  }

  _closeMedia() {
    if (this.pc) {
      try { this.pc.close(); } catch (e) { /* closed */ }
    }
    this.pc = null;
    this.sid = null;
    this.slotTracks = { audio: [], video: [] };
    this.slotOwners = { audio: [], video: [] };
    this._closeBridgeChannel();
    this.emit('tracks', {});
  }

  /** Remote tracks of one participant: {audio, video} (either may be null). */
  remoteTracks(nick) {
    const out = { audio: null, video: null };
    for (const kind of ['audio', 'video']) {
      const slot = this.slotOwners[kind].findIndex((owner) => owner === nick);
      if (slot >= 0) out[kind] = this.slotTracks[kind][slot] || null;
    }
    return out;
  }

  // ---- bridge channel ------------------------------------------------------------------------
  _openBridgeChannel(url, attempt = 0) {
    this._closeBridgeChannel();
    this.bridgeUrl = url;
    const ws = this.bridgeWs = new WebSocket(url);
    ws.onopen = () => {
      attempt = 0;
      this._constraintsSent = ''; // a new channel may be a new bridge endpoint: tell it again
      this._sendConstraints();
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      this._onBridgeMessage(msg);
    };
    ws.onclose = () => {
      if (ws !== this.bridgeWs || this.ended || !this.pc) return;
      this.bridgeWs = null;
      const delay = Math.min(10000, 1000 * 2 ** attempt);
      setTimeout(() => {
        if (!this.ended && this.pc && this.bridgeUrl === url && !this.bridgeWs) this._openBridgeChannel(url, attempt + 1);
      }, delay);
    };
  }

  /**
   * Ask the bridge for other participants' video no higher than `heights` ({nick: max height in
   * pixels}; 0: no video); `defaultHeight` for anyone not listed. The bridge picks each sender's
   * simulcast layer from these (Jitsi's ReceiverVideoConstraints). `onStage`: nicks the user
   * pinned, whom the bridge puts in our video slots before its last-N choice of speakers.
   */
  setReceiverConstraints(heights, defaultHeight, onStage = []) {
    const constraints = {};
    for (const [nick, h] of Object.entries(heights)) constraints[nick] = { maxHeight: h };
    this._constraints = { colibriClass: 'ReceiverVideoConstraints', defaultConstraints: { maxHeight: defaultHeight },
      constraints, onStageEndpoints: onStage };
    this._sendConstraints();
  }

  _sendConstraints() {
    const ws = this.bridgeWs;
    if (!this._constraints || !ws || ws.readyState !== WebSocket.OPEN) return;
    const text = JSON.stringify(this._constraints);
    if (text === this._constraintsSent) return;
    this._constraintsSent = text;
    ws.send(text);
  }

  _closeBridgeChannel() {
    const ws = this.bridgeWs;
    this.bridgeWs = null;
    this.bridgeUrl = '';
    if (ws) {
      try { ws.close(); } catch (e) { /* closed */ }
    }
  }

  _onBridgeMessage(msg) {
    switch (msg.colibriClass) {
      case 'AudioSourcesMap':
      case 'VideoSourcesMap': {
        const kind = msg.colibriClass === 'AudioSourcesMap' ? 'audio' : 'video';
        const owners = [];
        for (const m of msg.mappedSources || []) {
          if (typeof m.slot === 'number') owners[m.slot] = m.owner || null;
        }
        this.slotOwners[kind] = owners;
        this.emit('tracks', {});
        break;
      }
      case 'DominantSpeakerEndpointChangeEvent':
        this.dominant = msg.dominantSpeakerEndpoint || null;
        this.emit('dominant', { nick: this.dominant });
        break;
      case 'SenderVideoConstraints': {
        // Nobody receives our video (last-N): stop sending it until someone does.
        const height = Number((msg.videoConstraints || {}).idealHeight);
        this.videoWanted = !(height <= 0);
        if (height > 0 && height !== this.wantedHeight) {
          this.wantedHeight = height; // the layers anyone watches: the others are switched off
          this._applyVideoEncodings();
        }
        const sender = this._sender('video');
        if (sender) {
          sender.replaceTrack(this.videoWanted ? this.localTracks.video || null : null)
            .catch((e) => console.warn('replaceTrack failed', e));
        }
        break;
      }
      default:
        break;
    }
  }

  // ---- leaving -------------------------------------------------------------------------------
  async leave() {
    if (this.ended) return;
    this.leaving = true;
    if (this.xmpp && this.xmpp.connected) {
      if (this.sid) {
        this.xmpp.send(el('iq', { xmlns: NS.CLIENT, type: 'set', to: this.focusJid, id: `term-${this.sid}` }, [
          el('jingle', { xmlns: NS.JINGLE, action: 'session-terminate', sid: this.sid, initiator: this.focusJid }, [
            el('reason', {}, [el('success'), el('text', {}, ['left the meeting'])]),
          ]),
        ]));
      }
      if (this.joined) this.xmpp.send(el('presence', { xmlns: NS.CLIENT, to: this.occupantJid, type: 'unavailable' }));
      if (this._lobbyRoom) {
        this.xmpp.send(el('presence', { xmlns: NS.CLIENT, to: `${this._lobbyRoom}/${this.nick}`, type: 'unavailable' }));
      }
      if (this.modLobby) {
        this.xmpp.send(el('presence', { xmlns: NS.CLIENT, to: `${this.modLobby.jid}/${this.nick}`, type: 'unavailable' }));
      }
    }
    this._end('left', 'You left the meeting.');
  }

  _end(reason, message) {
    if (this.ended) return;
    this.ended = true;
    this.joined = false;
    this.reconnecting = false;
    if (this._wakeReconnect) this._wakeReconnect();
    this._closeMedia();
    if (this.xmpp) this.xmpp.disconnect();
    this.emit('ended', { reason, message });
  }

  /** Per-kind inbound/outbound byte counters (for the tests and the stats overlay). */
  async stats() {
    const out = { inbound: { audio: 0, video: 0 }, outbound: { audio: 0, video: 0 }, framesDecoded: 0,
      connectionState: this.pc ? this.pc.connectionState : 'none' };
    if (!this.pc) return out;
    const report = await this.pc.getStats();
    report.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        out.inbound[s.kind] += s.bytesReceived || 0;
        if (s.kind === 'video') out.framesDecoded += s.framesDecoded || 0;
      } else if (s.type === 'outbound-rtp') out.outbound[s.kind] += s.bytesSent || 0;
    });
    return out;
  }
}

/** What the page says when the focus did not set the room up (`_askFocus`'s failure). */
function focusFailure({ condition, text, transient }) {
  const why = `${condition}${text ? ' - ' + text : ''}`;
  return transient
    ? `The conference service did not set up this room (${why}). Try again in a moment.`
    : `The conference service refused this room: ${why}`;
}

/** A data form's fields: {var: first value}. */
function formFields(x) {
  const out = {};
  if (!x) return out;
  for (const f of children(x, NS.DATA_FORMS, 'field')) {
    const v = children(f, NS.DATA_FORMS, 'value')[0];
    out[f.getAttribute('var') || ''] = v ? v.textContent : '';
  }
  return out;
}

/**
 * The SSRCs Chromium sends the simulcast `rids` of m-section `mid` on, lowest first:
 * [{ssrc, rtxSsrc}]. Its answer does not list them, but its outbound-rtp stats do (with `rid`)
 * right after setLocalDescription, before any packet is sent. [] if they do not show up in time.
 */
async function sendLayers(pc, mid, rids, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const byRid = new Map();
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video' && s.mid === mid && s.rid) {
        byRid.set(s.rid, { ssrc: s.ssrc, rtxSsrc: s.rtxSsrc || 0 });
      }
    });
    if (rids.every((r) => byRid.has(r))) return rids.map((r) => byRid.get(r));
    if (Date.now() > deadline) {
      console.warn('simulcast SSRCs not found in the stats: sending without video sources');
      return [];
    }
    await sleep(50);
  }
}

function waitForIceGathering(pc, timeoutMs) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === 'complete') done();
    }
    pc.addEventListener('icegatheringstatechange', check);
  });
}

export { XmppError };
