// Our own media: the microphone, the camera and a shared screen, from the pre-join screen to the
// end of the meeting. Owns the state's track, mute and device fields; hands tracks to the
// Conference once there is one (state.conf).
import { $ } from './dom.js';
import { toast } from './notices.js';

/** What to tell the user when getUserMedia for a `what` ('microphone', 'camera') failed. */
export function mediaErrorText(err, what) {
  const name = err && err.name;
  if (name === 'NotAllowedError' || name === 'SecurityError') return `Access to your ${what} is blocked.`;
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return `No ${what} was found.`;
  if (name === 'NotReadableError') return `Your ${what} is in use by another application.`;
  return `Your ${what} could not be started${err && err.message ? ` (${err.message})` : ''}.`;
}

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

/**
 * The local media part. `view` redraws what shows our media: `preview()` (pre-join),
 * `toolbar()`, `self()` (our tile and people entry), and `warn(text)` puts a problem on the
 * pre-join screen (null: no problem).
 */
export function createMedia(state, view) {
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

  /** Microphone and (unless ?video=off) camera for the pre-join screen; either may fail alone. */
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
    view.warn(problems.length
      ? `${problems.join(' ')} You can still join; others will not see or hear you until you allow access in your browser.`
      : null);
    await fillDevices();
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
    view.preview();
    view.toolbar();
    view.self();
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
        if (!state.conf) view.warn(msg);
        return;
      }
      state.videoMuted = false;
      if (state.conf && !state.screenTrack) {
        await state.conf.setLocalTrack('video', state.camTrack);
        state.conf.setVideoMuted(false, 'camera');
      }
    }
    view.preview();
    view.toolbar();
    view.self();
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
    view.preview();
    view.self();
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
    view.toolbar();
    view.self();
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
    view.toolbar();
    view.self();
  }

  /** The meeting is over: release camera, microphone and screen. */
  function stopAll() {
    for (const t of [state.micTrack, state.camTrack, state.screenTrack]) if (t) t.stop();
    state.micTrack = state.camTrack = state.screenTrack = null;
  }

  return { acquireInitial, toggleMic, toggleCam, switchDevice, toggleScreen, stopAll };
}
