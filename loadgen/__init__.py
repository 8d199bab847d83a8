"""Load generation for tests and benchmarks, outside the product package (never installed).

- `synthetic.py` hundreds of synthetic participants in one process: a raw XMPP link, the focus
  handshake, ICE + DTLS-SRTP with the bridge through the bridge's own transport (roles swapped),
  silent audio and paced video
"""
