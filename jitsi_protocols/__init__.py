"""The conference protocols that focus, bridge and participants share, parsed once at the edge.

The XMPP server never imports this package: it routes these payloads without reading them.

- `model.py`    typed models (transports, candidates, payload types, sources, contents)
- `xml.py`      the XML both Jingle and COLIBRI2 use for transports, payload types and sources
- `focus_iq.py` the `conference` IQ a participant sends before joining a room
- `jingle.py`   Jingle actions between the focus and each participant
- `colibri2.py` COLIBRI2 between the focus and bridges (with `<relay>` for cascading)
- `sdp.py`      Jingle contents <-> SDP for WebRTC participants
- `slix.py`     glue for slixmpp clients: TLS set-up, element conversion, error replies
"""
