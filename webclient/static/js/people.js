// The People panel: everyone in the meeting with their mic and camera state, and for
// moderators the buttons to mute or remove someone.
import { $, smallAvatar } from './dom.js';
import { icons } from './icons.js';
import { toast } from './notices.js';

/** `layoutGrid` runs after each redraw: the participant count in the top bar follows the list. */
export function createPeople(state, { layoutGrid }) {
  function moderatorActions(conf, p) {
    const actions = document.createElement('span');
    actions.className = 'person-actions';
    if (!p.audioMuted && !p.chatOnly) {
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
    return actions;
  }

  function render() {
    const conf = state.conf;
    if (!conf) return;
    const list = $('people-list');
    list.innerHTML = '';
    const entries = [{ nick: conf.nick, name: conf.name, self: true, audioMuted: state.audioMuted || !state.micTrack,
      videoMuted: (state.videoMuted || !state.camTrack) && !state.screenTrack }, ...conf.participants.values()];
    for (const p of entries) {
      const li = document.createElement('li');
      li.dataset.nick = p.nick;
      const nm = document.createElement('span');
      nm.className = 'person-name';
      nm.textContent = p.self ? `${p.name} (you)` : p.name;
      const ind = document.createElement('span');
      ind.className = 'person-ind';
      if (p.chatOnly) {
        ind.textContent = 'chat only';
        ind.title = `${p.name} uses a text-only client: chat, no audio or video`;
        li.classList.add('chat-only');
      } else {
        ind.innerHTML = (p.audioMuted ? icons.micOff : icons.mic) + (p.videoMuted ? icons.camOff : icons.cam);
      }
      li.append(smallAvatar(p.name), nm, ind);
      if (!p.self && conf.isModerator) li.appendChild(moderatorActions(conf, p));
      list.appendChild(li);
    }
    layoutGrid();
  }

  return { render };
}
