"""The MUC as an XEP-0114 component of another server (Prosody, ejabberd, or ours elsewhere).

`jitsi-py muc --config FILE` runs this: the same `MucService` as the embedded plugin, attached
over the component port of the server named in [muc] (`server_host`, `server_port`, `secret`).
The room domain and, with the lobby on, `lobby.<domain>` are two component connections sharing
the secret, so the host server needs both declared as components.
"""
from __future__ import annotations

import asyncio
import logging

from ..config import XmppConfig
from ..config import guest_domain as guest_domain_of

from xmpp_wire.component_client import ComponentGroup
from xmpp_wire.stanza import JID
from .plugin import muc_settings
from .service import MucService

log = logging.getLogger(__name__)


class MucComponent:
    def __init__(self, cfg: XmppConfig) -> None:
        self.cfg = cfg
        self.group = ComponentGroup()
        # mode "secure" as far as the host server allows: the guest domain tells guests apart
        # (token claims stay with the host server's sessions; its own modules check them)
        guest_domain = guest_domain_of(cfg)
        guest_domain = guest_domain if guest_domain != cfg.server.domain.lower() else ""
        self.service = MucService(send=self.group.send, is_guest=lambda jid: self._is_guest(jid, guest_domain),
                                  **muc_settings(cfg))

    @staticmethod
    def _is_guest(jid: JID, guest_domain: str) -> bool:
        # Another server's sessions are invisible from here: only a separate guest domain tells.
        return bool(guest_domain) and jid.domain == guest_domain

    async def start(self) -> None:
        muc = self.cfg.muc
        for domain in self.service.domains():
            await self.group.attach(muc.server_host, muc.server_port, domain, muc.secret,
                                    self.service.handler_for(domain))  # type: ignore[arg-type]
        log.info("MUC attached to %s:%d as %s", muc.server_host, muc.server_port, ", ".join(self.service.domains()))

    async def wait_closed(self) -> None:
        await self.group.wait_closed()

    def stop(self) -> None:
        self.group.close()


async def run_forever(cfg: XmppConfig, stop: asyncio.Event) -> None:
    """Attach, and re-attach after a lost connection (rooms start empty again: clients rejoin)."""
    delay = 1.0
    while not stop.is_set():
        comp = MucComponent(cfg)
        try:
            await comp.start()
            delay = 1.0
            waiter = asyncio.ensure_future(comp.wait_closed())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
        except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
            log.warning("cannot attach the MUC to %s:%d: %s; retrying in %.0f s",
                        cfg.muc.server_host, cfg.muc.server_port, exc, delay)
        finally:
            comp.stop()
        if not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, 30.0)
