"""The XMPP side of the stack: an embedded asyncio XMPP server whose features are plugins.

See `server.py` for the server, `plugin.py` for the plugin API, `router.py` for routing.
"""

__version__ = "0.1.0"
