// Small helpers every part of the room page uses: element lookup, screens, avatars.

export const $ = (id) => document.getElementById(id);

/** Show one of the page's screens (prejoin, lobby, conference, ended, not-supported). */
export function show(id) {
  for (const s of document.querySelectorAll('.screen')) s.hidden = s.id !== id;
  document.body.dataset.screen = id;
}

export function initials(name) {
  const words = (name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : (words[0] || '?')[0];
  return letters.toUpperCase();
}

/** A stable background colour per name, so an avatar looks the same everywhere. */
export function colorFor(key) {
  let h = 0;
  for (const ch of key || '') h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360} 45% 42%)`;
}

/** A small round avatar with initials (people list, lobby knockers). */
export function smallAvatar(name) {
  const av = document.createElement('span');
  av.className = 'avatar small';
  av.textContent = initials(name);
  av.style.background = colorFor(name);
  return av;
}
