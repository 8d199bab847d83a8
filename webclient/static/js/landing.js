// The landing page: type a meeting name (or take the suggestion) and go to /<name>.
import { suggestRoomName, ROOM_RE } from './names.js';

const input = document.getElementById('room-input');
const hint = document.getElementById('room-hint');
const form = document.getElementById('go-form');
let suggestion = suggestRoomName();
input.placeholder = suggestion;

function check() {
  const value = input.value.trim();
  const ok = !value || ROOM_RE.test(value);
  input.setAttribute('aria-invalid', ok ? 'false' : 'true');
  hint.classList.toggle('error', !ok);
  hint.textContent = ok ? 'Letters, digits, - and _ (up to 64). Leave it empty to use the suggestion.'
    : 'Only letters, digits, - and _ are allowed (up to 64 characters).';
  return ok;
}

input.addEventListener('input', check);
form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (!check()) {
    input.focus();
    return;
  }
  const room = input.value.trim() || suggestion;
  window.location.assign(`/${encodeURIComponent(room)}`);
});

// rotate the suggestion while the field is empty
setInterval(() => {
  if (document.activeElement !== input || !input.value) {
    suggestion = suggestRoomName();
    input.placeholder = suggestion;
  }
}, 6000);
