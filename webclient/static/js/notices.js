// What the page tells the user besides the meeting itself: short toasts, the banner while the
// connection is lost and comes back, the media connection's state, and the screen at the end.
import { $, show } from './dom.js';

let toastTimer = null;

/** A short message at the bottom that goes away by itself after `ms`. */
export function toast(text, ms = 4000) {
  const t = $('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, ms);
}

// ---- connection lost: reconnecting -------------------------------------------------------------
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

export function hideBanner() {
  clearTimeout(bannerTimer);
  $('conn-banner').hidden = true;
  delete document.body.dataset.connection;
}

export function showReconnecting({ attempt }) {
  banner(attempt > 1 ? `Connection lost. Reconnecting… (attempt ${attempt})` : 'Connection lost. Reconnecting…', false);
  $('media-info').textContent = 'Reconnecting…';
  if (document.body.dataset.screen === 'prejoin') $('join').disabled = true;
}

/** Back again, over `transportName` ('bosh' or 'websocket'): the banner says so for 3 s. */
export function showReconnected(transportName) {
  banner('Reconnected', true);
  bannerTimer = setTimeout(hideBanner, 3000);
  showTransport(transportName);
}

export function showTransport(transportName) {
  $('conn-info').textContent = transportName === 'bosh' ? 'BOSH' : 'WebSocket';
}

/** The peer connection's state, in the top bar. */
export function showMediaState(s) {
  $('media-info').textContent = s === 'connected' ? 'Media connected' : `Media: ${s}`;
  if (s === 'failed') toast('Audio and video could not connect. Retrying…');
}

// ---- the end ------------------------------------------------------------------------------------
const ENDED_TITLES = {
  left: 'You left the meeting',
  kicked: 'You were removed from the meeting',
  banned: 'You cannot join this meeting',
  'room-full': 'The meeting is full',
  'connection-lost': 'Connection lost',
  unreachable: 'Cannot reach the server',
  'lobby-denied': 'The moderator declined your request',
  ended: 'The meeting has ended',
  'conference-refused': 'The meeting could not be set up',
  'token-refused': 'Your meeting link is not valid',
};

/** The screen for why we are out (the Conference's `ended` reason, or 'bad-room'). */
export function showEnded({ reason, message }) {
  $('ended-title').textContent = ENDED_TITLES[reason] || 'Could not join the meeting';
  $('ended-message').textContent = message || '';
  $('rejoin').textContent = reason === 'left' || reason === 'kicked' ? 'Rejoin' : 'Try again';
  document.body.dataset.endReason = reason;
  show('ended');
}
