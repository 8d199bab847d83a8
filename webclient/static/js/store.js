// The room page's state: one plain object, made here and handed to each part of the page.
// Every field has one writer (named beside it); the others only read it. The object itself is
// what tests see as `window.jitsiTest.state`, so fields keep their names.

/** A fresh state; `params` (the page's query) can start the meeting muted (?audio=off, ?video=off). */
export function createState(params) {
  return {
    // room.js: the Conference once the user asked to join, and when we got in the first time
    conf: null,
    joinedAt: 0,
    // media.js: our own tracks, whether we send them, and the devices they come from
    micTrack: null,
    camTrack: null,
    screenTrack: null,
    audioMuted: params.get('audio') === 'off',
    videoMuted: params.get('video') === 'off',
    micDevice: '',
    camDevice: '',
    // prejoin.js: the room asked for a password and the join form now answers it
    pendingPassword: false,
    // toolbar.js (panel) and chat.js (unread): the side panel shown and messages not seen yet
    panel: null, // 'chat' | 'people' | null
    unread: 0,
    // tiles.js: one <audio> per remote audio slot, and the remote participant (nick) shown
    // large, on stage (null: the plain grid)
    audioEls: new Map(),
    pinned: null,
    // security.js: a lobby or password change is on its way
    securityBusy: false,
  };
}
