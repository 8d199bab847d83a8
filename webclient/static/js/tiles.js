// The participants' tiles: one per person (ours first), a grid sized for the biggest 16:9
// tiles, a pinned participant on stage over a filmstrip, and the video constraints that let the
// bridge forward the simulcast layer each tile can show. Also the remote audio elements.
// Owns the state's `pinned` and `audioEls`.
import { $, initials, colorFor } from './dom.js';
import { icons } from './icons.js';

const MIN_TILE_WIDTH = 200; // px: below this a large meeting's grid scrolls

const tileOf = (nick) => document.querySelector(`.tile[data-nick="${CSS.escape(nick)}"]`);

/** The video height to ask for a tile this many pixels high: the bridge's layer steps 180, 360, 720. */
function videoHeightFor(px) {
  return px <= 180 ? 180 : px <= 360 ? 360 : 720;
}

export function createTiles(state) {
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
    if (!local && p.chatOnly) {
      if (tileOf(nick)) removeTile(nick); // a text-only XMPP client: in the People list, not on the grid
      return;
    }
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

  /** Whether a remote participant (nick) has a tile yet. */
  function hasTile(nick) {
    return !!tileOf(nick);
  }

  /** A participant left: their tile goes, and the stage with it if they were on it. */
  function removeTile(nick) {
    const tile = tileOf(nick);
    if (tile) tile.remove();
    if (state.pinned === nick) state.pinned = null;
    layoutGrid();
  }

  /** The bridge named a new dominant speaker: highlight their tile (nobody's when alone). */
  function renderDominant() {
    const conf = state.conf;
    for (const t of document.querySelectorAll('.tile')) {
      t.classList.toggle('dominant', t.dataset.nick === conf.dominant && conf.participants.size > 0);
    }
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

  /** Play a remote audio track; one <audio> per bridge slot, reused when the slot's track changes. */
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

  /** The meeting is over: no more remote sound. */
  function silence() {
    for (const a of state.audioEls.values()) a.srcObject = null;
  }

  if (window.ResizeObserver) new ResizeObserver(() => layoutGrid()).observe(document.getElementById('grid'));

  return { renderTile, hasTile, removeTile, renderDominant, layoutGrid, playAudio, silence };
}
