// Secure domain ([auth] mode "secure"): a guest whose meeting no registered user has opened yet
// waits here (Conference asks the focus again every few seconds and goes on by itself once the
// host is in); "I am the host" opens the sign-in dialog, and the Conference signs in again as
// that user. A wrong password is said in the dialog and the page goes on waiting.
import { $, show } from './dom.js';

export function createWaiting(state) {
  function showWaiting(text) {
    $('waiting-host-text').textContent = `${text}. You will be let in as soon as the host arrives.`;
    $('host-login').hidden = true;
    $('host-sign-in').hidden = false;
    show('waiting-host');
  }

  function openDialog() {
    $('host-login').hidden = false;
    $('host-sign-in').hidden = true;
    $('host-login-error').hidden = true;
    $('host-user').focus();
  }

  function loginFailed(text) {
    openDialog();
    $('waiting-host-text').textContent = 'Still waiting for the host.';
    $('host-login-error').textContent = text;
    $('host-login-error').hidden = false;
    $('host-password').value = '';
    $('host-password').focus();
  }

  function wire() {
    $('host-sign-in').addEventListener('click', openDialog);
    $('host-login-cancel').addEventListener('click', () => {
      $('host-login').hidden = true;
      $('host-sign-in').hidden = false;
    });
    $('waiting-cancel').addEventListener('click', () => { if (state.conf) state.conf.leave(); });
    $('host-login').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const user = $('host-user').value.trim();
      const password = $('host-password').value;
      if (!user || !password || !state.conf) return;
      $('host-login-error').hidden = true;
      $('waiting-host-text').textContent = `Signing in as ${user}…`;
      state.conf.signInAsHost(user, password);
    });
  }

  return { show: showWaiting, loginFailed, wire };
}
