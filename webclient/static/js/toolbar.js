// The conference's controls: the toolbar at the bottom (mic, camera, screen, chat, people,
// security, leave), the side panel it opens (state.panel), the top bar's Copy link, and the
// keyboard shortcuts m (mic) and v (camera).
import { $ } from './dom.js';
import { icons } from './icons.js';
import { toast } from './notices.js';

/** `media` toggles our devices; `chatOpened()` runs when the chat panel opens. */
export function createToolbar(state, { roomName, media, chatOpened }) {
  function render() {
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
    // only owners may change the room: a moderator who lost the role loses the dialog too
    if (!(state.conf && state.conf.isOwner)) $('security-dialog').hidden = true;
    set('btn-leave', icons.leave, 'Leave', false);
    const unread = $('unread');
    unread.hidden = !state.unread;
    unread.textContent = String(state.unread);
  }

  /** Open the side panel `which` ('chat' | 'people'), or close it when it is the one open. */
  function openPanel(which) {
    state.panel = state.panel === which ? null : which;
    $('sidepanel').hidden = !state.panel;
    $('chat-panel').hidden = state.panel !== 'chat';
    $('people-panel').hidden = state.panel !== 'people';
    $('panel-title').textContent = state.panel === 'people' ? 'People' : 'Chat';
    if (state.panel === 'chat') chatOpened();
    render();
  }

  function wire() {
    $('btn-mic').addEventListener('click', media.toggleMic);
    $('btn-cam').addEventListener('click', media.toggleCam);
    $('btn-screen').addEventListener('click', media.toggleScreen);
    $('btn-chat').addEventListener('click', () => openPanel('chat'));
    $('btn-people').addEventListener('click', () => openPanel('people'));
    $('panel-close').innerHTML = icons.close;
    $('panel-close').addEventListener('click', () => openPanel(state.panel));
    $('btn-leave').addEventListener('click', () => { if (state.conf) state.conf.leave(); });
    $('copy-link').addEventListener('click', async () => {
      const link = `${window.location.origin}/${roomName}`;
      try {
        await navigator.clipboard.writeText(link);
        toast('Meeting link copied. Share it with the people you want to meet.');
      } catch (e) {
        toast(link, 10000);
      }
    });
    document.addEventListener('keydown', (ev) => {
      if (document.body.dataset.screen !== 'conference' || ev.target.closest('input, textarea, select, .modal')) return;
      if (ev.key === 'm') media.toggleMic();
      else if (ev.key === 'v') media.toggleCam();
    });
  }

  return { render, wire };
}
