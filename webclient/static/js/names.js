// Room names: what the server accepts, and friendly suggestions; our nick in a room.
export const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;

const ADJECTIVES = ['Brave', 'Calm', 'Clever', 'Bright', 'Gentle', 'Happy', 'Lively', 'Quiet', 'Swift', 'Witty',
  'Golden', 'Silver', 'Sunny', 'Rapid', 'Bold', 'Kind', 'Merry', 'Noble', 'Proud', 'Wise'];
const NOUNS = ['Otters', 'Falcons', 'Rivers', 'Maples', 'Comets', 'Harbors', 'Lanterns', 'Meadows', 'Pioneers',
  'Islands', 'Orchards', 'Summits', 'Beacons', 'Voyagers', 'Willows', 'Canyons', 'Glaciers', 'Sparrows'];
const VERBS = ['Meet', 'Plan', 'Talk', 'Build', 'Sing', 'Think', 'Gather', 'Explore', 'Travel', 'Dream'];

function pick(list) {
  const n = new Uint32Array(1);
  crypto.getRandomValues(n);
  return list[n[0] % list.length];
}

export function suggestRoomName() {
  return `${pick(ADJECTIVES)}${pick(NOUNS)}${pick(VERBS)}${pick(['Today', 'Often', 'Together', 'Daily', 'Freely'])}`;
}

function randomNick() {
  const b = new Uint8Array(4);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

const MAX_NICK_CHARS = 48;
const MAX_NICK_TRIES = 20;

/**
 * Our MUC nick: the display name itself, so XMPP users in the room see who is who, and on the
 * room's `conflict` (the name taken, or reserved like "focus") "Ada (2)", "Ada (3)" ... A name
 * with nothing usable in it, or one taken that many times, gets a random nick as before.
 */
export function nickFor(name, attempt = 1) {
  const base = Array.from((name || '').normalize('NFKC')
    .replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\ufeff]/g, '')
    .replace(/\s+/g, ' ').trim()).slice(0, MAX_NICK_CHARS).join('').trim();
  if (!base || attempt > MAX_NICK_TRIES) return randomNick();
  return attempt > 1 ? `${base} (${attempt})` : base;
}
