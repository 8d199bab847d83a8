"""XMPP on the wire, shared by the server and by anything that attaches to one as a component.

- `xmlstream.py`        incremental, restricted XML stream parsing and serialisation
- `stanza.py`           a stanza parsed once into a typed wrapper (JIDs, type, id); errors and results
- `component_client.py` the client end of XEP-0114: our services on someone else's server
"""
