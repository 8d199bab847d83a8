// Toolbar and indicator icons: simple inline SVG drawn for this client.
const svg = (body) => `<svg viewBox="0 0 24 24" width="24" height="24" aria-hidden="true" focusable="false">${body}</svg>`;
const stroke = 'fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"';

export const icons = {
  mic: svg(`<rect x="9" y="3" width="6" height="11" rx="3" fill="currentColor"/><path ${stroke} d="M5.5 11a6.5 6.5 0 0 0 13 0M12 17.5V21M8.5 21h7"/>`),
  micOff: svg(`<rect x="9" y="3" width="6" height="11" rx="3" fill="currentColor"/><path ${stroke} d="M5.5 11a6.5 6.5 0 0 0 13 0M12 17.5V21M8.5 21h7"/><path fill="none" stroke="#e5484d" stroke-width="2.4" stroke-linecap="round" d="M4 4l16 16"/>`),
  cam: svg(`<rect x="2.5" y="6" width="13" height="12" rx="2.5" fill="currentColor"/><path fill="currentColor" d="M16.5 10.5l5-3v9l-5-3z"/>`),
  camOff: svg(`<rect x="2.5" y="6" width="13" height="12" rx="2.5" fill="currentColor"/><path fill="currentColor" d="M16.5 10.5l5-3v9l-5-3z"/><path fill="none" stroke="#e5484d" stroke-width="2.4" stroke-linecap="round" d="M3 3l18 18"/>`),
  screen: svg(`<rect x="2.5" y="4" width="19" height="13" rx="2" ${stroke}/><path ${stroke} d="M8 21h8M12 17v4M12 13.5V7.5M9.5 10l2.5-2.5 2.5 2.5"/>`),
  chat: svg(`<path ${stroke} d="M4 5.5h16v10.5H10l-4.5 3.5V16H4z"/>`),
  people: svg(`<circle cx="9" cy="8" r="3.2" ${stroke}/><path ${stroke} d="M3 19c.6-3.4 3-5 6-5s5.4 1.6 6 5"/><circle cx="17" cy="9" r="2.5" ${stroke}/><path ${stroke} d="M16.5 14.2c2.4.2 4 1.6 4.5 4.3"/>`),
  leave: svg(`<path fill="currentColor" d="M2.5 13.2c5.2-4.6 13.8-4.6 19 0 .5.5.6 1.2.2 1.8l-1.6 2c-.4.5-1 .6-1.6.4l-3.1-1.2c-.5-.2-.8-.7-.8-1.2v-1.8a13 13 0 0 0-5.2 0V15c0 .5-.3 1-.8 1.2l-3.1 1.2c-.6.2-1.2.1-1.6-.4l-1.6-2c-.4-.6-.3-1.3.2-1.8z"/>`),
  shield: svg(`<path ${stroke} d="M12 3l7.5 3v5.5c0 4.6-3.2 8-7.5 9.5-4.3-1.5-7.5-4.9-7.5-9.5V6z"/><path ${stroke} d="M9 12l2.2 2.2L15.5 10"/>`),
  close: svg(`<path ${stroke} d="M6 6l12 12M18 6L6 18"/>`),
  send: svg(`<path fill="currentColor" d="M3 20.5l18-8.5L3 3.5l2.5 7L15 12l-9.5 1.5z"/>`),
};
