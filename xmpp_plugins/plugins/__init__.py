"""Server plugins shipped with the embedded XMPP server (the API is `xmpp_plugins/plugin.py`).

- `disco.py`   XEP-0030 service discovery: the server's features and every domain it serves
- `ping.py`    XEP-0199 ping, which Jitsi's client sends every 10 s
- `version.py` XEP-0092 software version
- `roster.py`  RFC 6121 roster: always empty (guests have no contacts), sets refused
- `extdisco.py` XEP-0215 external services: STUN/TURN with time-limited coturn credentials
  (only with `[turn] host` set)
"""
