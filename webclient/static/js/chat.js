// The chat panel: the room's messages, ours and others', and the form to send one. Messages
// that arrive while the panel is closed count as unread (state.unread) and show as a toast.
import { $ } from './dom.js';
import { icons } from './icons.js';
import { toast } from './notices.js';

/** `renderToolbar` shows the unread count on the Chat button. */
export function createChat(state, { renderToolbar }) {
  /** One message from the Conference's `chat` event. */
  function add(msg) {
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

  /** The panel was opened: everything is read now. */
  function opened() {
    state.unread = 0;
    $('chat-input').focus();
    const log = $('chat-log');
    log.scrollTop = log.scrollHeight;
  }

  function wire() {
    $('chat-send').innerHTML = icons.send;
    $('chat-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const input = $('chat-input');
      if (input.value.trim() && state.conf) state.conf.sendChat(input.value);
      input.value = '';
    });
  }

  return { add, opened, wire };
}
