// The room page: pre-join (name, preview, devices), then the conference UI on top of Conference.
import config from '/config.js';
import { Conference } from './conference.js';
import { icons } from './icons.js';
import { ROOM_RE } from './names.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);
const roomName = decodeURIComponent(window.location.pathname.replace(/^\/+/, '').split('/')[0]);

const state = {
  conf: null,
  micTrack: null,
  camTrack: null,
  screenTrack: null,
  audioMuted: params.get('audio') === 'off',
  videoMuted: params.get('video') === 'off',
  micDevice: '',
  camDevice: '',
  panel: null, // 'chat' | 'people' | null
  unread: 0,
  audioEls: new Map(),
  pinned: null, // the remote participant (nick) shown large, on stage; null: the plain grid
};

// ---- helpers -------------------------------------------------------------------------------
function show(id) {
  for (const s of document.querySelectorAll('.screen')) s.hidden = s.id !== id;
  document.body.dataset.screen = id;
}

function initials(name) {
  const words = (name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : (words[0] || '?')[0];
  return letters.toUpperCase();
}

function colorFor(key) {
  let h = 0;
  for (const ch of key || '') h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360} 45% 42%)`;
}

let toastTimer = null;
function toast(text, ms = 4000) {
  const t = $('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, ms);
}

function mediaErrorText(err, what) {
  const name = err && err.name;
  if (name === 'NotAllowedError' || name === 'SecurityError') return `Access to your ${what} is blocked.`;
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return `No ${what} was found.`;
  if (name === 'NotReadableError') return `Your ${what} is in use by another application.`;
  return `Your ${what} could not be started${err && err.message ? ` (${err.message})` : ''}.`;
}

// ---- local devices -------------------------------------------------------------------------
async function getMic(deviceId) {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: deviceId ? { deviceId: { exact: deviceId } } : true });
  return stream.getAudioTracks()[0];
}

async function getCam(deviceId) {
  const video = { width: { ideal: 1280 }, height: { ideal: 720 } };
  if (deviceId) video.deviceId = { exact: deviceId };
  const stream = await navigator.mediaDevices.getUserMedia({ video });
  return stream.getVideoTracks()[0];
}

async function acquireInitial() {
  const problems = [];
  const wantAudio = true;
  const wantVideo = !state.videoMuted;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: wantAudio,
      video: wantVideo ? { width: { ideal: 1280 }, height: { ideal: 720 } } : false });
    state.micTrack = stream.getAudioTracks()[0] || null;
    state.camTrack = stream.getVideoTracks()[0] || null;
  } catch (both) {
    // one of the two may still work on its own
    try { state.micTrack = await getMic(''); } catch (e) { problems.push(mediaErrorText(e, 'microphone')); }
    if (wantVideo) {
      try { state.camTrack = await getCam(''); } catch (e) { problems.push(mediaErrorText(e, 'camera')); }
    }
  }
  if (!state.micTrack) state.audioMuted = true;
  if (!state.camTrack) state.videoMuted = true;
  if (state.micTrack) state.micTrack.enabled = !state.audioMuted;
  if (state.micTrack) state.micDevice = state.micTrack.getSettings().deviceId || '';
  if (state.camTrack) state.camDevice = state.camTrack.getSettings().deviceId || '';
  const warn = $('media-warning');
  if (problems.length) {
    warn.textContent = `${problems.join(' ')} You can still join; others will not see or hear you until you allow access in your browser.`;
    warn.hidden = false;
  } else {
    warn.hidden = true;
  }
  await fillDevices();
}

async function fillDevices() {
  if (!navigator.mediaDevices.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind, current) => {
    select.innerHTML = '';
    const list = devices.filter((d) => d.kind === kind);
    list.forEach((d, i) => {
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || `${kind === 'audioinput' ? 'Microphone' : 'Camera'} ${i + 1}`;
      if (d.deviceId === current) o.selected = true;
      select.appendChild(o);
    });
    select.disabled = list.length === 0 || !list[0].deviceId;
    if (!list.length) {
      const o = document.createElement('option');
      o.textContent = 'None available';
      select.appendChild(o);
    }
  };
  fill($('mic-select'), 'audioinput', state.micDevice);
  fill($('cam-select'), 'videoinput', state.camDevice);
}

function renderPreview() {
  const video = $('preview-video');
  const showVideo = !!state.camTrack && !state.videoMuted;
  if (showVideo) {
    if (!video.srcObject || video.srcObject.getVideoTracks()[0] !== state.camTrack) {
      video.srcObject = new MediaStream([state.camTrack]);
      video.play().catch(() => {});
    }
  } else {
    video.srcObject = null;
  }
  video.hidden = !showVideo;
  const avatar = $('preview-avatar');
  avatar.hidden = showVideo;
  const name = $('name-input').value.trim();
  avatar.textContent = initials(name || '?');
  avatar.style.background = colorFor(name);
  setToggle($('pre-mic'), !state.audioMuted, icons.mic, icons.micOff, 'Mute microphone', 'Unmute microphone');
  setToggle($('pre-cam'), !state.videoMuted, icons.cam, icons.camOff, 'Turn camera off', 'Turn camera on');
}

function setToggle(btn, on, iconOn, iconOff, titleOn, titleOff) {
  btn.innerHTML = on ? iconOn : iconOff;
  btn.title = on ? titleOn : titleOff;
  btn.setAttribute('aria-pressed', on ? 'false' : 'true');
  btn.classList.toggle('off', !on);
}

async function toggleMic() {
  if (!state.micTrack) {
    try {
      state.micTrack = await getMic(state.micDevice);
      state.micDevice = state.micTrack.getSettings().deviceId || '';
      state.audioMuted = false;
      if (state.conf) await state.conf.setLocalTrack('audio', state.micTrack);
      fillDevices();
    } catch (e) {
      toast(mediaErrorText(e, 'microphone'));
      return;
    }
  } else {
    state.audioMuted = !state.audioMuted;
  }
  state.micTrack.enabled = !state.audioMuted;
  if (state.conf) state.conf.setAudioMuted(state.audioMuted);
  renderPreview();
  renderToolbar();
  renderSelf();
}

async function toggleCam() {
  if (!state.videoMuted) {
    state.videoMuted = true;
    if (state.camTrack) state.camTrack.stop();
    state.camTrack = null;
    if (state.conf && !state.screenTrack) {
      await state.conf.setLocalTrack('video', null);
      state.conf.setVideoMuted(true, 'camera');
    }
  } else {
    try {
      state.camTrack = await getCam(state.camDevice);
      state.camDevice = state.camTrack.getSettings().deviceId || state.camDevice;
      fillDevices();
    } catch (e) {
      const msg = mediaErrorText(e, 'camera');
      toast(msg);
      if (!state.conf) {
        $('media-warning').textContent = msg;
        $('media-warning').hidden = false;
      }
      return;
    }
    state.videoMuted = false;
    if (state.conf && !state.screenTrack) {
      await state.conf.setLocalTrack('video', state.camTrack);
      state.conf.setVideoMuted(false, 'camera');
    }
  }
  renderPreview();
  renderToolbar();
  renderSelf();
}

async function switchDevice(kind, deviceId) {
  try {
    if (kind === 'audio') {
      const track = await getMic(deviceId);
      if (state.micTrack) state.micTrack.stop();
      state.micTrack = track;
      state.micDevice = deviceId;
      track.enabled = !state.audioMuted;
      if (state.conf) await state.conf.setLocalTrack('audio', track);
    } else {
      state.camDevice = deviceId;
      if (state.videoMuted) return;
      const track = await getCam(deviceId);
      if (state.camTrack) state.camTrack.stop();
      state.camTrack = track;
      if (state.conf && !state.screenTrack) await state.conf.setLocalTrack('video', track);
    }
  } catch (e) {
    toast(mediaErrorText(e, kind === 'audio' ? 'microphone' : 'camera'));
  }
  renderPreview();
  renderSelf();
}

async function toggleScreen() {
  if (state.screenTrack) {
    await stopScreen();
    return;
  }
  if (!navigator.mediaDevices.getDisplayMedia) {
    toast('Screen sharing is not supported by this browser.');
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (e) {
    toast(e && e.name === 'NotAllowedError' ? 'Screen sharing was cancelled.' : `Screen sharing failed: ${e.message}`);
    return;
  }
  const track = stream.getVideoTracks()[0];
  state.screenTrack = track;
  track.addEventListener('ended', () => { if (state.screenTrack === track) stopScreen(); });
  await state.conf.setLocalTrack('video', track, 'desktop');
  state.conf.setVideoMuted(false, 'desktop');
  renderToolbar();
  renderSelf();
}

async function stopScreen() {
  const track = state.screenTrack;
  state.screenTrack = null;
  if (track) track.stop();
  if (state.conf) {
    const cam = !state.videoMuted && state.camTrack ? state.camTrack : null;
    await state.conf.setLocalTrack('video', cam, 'camera');
    state.conf.setVideoMuted(!cam, 'camera');
  }
  renderToolbar();
  renderSelf();
}

// ---- pre-join ------------------------------------------------------------------------------
async function prejoin() {
  document.title = `${roomName} | Meeting`;
  $('prejoin-title').textContent = roomName;
  const nameInput = $('name-input');
  try { nameInput.value = params.get('name') || localStorage.getItem('jitsi-py.name') || ''; } catch (e) { /* private mode */ }
  $('pre-mic').addEventListener('click', toggleMic);
  $('pre-cam').addEventListener('click', toggleCam);
  $('mic-select').addEventListener('change', (ev) => switchDevice('audio', ev.target.value));
  $('cam-select').addEventListener('change', (ev) => switchDevice('video', ev.target.value));
  nameInput.addEventListener('input', renderPreview);
  $('join-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = nameInput.value.trim();
    if (!name) {
      nameInput.focus();
      return;
    }
    try { localStorage.setItem('jitsi-py.name', name); } catch (e) { /* private mode */ }
    const pwBox = $('password-box');
    const password = pwBox.hidden ? '' : $('password-input').value;
    if (state.conf && state.pendingPassword) {
      state.pendingPassword = false;
      $('join').disabled = true;
      state.conf.retryWithPassword(password);
      return;
    }
    startConference(name, password);
  });
  show('prejoin');
  renderPreview();
  $('join-status').textContent = 'Starting camera and microphone…';
  await acquireInitial();
  $('join-status').textContent = '';
  renderPreview();
  if (!nameInput.value) nameInput.focus();
}

// ---- the conference ------------------------------------------------------------------------
function startConference(name, password) {
  $('join').disabled = true;
  const conf = state.conf = new Conference(config, { room: roomName, name, password, preferBosh: params.has('bosh') });
  window.jitsiTest.conference = conf;
  conf.audioMuted = state.audioMuted;
  conf.videoMuted = state.videoMuted || !state.camTrack;
  conf.setLocalTrack('audio', state.micTrack);
  conf.setLocalTrack('video', conf.videoMuted ? null : state.camTrack);
  conf.addEventListener('status', (ev) => { $('join-status').textContent = ev.detail.text; });
  conf.addEventListener('warning', (ev) => toast(ev.detail.text, 8000));
  conf.addEventListener('password', (ev) => {
    hideBanner();
    state.pendingPassword = true;
    $('password-box').hidden = false;
    $('password-label').textContent = ev.detail.retry ? 'Wrong password, try again' : 'This meeting has a password';
    $('join').disabled = false;
    $('join-status').textContent = '';
    show('prejoin');
    $('password-input').focus();
  });
  conf.addEventListener('lobby', () => {
    hideBanner();
    show('lobby');
  });
  conf.addEventListener('lobby-admitted', () => show('prejoin'));
  conf.addEventListener('joined', onJoined);
  conf.addEventListener('participant', (ev) => {
    const p = ev.detail.participant;
    const isNew = !document.querySelector(`.tile[data-nick="${CSS.escape(p.nick)}"]`);
    renderTile(p.nick);
    if (isNew && conf.joined && state.joinedAt && Date.now() - state.joinedAt > 1500) toast(`${p.name} joined`);
    renderPeople();
  });
  conf.addEventListener('participant-left', (ev) => {
    const p = ev.detail.participant;
    const tile = document.querySelector(`.tile[data-nick="${CSS.escape(p.nick)}"]`);
    if (tile) tile.remove();
    if (state.pinned === p.nick) state.pinned = null;
    layoutGrid();
    renderPeople();
    toast(`${p.name} left`);
  });
  conf.addEventListener('tracks', () => {
    for (const p of conf.participants.values()) renderTile(p.nick);
  });
  conf.addEventListener('audio-track', (ev) => playAudio(ev.detail.slot, ev.detail.track));
  conf.addEventListener('dominant', () => {
    for (const t of document.querySelectorAll('.tile')) {
      t.classList.toggle('dominant', t.dataset.nick === conf.dominant && conf.participants.size > 0);
    }
  });
  conf.addEventListener('media-state', (ev) => {
    const s = ev.detail.state;
    $('media-info').textContent = s === 'connected' ? 'Media connected' : `Media: ${s}`;
    if (s === 'failed') toast('Audio and video could not connect. Retrying…');
  });
  conf.addEventListener('muted-by', (ev) => {
    const { kind, actor } = ev.detail;
    if (kind === 'audio' && !state.audioMuted) toggleMic();
    if (kind === 'video' && !state.videoMuted) toggleCam();
    toast(`${actor} muted your ${kind === 'audio' ? 'microphone' : 'camera'}.`, 6000);
  });
  conf.addEventListener('start-muted', (ev) => {
    const { audio, video } = ev.detail;
    if (audio && !state.audioMuted) toggleMic();
    if (video && !state.videoMuted) toggleCam();
    toast(`This meeting starts everyone ${audio && video ? 'muted with video off' : audio ? 'muted' : 'with video off'}. Unmute when you are ready.`, 6000);
  });
  conf.addEventListener('role', () => {
    renderPeople();
    renderToolbar();
  });
  conf.addEventListener('reconnecting', (ev) => onReconnecting(ev.detail));
  conf.addEventListener('reconnected', onReconnected);
  conf.addEventListener('room-config', () => renderSecurity());
  conf.addEventListener('knockers', (ev) => renderKnockers(ev.detail.list));
  conf.addEventListener('chat', (ev) => addChat(ev.detail));
  conf.addEventListener('chat-error', (ev) => toast(`Your message could not be sent (${ev.detail.text}).`));
  conf.addEventListener('ended', (ev) => onEnded(ev.detail));
  conf.join();
}

function onJoined(ev) {
  const conf = state.conf;
  if (!ev.detail.rejoined) state.joinedAt = Date.now();
  show('conference');
  $('room-title').textContent = roomName;
  $('conn-info').textContent = conf.xmpp.transportName === 'bosh' ? 'BOSH' : 'WebSocket';
  $('media-info').textContent = 'Waiting for others';
  renderSelf();
  renderToolbar();
  renderPeople();
}

// ---- connection lost: reconnecting ------------------------------------------------------------
let bannerTimer = null;
function banner(text, ok) {
  const b = $('conn-banner');
  clearTimeout(bannerTimer);
  b.innerHTML = ok ? '' : '<span class="spinner" aria-hidden="true"></span>';
  b.append(text);
  b.classList.toggle('ok', !!ok);
  b.hidden = false;
  document.body.dataset.connection = ok ? 'reconnected' : 'reconnecting';
}

function hideBanner() {
  clearTimeout(bannerTimer);
  $('conn-banner').hidden = true;
  delete document.body.dataset.connection;
}

function onReconnecting({ attempt }) {
  banner(attempt > 1 ? `Connection lost. Reconnecting… (attempt ${attempt})` : 'Connection lost. Reconnecting…', false);
  $('media-info').textContent = 'Reconnecting…';
  if (document.body.dataset.screen === 'prejoin') $('join').disabled = true;
}

function onReconnected() {
  banner('Reconnected', true);
  bannerTimer = setTimeout(hideBanner, 3000);
  const conf = state.conf;
  $('conn-info').textContent = conf.xmpp.transportName === 'bosh' ? 'BOSH' : 'WebSocket';
}

function onEnded({ reason, message }) {
  hideBanner();
  $('security-dialog').hidden = true;
  $('knocking').hidden = true;
  for (const t of [state.micTrack, state.camTrack, state.screenTrack]) if (t) t.stop();
  state.micTrack = state.camTrack = state.screenTrack = null;
  for (const a of state.audioEls.values()) a.srcObject = null;
  const titles = {
    left: 'You left the meeting',
    kicked: 'You were removed from the meeting',
    banned: 'You cannot join this meeting',
    'room-full': 'The meeting is full',
    'connection-lost': 'Connection lost',
    unreachable: 'Cannot reach the server',
    'lobby-denied': 'The moderator declined your request',
    ended: 'The meeting has ended',
    'conference-refused': 'The meeting could not be set up',
  };
  $('ended-title').textContent = titles[reason] || 'Could not join the meeting';
  $('ended-message').textContent = message || '';
  $('rejoin').textContent = reason === 'left' || reason === 'kicked' ? 'Rejoin' : 'Try again';
  document.body.dataset.endReason = reason;
  show('ended');
}

function playAudio(slot, track) {
  let a = state.audioEls.get(slot);
  if (!a) {
    a = document.createElement('audio');
    a.autoplay = true;
    a.dataset.slot = String(slot);
    $('audio-elements').appendChild(a);
    state.audioEls.set(slot, a);
  }
  a.srcObject = new MediaStream([track]);
  a.play().catch(() => {});
}

// ---- tiles ---------------------------------------------------------------------------------
function makeTile(nick, local) {
  const tile = document.createElement('div');
  tile.className = 'tile';
  tile.dataset.nick = nick;
  if (local) tile.classList.add('local');
  else {
    // a click puts this participant on stage (large, and first for the bridge); again: back to the grid
    tile.title = 'Click to pin';
    tile.addEventListener('click', () => pin(state.pinned === tile.dataset.nick ? null : tile.dataset.nick));
  }
  tile.innerHTML = `<video autoplay playsinline muted></video><div class="avatar"></div>
    <div class="nameplate"><span class="ind mic"></span><span class="ind cam"></span><span class="name"></span></div>`;
  const grid = $('grid');
  if (local) grid.prepend(tile);
  else grid.appendChild(tile);
  layoutGrid();
  return tile;
}

/** Draw one participant's tile (nick null: our own). */
function renderTile(nick) {
  const conf = state.conf;
  if (!conf || !conf.joined) return;
  const local = nick === null;
  const key = local ? conf.nick : nick;
  const p = local ? null : conf.participants.get(nick);
  if (!local && !p) return;
  let tile = local ? document.querySelector('.tile.local')
    : document.querySelector(`.tile:not(.local)[data-nick="${CSS.escape(key)}"]`);
  if (!tile) tile = makeTile(key, local);
  tile.dataset.nick = key; // our own nick is new after a reconnect
  const name = local ? conf.name : p.name;
  const audioMuted = local ? state.audioMuted || !state.micTrack : p.audioMuted;
  let track;
  let videoOn;
  if (local) {
    track = state.screenTrack || (!state.videoMuted ? state.camTrack : null);
    videoOn = !!track;
  } else {
    track = conf.remoteTracks(nick).video;
    videoOn = !!track && !p.videoMuted;
  }
  const video = tile.querySelector('video');
  if (videoOn) {
    if (video._track !== track) {
      video._track = track;
      video.srcObject = new MediaStream([track]);
      video.play().catch(() => {});
    }
  } else if (video._track) {
    video._track = null;
    video.srcObject = null;
  }
  tile.classList.toggle('video-on', videoOn);
  tile.classList.toggle('mirror', local && !state.screenTrack);
  tile.classList.toggle('screen', local ? !!state.screenTrack : p.videoType === 'desktop');
  tile.classList.toggle('audio-muted', !!audioMuted);
  tile.classList.toggle('video-muted', local ? !videoOn : !!p.videoMuted);
  tile.classList.toggle('dominant', conf.dominant === key && conf.participants.size > 0);
  tile.dataset.name = name;
  const avatar = tile.querySelector('.avatar');
  avatar.textContent = initials(name);
  avatar.style.background = colorFor(name);
  tile.querySelector('.name').textContent = local ? `${name} (you)` : name;
  const mic = tile.querySelector('.ind.mic');
  mic.innerHTML = audioMuted ? icons.micOff : '';
  mic.hidden = !audioMuted;
  mic.title = audioMuted ? 'Microphone muted' : '';
  const cam = tile.querySelector('.ind.cam');
  const camOff = local ? !videoOn : !!p.videoMuted;
  cam.innerHTML = camOff ? icons.camOff : '';
  cam.hidden = !camOff;
}

function renderSelf() {
  renderTile(null);
  if (state.conf && state.conf.joined) renderPeople();
}

/** Put one remote participant on stage (nick), or go back to the plain grid (null). */
function pin(nick) {
  state.pinned = nick;
  for (const t of document.querySelectorAll('#grid .tile:not(.local)')) {
    t.classList.toggle('pinned', t.dataset.nick === nick);
    t.title = t.dataset.nick === nick ? 'Click to unpin' : 'Click to pin';
  }
  layoutGrid();
}

const MIN_TILE_WIDTH = 200; // px: below this a large meeting's grid scrolls

function layoutGrid() {
  const grid = $('grid');
  const n = grid.children.length;
  const gap = 10;
  const W = grid.clientWidth;
  const H = grid.clientHeight;
  const staged = state.pinned && grid.querySelector('.tile.pinned');
  grid.classList.toggle('staged', !!staged);
  if (staged && W && H) {
    // the pinned tile across the top, everyone else in a filmstrip of small tiles below it
    const strip = n > 1 ? Math.min(160, Math.floor(H / 4)) : 0;
    // as many filmstrip columns as fit across, so the stage spans the whole width
    const cols = Math.max(1, Math.floor((W + gap) / ((strip * 16) / 9 + gap)));
    grid.style.gridTemplateColumns = `repeat(${cols}, ${Math.floor((strip * 16) / 9)}px)`;
    grid.style.gridTemplateRows = `${Math.floor(H - (strip ? strip + gap : 0))}px`;
    grid.style.gridAutoRows = `${strip}px`;
    grid.classList.remove('scrolls'); // the stage stays put; a long filmstrip is cut
  } else if (n && W && H) {
    grid.style.gridTemplateRows = '';
    // the column count that gives the biggest 16:9 tiles in the space we have; in a large
    // meeting tiles keep a usable size and the grid scrolls instead
    let best = { area: -1, cols: 1, w: W, h: H };
    for (let cols = 1; cols <= n; cols += 1) {
      const rows = Math.ceil(n / cols);
      let w = (W - (cols - 1) * gap) / cols;
      let h = (w * 9) / 16;
      if (rows * h + (rows - 1) * gap > H) {
        h = (H - (rows - 1) * gap) / rows;
        w = (h * 16) / 9;
      }
      if (w * h > best.area) best = { area: w * h, cols, w, h };
    }
    if (best.w < MIN_TILE_WIDTH) {
      const cols = Math.max(1, Math.floor((W + gap) / (MIN_TILE_WIDTH + gap)));
      const w = (W - (cols - 1) * gap) / cols;
      best = { area: 0, cols, w, h: (w * 9) / 16 };
    }
    const scrolls = Math.ceil(n / best.cols) * (best.h + gap) - gap > H + 1;
    grid.classList.toggle('scrolls', scrolls);
    grid.style.gridTemplateColumns = `repeat(${best.cols}, ${Math.floor(best.w)}px)`;
    grid.style.gridAutoRows = `${Math.floor(best.h)}px`;
  }
  const count = state.conf ? state.conf.participants.size + 1 : 1;
  $('participant-count').textContent = count === 1 ? 'Only you' : `${count} people`;
  updateVideoConstraints();
}

/** The video height to ask for a tile this many pixels high: the bridge's layer steps 180, 360, 720. */
function videoHeightFor(px) {
  return px <= 180 ? 180 : px <= 360 ? 360 : 720;
}

/**
 * Tell the bridge how much video each remote tile can show (device pixels), so it forwards the
 * simulcast layer that fits: small tiles get the 180p layer, big ones the full one. Anyone
 * without a tile yet gets what the biggest tile gets.
 */
function updateVideoConstraints() {
  const conf = state.conf;
  if (!conf) return;
  const scale = window.devicePixelRatio || 1;
  const heights = {};
  let biggest = 0;
  for (const tile of document.querySelectorAll('#grid .tile:not(.local)')) {
    const px = tile.getBoundingClientRect().height * scale;
    if (px > 0) {
      heights[tile.dataset.nick] = videoHeightFor(px);
      biggest = Math.max(biggest, heights[tile.dataset.nick]);
    }
  }
  conf.setReceiverConstraints(heights, biggest || videoHeightFor(document.getElementById('grid').clientHeight * scale),
    state.pinned ? [state.pinned] : []);
}
if (window.ResizeObserver) new ResizeObserver(() => layoutGrid()).observe(document.getElementById('grid'));

// ---- toolbar and panels ----------------------------------------------------------------------
function renderToolbar() {
  const set = (id, icon, label, off) => {
    const b = $(id);
    b.querySelector('.ic').innerHTML = icon;
    b.querySelector('.lbl').textContent = label;
    b.classList.toggle('off', !!off);
  };
  const micOff = state.audioMuted || !state.micTrack;
  set('btn-mic', micOff ? icons.micOff : icons.mic, micOff ? 'Unmute' : 'Mute', micOff);
  $('btn-mic').setAttribute('aria-pressed', micOff ? 'true' : 'false');
  const camOff = state.videoMuted || !state.camTrack;
  set('btn-cam', camOff ? icons.camOff : icons.cam, camOff ? 'Start video' : 'Stop video', camOff);
  $('btn-cam').setAttribute('aria-pressed', camOff ? 'true' : 'false');
  set('btn-screen', icons.screen, state.screenTrack ? 'Stop sharing' : 'Share screen', false);
  $('btn-screen').classList.toggle('active', !!state.screenTrack);
  set('btn-chat', icons.chat, 'Chat', false);
  $('btn-chat').classList.toggle('active', state.panel === 'chat');
  set('btn-people', icons.people, 'People', false);
  $('btn-people').classList.toggle('active', state.panel === 'people');
  set('btn-security', icons.shield, 'Security', false);
  $('btn-security').hidden = !(state.conf && state.conf.isOwner);
  $('btn-security').classList.toggle('active', !$('security-dialog').hidden);
  if (!(state.conf && state.conf.isOwner)) $('security-dialog').hidden = true;
  set('btn-leave', icons.leave, 'Leave', false);
  const unread = $('unread');
  unread.hidden = !state.unread;
  unread.textContent = String(state.unread);
}

function openPanel(which) {
  state.panel = state.panel === which ? null : which;
  $('sidepanel').hidden = !state.panel;
  $('chat-panel').hidden = state.panel !== 'chat';
  $('people-panel').hidden = state.panel !== 'people';
  $('panel-title').textContent = state.panel === 'people' ? 'People' : 'Chat';
  if (state.panel === 'chat') {
    state.unread = 0;
    $('chat-input').focus();
    const log = $('chat-log');
    log.scrollTop = log.scrollHeight;
  }
  renderToolbar();
}

function addChat(msg) {
  const li = document.createElement('li');
  li.className = msg.self ? 'msg self' : 'msg';
  const head = document.createElement('div');
  head.className = 'msg-head';
  const who = document.createElement('span');
  who.className = 'msg-name';
  who.textContent = msg.self ? 'You' : msg.name;
  const when = document.createElement('time');
  when.textContent = msg.stamp.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  head.append(who, when);
  const text = document.createElement('div');
  text.className = 'msg-text';
  text.textContent = msg.text;
  li.append(head, text);
  const log = $('chat-log');
  log.appendChild(li);
  log.scrollTop = log.scrollHeight;
  if (state.panel !== 'chat' && !msg.self && !msg.delayed) {
    state.unread += 1;
    renderToolbar();
    toast(`${msg.name}: ${msg.text.slice(0, 80)}`);
  }
}

function renderPeople() {
  const conf = state.conf;
  if (!conf) return;
  const list = $('people-list');
  list.innerHTML = '';
  const entries = [{ nick: conf.nick, name: conf.name, self: true, audioMuted: state.audioMuted || !state.micTrack,
    videoMuted: (state.videoMuted || !state.camTrack) && !state.screenTrack }, ...conf.participants.values()];
  for (const p of entries) {
    const li = document.createElement('li');
    li.dataset.nick = p.nick;
    const av = document.createElement('span');
    av.className = 'avatar small';
    av.textContent = initials(p.name);
    av.style.background = colorFor(p.name);
    const nm = document.createElement('span');
    nm.className = 'person-name';
    nm.textContent = p.self ? `${p.name} (you)` : p.name;
    const ind = document.createElement('span');
    ind.className = 'person-ind';
    ind.innerHTML = (p.audioMuted ? icons.micOff : icons.mic) + (p.videoMuted ? icons.camOff : icons.cam);
    li.append(av, nm, ind);
    if (!p.self && conf.isModerator) {
      const actions = document.createElement('span');
      actions.className = 'person-actions';
      if (!p.audioMuted) {
        const mute = document.createElement('button');
        mute.type = 'button';
        mute.className = 'mini';
        mute.textContent = 'Mute';
        mute.title = `Mute ${p.name}`;
        mute.addEventListener('click', () => conf.muteParticipant(p.nick, 'audio')
          .catch((e) => toast(`Could not mute ${p.name} (${e.condition || e.message}).`)));
        actions.appendChild(mute);
      }
      const kick = document.createElement('button');
      kick.type = 'button';
      kick.className = 'mini danger';
      kick.textContent = 'Remove';
      kick.title = `Remove ${p.name} from the meeting`;
      kick.addEventListener('click', () => {
        if (window.confirm(`Remove ${p.name} from the meeting?`)) {
          conf.kickParticipant(p.nick).catch((e) => toast(`Could not remove ${p.name} (${e.condition || e.message}).`));
        }
      });
      actions.appendChild(kick);
      li.appendChild(actions);
    }
    list.appendChild(li);
  }
  layoutGrid();
}

// ---- moderators: security dialog and the lobby -------------------------------------------------
function openSecurity() {
  const dlg = $('security-dialog');
  if (!dlg.hidden) {
    closeSecurity();
    return;
  }
  dlg.hidden = false;
  $('security-error').hidden = true;
  renderSecurity();
  renderToolbar();
  if (state.conf) state.conf.refreshRoomConfig();
  $('lobby-toggle').focus();
}

function closeSecurity() {
  $('security-dialog').hidden = true;
  renderToolbar();
  $('btn-security').focus();
}

function renderSecurity() {
  const conf = state.conf;
  const cfg = conf && conf.roomConfig;
  const busy = !cfg || state.securityBusy;
  $('lobby-toggle').checked = !!(cfg && cfg.lobby);
  $('lobby-toggle').disabled = busy;
  const stateText = $('room-password-state');
  stateText.textContent = '';
  if (cfg && cfg.password) {
    const v = document.createElement('span');
    v.className = 'password-value';
    v.textContent = cfg.password;
    stateText.append('The meeting has a password: ', v);
  } else {
    stateText.textContent = cfg ? 'No password: anyone with the link can join.' : 'Loading…';
  }
  $('room-password-remove').hidden = !(cfg && cfg.password);
  $('room-password-remove').disabled = busy;
  $('room-password-set').textContent = cfg && cfg.password ? 'Change' : 'Set';
  $('room-password-set').disabled = busy;
}

async function securityAction(what, fn) {
  state.securityBusy = true;
  $('security-error').hidden = true;
  renderSecurity();
  try {
    await fn();
  } catch (e) {
    $('security-error').textContent = `Could not ${what} (${e.condition || e.message}).`;
    $('security-error').hidden = false;
  }
  state.securityBusy = false;
  renderSecurity();
}

function renderKnockers(list) {
  const conf = state.conf;
  const box = $('knocking');
  const ul = $('knock-list');
  const before = new Set([...ul.children].map((li) => li.dataset.nick));
  ul.innerHTML = '';
  for (const k of list) {
    const li = document.createElement('li');
    li.dataset.nick = k.nick;
    li.dataset.name = k.name;
    const av = document.createElement('span');
    av.className = 'avatar small';
    av.textContent = initials(k.name);
    av.style.background = colorFor(k.name);
    const nm = document.createElement('span');
    nm.className = 'person-name';
    nm.textContent = k.name;
    const admit = document.createElement('button');
    admit.type = 'button';
    admit.className = 'mini primary';
    admit.textContent = 'Admit';
    admit.title = `Let ${k.name} in`;
    admit.addEventListener('click', () => {
      admit.disabled = deny.disabled = true;
      conf.admit(k.nick).catch((e) => {
        admit.disabled = deny.disabled = false;
        toast(`Could not let ${k.name} in (${e.condition || e.message}).`);
      });
    });
    const deny = document.createElement('button');
    deny.type = 'button';
    deny.className = 'mini danger';
    deny.textContent = 'Deny';
    deny.title = `Turn ${k.name} away`;
    deny.addEventListener('click', () => {
      admit.disabled = deny.disabled = true;
      conf.deny(k.nick).catch((e) => {
        admit.disabled = deny.disabled = false;
        toast(`Could not turn ${k.name} away (${e.condition || e.message}).`);
      });
    });
    li.append(av, nm, admit, deny);
    ul.appendChild(li);
    if (!before.has(k.nick)) toast(`${k.name} is waiting in the lobby`);
  }
  $('knocking-title').textContent = list.length > 1 ? `Waiting in the lobby (${list.length})` : 'Waiting in the lobby';
  box.hidden = list.length === 0;
}

function wireSecurityUi() {
  $('security-close').innerHTML = icons.close;
  $('btn-security').addEventListener('click', openSecurity);
  $('security-close').addEventListener('click', closeSecurity);
  $('security-dialog').addEventListener('click', (ev) => { if (ev.target === $('security-dialog')) closeSecurity(); });
  $('security-dialog').addEventListener('keydown', (ev) => { if (ev.key === 'Escape') closeSecurity(); });
  $('lobby-toggle').addEventListener('change', (ev) => {
    const on = ev.target.checked;
    securityAction(on ? 'turn the lobby on' : 'turn the lobby off', async () => {
      await state.conf.setLobby(on);
      toast(on ? 'The lobby is on: newcomers wait until you let them in.' : 'The lobby is off.');
    });
  });
  $('room-password-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const pw = $('room-password-input').value.trim();
    if (!pw) {
      $('room-password-input').focus();
      return;
    }
    securityAction('set the password', async () => {
      await state.conf.setRoomPassword(pw);
      $('room-password-input').value = '';
      toast('The meeting now has a password.');
    });
  });
  $('room-password-remove').addEventListener('click', () => {
    securityAction('remove the password', async () => {
      await state.conf.setRoomPassword('');
      toast('The password was removed.');
    });
  });
}

function wireConferenceUi() {
  $('btn-mic').addEventListener('click', toggleMic);
  $('btn-cam').addEventListener('click', toggleCam);
  $('btn-screen').addEventListener('click', toggleScreen);
  $('btn-chat').addEventListener('click', () => openPanel('chat'));
  $('btn-people').addEventListener('click', () => openPanel('people'));
  $('panel-close').innerHTML = icons.close;
  $('panel-close').addEventListener('click', () => openPanel(state.panel));
  $('chat-send').innerHTML = icons.send;
  $('chat-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('chat-input');
    if (input.value.trim() && state.conf) state.conf.sendChat(input.value);
    input.value = '';
  });
  $('btn-leave').addEventListener('click', () => { if (state.conf) state.conf.leave(); });
  wireSecurityUi();
  $('lobby-cancel').addEventListener('click', () => { if (state.conf) state.conf.leave(); });
  $('rejoin').addEventListener('click', () => window.location.reload());
  $('copy-link').addEventListener('click', async () => {
    const link = `${window.location.origin}/${roomName}`;
    try {
      await navigator.clipboard.writeText(link);
      toast('Meeting link copied. Share it with the people you want to meet.');
    } catch (e) {
      toast(link, 10000);
    }
  });
  window.addEventListener('pagehide', () => { if (state.conf && !state.conf.ended) state.conf.leave(); });
  window.addEventListener('online', () => { if (state.conf) state.conf.reconnectNow(); });
  document.addEventListener('keydown', (ev) => {
    if (document.body.dataset.screen !== 'conference' || ev.target.closest('input, textarea, select, .modal')) return;
    if (ev.key === 'm') toggleMic();
    else if (ev.key === 'v') toggleCam();
  });
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
  prejoin();
}
