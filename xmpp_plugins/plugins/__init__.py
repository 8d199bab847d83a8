"""Server plugins shipped with the embedded XMPP server."""
