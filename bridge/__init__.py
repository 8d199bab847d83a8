"""The selective forwarding unit (the videobridge's job): forwards RTP, never decodes it.

Signalling, from the focus down:

- `xmpp_agent.py` an ordinary client in the brewery room, taking COLIBRI2 from the focus
- `bridge.py`     the conferences and the COLIBRI2 requests that shape them; the periodic work
- `conference.py` one conference: who sends what to whom, decided at change time (`routes`)
- `endpoint.py`   one participant: its transport, what it sends, what it receives
- `relay.py`      a bridge-to-bridge link of a cascaded conference

Media, in the order a packet travels:

- `transport.py`  ICE + DTLS-SRTP of an endpoint or relay: raw RTP/RTCP in and out
- `rtp.py`        the few RTP/RTCP fields read and rewritten per packet; `vp8.py` the VP8
                  descriptor, `twcc.py` the transport-wide sequence numbers and feedback
- `speaker.py`    the dominant speaker, from audio levels; `simulcast.py` the layer each receiver gets
- `slots.py`      each receiver's fixed SSRCs, rewritten so it sees continuous streams
- `bwe.py`        send-side bandwidth estimation per receiver, from its transport-cc feedback

Around them:

- `channel.py`    the bridge channel: JSON with each participant over WebSocket or data channel
- `http_api.py`   the public HTTP face (channel, health) and the admin one (stats, metrics)
- `config.py`     the [bridge] section; `__main__.py` runs one more bridge in its own process
"""
