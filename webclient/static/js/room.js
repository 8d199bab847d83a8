// The room page: pre-join (name, preview, devices), then the conference UI on top of Conference.
// This file is the front: it makes the state (store.js), builds the parts, wires the
// Conference's events to them, and starts the page. The parts, in the order a visit uses them:
//   media.js     our microphone, camera and screen
//   prejoin.js   the pre-join screen (preview, devices, name, password)
//   tiles.js     participants' tiles, grid and stage, video constraints, remote audio
//   people.js    the People panel, with moderators' mute and remove
//   chat.js      the chat panel
//   toolbar.js   the toolbar, the side panel, Copy link, keyboard shortcuts
//   security.js  moderators' lobby and password dialog, people knocking in the lobby
//   waiting.js   secure domain: the waiting-for-host screen and the host's sign-in dialog
//   notices.js   toasts, the reconnect banner, the media state, the screen at the end
import config from '/config.js';
import { Conference } from './conference.js';
import { ROOM_RE } from './names.js';
import { $, show } from './dom.js';
import { createState } from './store.js';
import { createMedia } from './media.js';
import { createPrejoin } from './prejoin.js';
import { createTiles } from './tiles.js';
import { createPeople } from './people.js';
import { createChat } from './chat.js';
import { createToolbar } from './toolbar.js';
import { createSecurity } from './security.js';
import { createWaiting } from './waiting.js';
import * as notices from './notices.js';

const params = new URLSearchParams(window.location.search);
const roomName = decodeURIComponent(window.location.pathname.replace(/^\/+/, '').split('/')[0]);

const state = createState(params);
const tiles = createTiles(state);
const people = createPeople(state, { layoutGrid: tiles.layoutGrid });

/** Our own tile and People entry, after our media changed. */
function renderSelf() {
  tiles.renderTile(null);
  if (state.conf && state.conf.joined) people.render();
}

// media and pre-join, toolbar and chat redraw each other: the arrows resolve once all exist
const media = createMedia(state, {
  preview: () => prejoin.renderPreview(),
  toolbar: () => toolbar.render(),
  self: renderSelf,
  warn: (text) => prejoin.warn(text),
});
const prejoin = createPrejoin(state, { roomName, params, media, join: startConference });
const toolbar = createToolbar(state, { roomName, media, chatOpened: () => chat.opened() });
const chat = createChat(state, { renderToolbar: toolbar.render });
const security = createSecurity(state, { renderToolbar: toolbar.render });
const waiting = createWaiting(state);

