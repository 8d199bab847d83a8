"""The embedded asyncio XMPP server: the core parses, authenticates and routes; features are plugins.

In the order a client's bytes travel:

- `tls.py`          the certificate for STARTTLS and HTTPS (the admin's, or one made once)
- `tcp_stream.py`   c2s and component connections over TCP: per-connection limits, the parser
- `http.py`         the HTTP endpoints: `websocket.py` (RFC 7395) and `bosh.py` (XEP-0124/0206),
                    with `origin.py` deciding which web pages may use them
- `c2s_session.py`  one client's session whatever its transport: STARTTLS, SASL, binding, presence
- `sasl.py`         PLAIN, SCRAM and ANONYMOUS, checked against `users.py` (SCRAM credentials only)
- `component.py`    XEP-0114: another process (focus, bridge, MUC) serving a whole domain through us
- `limits.py`       connection caps and failure counters per peer
- `router.py`       who gets each stanza: a session, a plugin's domain or a component (the hot path)
- `plugin.py`       the plugin API; `plugins/` (disco, ping, version, roster) and `muc/` use it
- `server.py`       all of the above put together; `config.py` is its part of the config file
"""

__version__ = "0.1.0"
