// Moderators' room security: the Security dialog (lobby on/off, the room's password) and the
// list of people knocking in the lobby, to admit or turn away. Owns state.securityBusy.
import { $, smallAvatar } from './dom.js';
import { icons } from './icons.js';
import { toast } from './notices.js';

/** `renderToolbar` marks the Security button active while the dialog is open. */
export function createSecurity(state, { renderToolbar }) {
  function open() {
    const dlg = $('security-dialog');
    if (!dlg.hidden) {
      close();
      return;
    }
    dlg.hidden = false;
    $('security-error').hidden = true;
    render();
    renderToolbar();
    if (state.conf) state.conf.refreshRoomConfig();
    $('lobby-toggle').focus();
  }

  function close() {
    $('security-dialog').hidden = true;
    renderToolbar();
    $('btn-security').focus();
  }

  /** Draw the dialog from the room's configuration (conf.roomConfig; null while loading). */
  function render() {
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

  /** Run one change (`fn`), the controls disabled meanwhile; a failure shows in the dialog. */
  async function action(what, fn) {
    state.securityBusy = true;
    $('security-error').hidden = true;
    render();
    try {
      await fn();
    } catch (e) {
      $('security-error').textContent = `Could not ${what} (${e.condition || e.message}).`;
      $('security-error').hidden = false;
    }
    state.securityBusy = false;
    render();
  }

  /** The people waiting in the lobby now (the Conference's `knockers` list); a newcomer gets a toast. */
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
      li.append(smallAvatar(k.name), nm, admit, deny);
      ul.appendChild(li);
      if (!before.has(k.nick)) toast(`${k.name} is waiting in the lobby`);
    }
    $('knocking-title').textContent = list.length > 1 ? `Waiting in the lobby (${list.length})` : 'Waiting in the lobby';
    box.hidden = list.length === 0;
  }

  /** The meeting is over: no dialog, no knockers. */
  function hide() {
    $('security-dialog').hidden = true;
    $('knocking').hidden = true;
  }

  function wire() {
    $('security-close').innerHTML = icons.close;
    $('btn-security').addEventListener('click', open);
    $('security-close').addEventListener('click', close);
    $('security-dialog').addEventListener('click', (ev) => { if (ev.target === $('security-dialog')) close(); });
    $('security-dialog').addEventListener('keydown', (ev) => { if (ev.key === 'Escape') close(); });
    $('lobby-toggle').addEventListener('change', (ev) => {
      const on = ev.target.checked;
      action(on ? 'turn the lobby on' : 'turn the lobby off', async () => {
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
      action('set the password', async () => {
        await state.conf.setRoomPassword(pw);
        $('room-password-input').value = '';
        toast('The meeting now has a password.');
      });
    });
    $('room-password-remove').addEventListener('click', () => {
      action('remove the password', async () => {
        await state.conf.setRoomPassword('');
        toast('The password was removed.');
      });
    });
  }

  return { render, renderKnockers, hide, wire };
}
