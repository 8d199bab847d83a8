"""`python -m jitsi_py.participant ROOM ...`: the same as `jitsi-py join ROOM ...`."""
import sys

from ..cli import main

sys.exit(main(["join", *sys.argv[1:]]))
