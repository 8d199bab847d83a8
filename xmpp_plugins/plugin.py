"""The plugin API of the embedded XMPP server.

The core only parses streams, authenticates sessions and routes stanzas; every feature is a
plugin. A plugin is a class with a `name`, built with the server and started with it. It hooks
in through three calls, all on `self.server`:

- `register_iq(tag, handler, scopes)`: answer IQ get/set whose payload element is `tag` (Clark
  notation) when sent to one of our hosts (scope 'host') or to an account's bare JID (scope
  'account'). The handler gets a typed `Stanza` and returns the result payload (or None for an
  empty result), may be `async`, and raises `StanzaError` for an error reply. Any other
  exception becomes `internal-server-error` for that stanza only.
- `register_domain(domain, handler)`: serve a whole domain (the MUC serves conference.<domain>);
  `handler.receive(stanza)` gets every stanza addressed there, synchronously and in order.
- `send(element)`: route an element the plugin built, with `from` and `to` set.
  Stanza elements are namespace-free at the top (`etree.Element("message")`); payload children
  carry their own namespace (see `stanza.py`).

Plugins also add disco#info features of the server with `server.disco_features.add(var)`.

Example, the whole of XEP-0199 (our `plugins/ping.py`):

    class PingPlugin(Plugin):
        name = "ping"

        async def start(self) -> None:
            self.server.register_iq(ns.q(ns.PING, "ping"), self.on_ping, scopes=("host", "account"))
            self.server.disco_features.add(ns.PING)

        def on_ping(self, stanza: Stanza) -> None:
            return None  # an empty result is the pong
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import Server


class Plugin:
    name = "plugin"

    def __init__(self, server: "Server") -> None:
        self.server = server

    async def start(self) -> None:
        """Register handlers here."""

    async def stop(self) -> None:
        """Release what start() took."""
