"""The conference focus (Jicofo's job): puts participants and bridges together, never touches media.

- `focus.py`           its two XMPP connections: the client `focus@auth.<domain>` in every room
                       and the brewery, and the component `focus.<domain>` answering the
                       `conference` IQ
- `conference.py`      one conference: participants from MUC presence, their Jingle sessions,
                       the bridge endpoints behind them (COLIBRI2)
- `bridge_selector.py` which bridge a new conference gets, from the bridges' brewery presence
- `config.py`          the [focus] section; `__main__.py` runs the focus alone
"""
