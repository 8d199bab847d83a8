"""The common base every other package may use, and which uses none of them.

- `ns.py`      XML namespaces of every protocol we speak, in one place
- `errors.py`  XMPP stream and stanza errors (what bad input turns into)
- `rate.py`    the token bucket behind every rate limit
- `config.py`  reading an admin's TOML into typed sections, with file:line:key errors
- `process.py` what every process entry point shares: signals, HTTP sites, start-up errors
"""
