// Room names: what the server accepts, and friendly suggestions.
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
