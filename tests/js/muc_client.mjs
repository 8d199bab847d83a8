// An XMPP client we did not write (xmpp.js), driven line by line by tests/test_muc_xmppjs.py.
// Usage: node muc_client.mjs ws://127.0.0.1:PORT/xmpp-websocket DOMAIN ROOM_JID NICK
// Prints one JSON object per line for what it sees; reads commands from stdin:
//   say TEXT     groupchat message to the room
//   leave        unavailable presence to the room, then disconnect
import readline from "node:readline";
import WebSocketImpl from "ws";

// Node 20 has no global WebSocket (22 does); xmpp.js expects the browser API.
globalThis.WebSocket ??= WebSocketImpl;
const { client, xml } = await import("@xmpp/client");

const [service, domain, room, nick] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const xmpp = client({ service, domain });

xmpp.on("error", (err) => out({ event: "error", text: String(err) }));
xmpp.on("stanza", (stanza) => {
  const from = stanza.attrs.from || "";
  if (!from.startsWith(room)) return;
  if (stanza.is("presence")) {
    const x = stanza.getChild("x", "http://jabber.org/protocol/muc#user");
    const codes = x ? x.getChildren("status").map((s) => Number(s.attrs.code)) : [];
    const item = x ? x.getChild("item") : null;
    out({
      event: "presence", from, type: stanza.attrs.type || "available", codes,
      role: item ? item.attrs.role : null, jid: item ? item.attrs.jid || null : null,
      error: stanza.attrs.type === "error" ? stanza.getChild("error").children.map((c) => c.name) : null,
    });
  } else if (stanza.is("message")) {
    out({ event: "message", from, type: stanza.attrs.type, body: stanza.getChildText("body"),
          subject: stanza.getChildText("subject") });
  }
});
xmpp.on("online", async (address) => {
  out({ event: "online", jid: address.toString() });
  await xmpp.send(xml("presence", { to: `${room}/${nick}` },
    xml("x", { xmlns: "http://jabber.org/protocol/muc" }, xml("history", { maxstanzas: "5" })),
    xml("nick", { xmlns: "http://jabber.org/protocol/nick" }, `display ${nick}`)));
});

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  const [cmd, ...rest] = line.split(" ");
  if (cmd === "say") {
    await xmpp.send(xml("message", { to: room, type: "groupchat" }, xml("body", {}, rest.join(" "))));
  } else if (cmd === "leave") {
    await xmpp.send(xml("presence", { to: `${room}/${nick}`, type: "unavailable" }));
    await xmpp.stop();
    out({ event: "stopped" });
    process.exit(0);
  }
});

xmpp.start().catch((err) => { out({ event: "error", text: String(err) }); process.exit(1); });
