"""XML namespaces used across the stack: one place for each protocol name."""

STREAMS = "http://etherx.jabber.org/streams"
CLIENT = "jabber:client"
SERVER = "jabber:server"
COMPONENT = "jabber:component:accept"
STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas"
TLS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION = "urn:ietf:params:xml:ns:xmpp-session"
FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
BOSH = "http://jabber.org/protocol/httpbind"
XBOSH = "urn:xmpp:xbosh"
XMPP_ERRORS = "urn:xmpp:errors"

DISCO_INFO = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
CAPS = "http://jabber.org/protocol/caps"  # XEP-0115 in presence
# a client feature (disco#info): it takes remote sources from the bridge's source maps
JITSI_SSRC_REWRITING = "http://jitsi.org/ssrc-rewriting-1"
PING = "urn:xmpp:ping"
VERSION = "jabber:iq:version"
ROSTER = "jabber:iq:roster"
DELAY = "urn:xmpp:delay"
STANZA_ID = "urn:xmpp:sid:0"
DATA_FORMS = "jabber:x:data"
EXTDISCO = "urn:xmpp:extdisco:2"  # XEP-0215 external service discovery (STUN/TURN)

MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"
MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
MUC_OWNER = "http://jabber.org/protocol/muc#owner"
MUC_ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"
MUC_ROOMINFO = "http://jabber.org/protocol/muc#roominfo"
NICK = "http://jabber.org/protocol/nick"

# Jingle (XEP-0166/0167/0176/0320/0338/0339/0293/0294/0343)
JINGLE = "urn:xmpp:jingle:1"
JINGLE_ERRORS = "urn:xmpp:jingle:errors:1"
JINGLE_GROUPING = "urn:xmpp:jingle:apps:grouping:0"
JINGLE_RTP = "urn:xmpp:jingle:apps:rtp:1"
JINGLE_RTCP_FB = "urn:xmpp:jingle:apps:rtp:rtcp-fb:0"
JINGLE_HDREXT = "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0"
JINGLE_SSMA = "urn:xmpp:jingle:apps:rtp:ssma:0"
JINGLE_DTLS = "urn:xmpp:jingle:apps:dtls:0"
JINGLE_ICE_UDP = "urn:xmpp:jingle:transports:ice-udp:1"
JINGLE_SCTP = "urn:xmpp:jingle:transports:dtls-sctp:1"

# Jitsi's own
JITMEET = "http://jitsi.org/jitmeet"
JITSI_FOCUS = "http://jitsi.org/protocol/focus"
JITSI_START_MUTED = "http://jitsi.org/jitmeet/start-muted"
JITSI_AUDIO_MUTED = "http://jitsi.org/jitmeet/audio"
JITSI_VIDEO_MUTED = "http://jitsi.org/jitmeet/video"
JITSI_HEALTHCHECK = "http://jitsi.org/protocol/healthcheck"
COLIBRI = "http://jitsi.org/protocol/colibri"
COLIBRI2 = "jitsi:colibri2"
# the bridge channel's SCTP data channel protocol, as Jitsi's clients name it
COLIBRI_CHANNEL = "http://jitsi.org/protocols/colibri"

# RTP header extensions (URIs, not XML namespaces, but named in the same signalling)
RTP_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

XML = "http://www.w3.org/XML/1998/namespace"


def q(ns: str, name: str) -> str:
    """Clark notation, the form lxml uses for qualified names."""
    return "{%s}%s" % (ns, name)
