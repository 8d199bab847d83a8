// An XMPP client we did not write (the npm `stanza` library), signing in as a new user would:
// no JID, no password, only a server name. Driven by tests/test_auth_modes.py.
// Usage: node stanza_guest.mjs ws://127.0.0.1:PORT/xmpp-websocket SERVER ROOM_JID NICK TEXT
// Prints one JSON object per line: online, joined, message (from the room), error.
import WebSocketImpl from "ws";

globalThis.WebSocket ??= WebSocketImpl; // Node 20 has no global WebSocket
const XMPP = await import("stanza");

const [url, server, room, nick, text] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const client = XMPP.createClient({ server, transports: { websocket: url, bosh: false } });

client.on("auth:failed", () => { out({ event: "error", text: "auth:failed" }); process.exit(1); });
client.on("session:started", async () => {
  out({ event: "online", jid: client.jid });
  try {
    await client.joinRoom(room, nick);
    out({ event: "joined" });
    client.sendMessage({ to: room, type: "groupchat", body: text });
  } catch (e) {
    out({ event: "error", text: String(e && e.error ? e.error.condition : e) });
  }
});
client.on("groupchat", (msg) => out({ event: "message", from: msg.from, body: msg.body || null }));
client.connect();