// ---- the conference ------------------------------------------------------------------------
function startConference(name, password) {
  // [auth] mode "token": the meeting link carries the JWT (?jwt=...), as Jitsi's links do
  const conf = state.conf = new Conference(config, { room: roomName, name, password, preferBosh: params.has('bosh'),
    token: params.get('jwt') || '' });
  window.jitsiTest.conference = conf;
  conf.audioMuted = state.audioMuted;
  conf.videoMuted = state.videoMuted || !state.camTrack;
  conf.setLocalTrack('audio', state.micTrack);
  conf.setLocalTrack('video', conf.videoMuted ? null : state.camTrack);
  conf.addEventListener('status', (ev) => prejoin.status(ev.detail.text));
  conf.addEventListener('warning', (ev) => notices.toast(ev.detail.text, 8000));
  conf.addEventListener('password', (ev) => {
    notices.hideBanner();
    prejoin.askPassword(ev.detail.retry);
  });
  conf.addEventListener('lobby', () => {
    notices.hideBanner();
    show('lobby');
  });
  conf.addEventListener('lobby-admitted', () => show('prejoin'));
  conf.addEventListener('waiting-for-host', (ev) => waiting.show(ev.detail.text));
  conf.addEventListener('host-arrived', () => show('prejoin'));
  conf.addEventListener('host-login-failed', (ev) => waiting.loginFailed(ev.detail.text));
  conf.addEventListener('joined', onJoined);
  conf.addEventListener('participant', (ev) => {
    const p = ev.detail.participant;
    const isNew = !tiles.hasTile(p.nick);
    tiles.renderTile(p.nick);
    if (isNew && conf.joined && state.joinedAt && Date.now() - state.joinedAt > 1500) notices.toast(`${p.name} joined`);
    people.render();
  });
  conf.addEventListener('participant-left', (ev) => {
    const p = ev.detail.participant;
    tiles.removeTile(p.nick);
    people.render();
    notices.toast(`${p.name} left`);
  });
  conf.addEventListener('tracks', () => {
    for (const p of conf.participants.values()) tiles.renderTile(p.nick);
  });
  conf.addEventListener('audio-track', (ev) => tiles.playAudio(ev.detail.slot, ev.detail.track));
  conf.addEventListener('dominant', () => tiles.renderDominant());
  conf.addEventListener('media-state', (ev) => notices.showMediaState(ev.detail.state));
  conf.addEventListener('muted-by', (ev) => {
    const { kind, actor } = ev.detail;
    if (kind === 'audio' && !state.audioMuted) media.toggleMic();
    if (kind === 'video' && !state.videoMuted) media.toggleCam();
    notices.toast(`${actor} muted your ${kind === 'audio' ? 'microphone' : 'camera'}.`, 6000);
  });
  conf.addEventListener('start-muted', (ev) => {
    const { audio, video } = ev.detail;
    if (audio && !state.audioMuted) media.toggleMic();
    if (video && !state.videoMuted) media.toggleCam();
    notices.toast(`This meeting starts everyone ${audio && video ? 'muted with video off' : audio ? 'muted' : 'with video off'}. Unmute when you are ready.`, 6000);
  });
  conf.addEventListener('role', () => {
    people.render();
    toolbar.render();
  });
  conf.addEventListener('reconnecting', (ev) => notices.showReconnecting(ev.detail));
  conf.addEventListener('reconnected', () => notices.showReconnected(conf.xmpp.transportName));
  conf.addEventListener('room-config', () => security.render());
  conf.addEventListener('knockers', (ev) => security.renderKnockers(ev.detail.list));
  conf.addEventListener('chat', (ev) => chat.add(ev.detail));
  conf.addEventListener('chat-error', (ev) => notices.toast(`Your message could not be sent (${ev.detail.text}).`));
  conf.addEventListener('ended', (ev) => onEnded(ev.detail));
  conf.join();
}

function onJoined(ev) {
  const conf = state.conf;
  if (!ev.detail.rejoined) state.joinedAt = Date.now();
  show('conference');
  $('room-title').textContent = roomName;
  notices.showTransport(conf.xmpp.transportName);
  $('media-info').textContent = 'Waiting for others';
  renderSelf();
  toolbar.render();
  people.render();
}

function onEnded(detail) {
  notices.hideBanner();
  security.hide();
  media.stopAll();
  tiles.silence();
  notices.showEnded(detail);
}

function wireConferenceUi() {
  toolbar.wire();
  chat.wire();
  security.wire();
  waiting.wire();
  $('lobby-cancel').addEventListener('click', () => { if (state.conf) state.conf.leave(); });
  $('rejoin').addEventListener('click', () => window.location.reload());
  window.addEventListener('pagehide', () => { if (state.conf && !state.conf.ended) state.conf.leave(); });
  window.addEventListener('online', () => { if (state.conf) state.conf.reconnectNow(); });
}

// ---- test hooks ------------------------------------------------------------------------------
window.jitsiTest = {
  conference: null,
  state,
  async stats() { return state.conf ? state.conf.stats() : null; },
  pc() { return state.conf ? state.conf.pc : null; },
};

// ---- start ---------------------------------------------------------------------------------
if (!ROOM_RE.test(roomName)) {
  onEnded({ reason: 'bad-room', message: 'Meeting names use letters, digits, - and _ only.' });
} else if (!window.RTCPeerConnection || !navigator.mediaDevices) {
  show('not-supported');
} else {
  wireConferenceUi();
  prejoin.start();
}
