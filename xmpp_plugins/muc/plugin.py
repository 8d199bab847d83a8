"""The MUC as a plugin of our own server (the default; `external.py` is the other host)."""
from __future__ import annotations

from ..config import guests_wait_for_host
from ..plugin import Plugin
from ..tokens import TokenClaims
from xmpp_wire.stanza import JID
from .service import MucService


def muc_settings(cfg) -> dict:
    """MucService keyword arguments from the [muc] section, shared by both hosts."""
    domain = cfg.server.domain.lower()
    muc = cfg.muc
    return dict(
        domain=(muc.domain or f"conference.{domain}").lower(),
        admins=[a.lower() for a in muc.admins] or [f"focus@auth.{domain}"],
        create_rooms=muc.create_rooms, history_size=muc.history_size,
        max_occupants=muc.max_occupants,
        lobby_domain=f"lobby.{domain}" if muc.lobby else None,
        reserved_nicks=muc.reserved_nicks,
        focus_service=f"focus.{domain}",  # the focus component (jicofo_py) always lives here
        guests_wait_for_host=guests_wait_for_host(cfg),
    )


class MucPlugin(Plugin):
    name = "muc"

    async def start(self) -> None:
        server = self.server
        token_of = self._token_of if server.tokens is not None else None
        self.service = MucService(send=server.send, is_guest=self._is_guest, token_of=token_of,
                                  **muc_settings(server.cfg))
        server.register_domain(self.service.domain, self.service)
        if self.service.lobby is not None:
            server.register_domain(self.service.lobby.domain, self.service.lobby)
            # lib-jitsi-meet looks for this identity on the domain to offer the lobby
            server.disco_identities.append({"category": "component", "type": "lobbyrooms",
                                            "name": self.service.lobby.domain})
        # The brewery: where bridges announce themselves to the focus (jvbbrewery@internal.auth.<domain>)
        # Only internal accounts get in (only_domains), so any of them may open the room.
        self.internal = MucService(f"internal.{server.auth_domain}", server.send, admins=[],
                                   create_rooms="anyone", history_size=0, name="Internal rooms",
                                   only_domains={server.auth_domain}, open_rooms=True)
        server.register_domain(self.internal.domain, self.internal)

    async def stop(self) -> None:
        for domain in self.service.domains() + [self.internal.domain]:
            self.server.unregister_domain(domain)

    def _token_of(self, jid: JID) -> TokenClaims | None:
        session = self.server.router.session(jid)
        return session.token if session is not None else None

    def _is_guest(self, jid: JID) -> bool:
        session = self.server.router.session(jid)
        if session is not None and session.auth is not None:
            return bool(session.auth[2])
        return jid.domain == self.server.guest_domain and jid.domain != self.server.domain
