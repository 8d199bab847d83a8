"""The conference protocols shared by focus, bridge and participants: typed models, Jingle,
COLIBRI2 and the focus `conference` IQ, parsed once at the edge."""
