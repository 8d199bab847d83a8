"""A Python conference participant (sign-in, MUC, Jingle with our focus, aiortc media).

    from jitsi_py.participant import Participant, ToneTrack, TestPatternTrack

    p = Participant("127.0.0.1", 5222, "myroom", cafile="data/tls/localhost.crt",
                    audio=ToneTrack(), video=TestPatternTrack())
    await p.join()
    await p.wait_frames("othernick", "video")
    await p.leave()

Modules, in the order data flows through them:
    client      the front: `Participant`, put together from the parts below; join() and leave()
    core        errors, events, waiting on the shared state, owned tasks
    signalling  XMPP sign-in (guest, user/password or token), the conference IQ to the focus
                (a guest waits there for the host), reconnecting
    token_sasl  SASL OAUTHBEARER for slixmpp: a JWT sign-in over plain XMPP
    room        the MUC: joining with a nick, occupants, chat, the focus occupant's real JID
    focus       Jingle from the focus only: session-initiate/-terminate, source-add/-remove
    offer       pure: a session-initiate as an SDP offer, an SDP answer as a session-accept
    session     the aiortc PeerConnection of one media session
    channel     the bridge channel (data channel, else colibri-ws): slot maps, speaker, messages
    slots       who fills which receive slot; draining, counting and relaying received frames
    recording   every receive slot into one file
    media       tracks: our sources (tone, test pattern, files) and the slot relays
"""
from .client import Event, Participant, ParticipantError
from .media import FileMedia, SlotTrack, SourceFeed, TestPatternTrack, ToneTrack, open_media

__all__ = ["Participant", "ParticipantError", "Event", "ToneTrack", "TestPatternTrack", "SlotTrack", "SourceFeed",
           "FileMedia", "open_media"]
