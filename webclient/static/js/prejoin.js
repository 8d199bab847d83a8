// The pre-join screen: the room's name, a preview of our camera, mute toggles, device choice,
// our display name, and the room's password when it asks for one. Media comes from media.js;
// joining is the front's business (`join(name, password)`).
import { $, show, initials, colorFor } from './dom.js';
import { icons } from './icons.js';

function setToggle(btn, on, iconOn, iconOff, titleOn, titleOff) {
  btn.innerHTML = on ? iconOn : iconOff;
  btn.title = on ? titleOn : titleOff;
  btn.setAttribute('aria-pressed', on ? 'false' : 'true');
  btn.classList.toggle('off', !on);
}

/** The pre-join part for `roomName`; `params` is the page's query (?name= fills the name). */
export function createPrejoin(state, { roomName, params, media, join }) {
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

  /** A problem with our devices (null: none), shown above the form. */
  function warn(text) {
    const box = $('media-warning');
    if (text) {
      box.textContent = text;
      box.hidden = false;
    } else {
      box.hidden = true;
    }
  }

  /** The join's progress under the button. */
  function status(text) {
    $('join-status').textContent = text;
  }

  /** The room wants a password (`retry`: the one we gave was wrong): back here to ask for it. */
  function askPassword(retry) {
    state.pendingPassword = true;
    $('password-box').hidden = false;
    $('password-label').textContent = retry ? 'Wrong password, try again' : 'This meeting has a password';
    $('join').disabled = false;
    $('join-status').textContent = '';
    show('prejoin');
    $('password-input').focus();
  }

  async function start() {
    document.title = `${roomName} | Meeting`;
    $('prejoin-title').textContent = roomName;
    const nameInput = $('name-input');
    try { nameInput.value = params.get('name') || localStorage.getItem('jitsi-py.name') || ''; } catch (e) { /* private mode */ }
    $('pre-mic').addEventListener('click', media.toggleMic);
    $('pre-cam').addEventListener('click', media.toggleCam);
    $('mic-select').addEventListener('change', (ev) => media.switchDevice('audio', ev.target.value));
    $('cam-select').addEventListener('change', (ev) => media.switchDevice('video', ev.target.value));
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
      $('join').disabled = true;
      join(name, password);
    });
    show('prejoin');
    renderPreview();
    $('join-status').textContent = 'Starting camera and microphone…';
    await media.acquireInitial();
    $('join-status').textContent = '';
    renderPreview();
    if (!nameInput.value) nameInput.focus();
  }

  return { start, renderPreview, warn, status, askPassword };
}
