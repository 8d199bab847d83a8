"""Server side of SASL (RFC 6120 section 6): PLAIN, SCRAM-SHA-1/-256 and ANONYMOUS.

SCRAM is delegated to `scramp`, a maintained implementation also used by pg8000, rather than
written again here. For unknown users SCRAM continues with fake credentials derived from a
per-process secret, so the failure comes at the same step as for a wrong password and the
exchange does not reveal which accounts exist.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from typing import Callable, Protocol

import scramp

from .tokens import TokenClaims, TokenError, TokenVerifier

log = logging.getLogger(__name__)

_FAKE_SECRET = os.urandom(32)


class SaslFailure(Exception):
    def __init__(self, condition: str = "not-authorized", text: str | None = None) -> None:
        super().__init__(condition)
        self.condition = condition
        self.text = text


@dataclass
class SaslResult:
    username: str  # node part of the JID the session gets
    host: str
    anonymous: bool = False
    token: TokenClaims | None = None  # a token sign-in's verified claims


class CredentialStore(Protocol):
    def check_password(self, username: str, host: str, password: str) -> bool: ...
    def scram_credentials(self, username: str, host: str, mechanism: str) -> tuple[bytes, bytes, bytes, int] | None: ...


class Mechanism:
    """One SASL exchange. `step` returns ('challenge', data) or ('success', data) or raises SaslFailure."""

    name = ""
    result: SaslResult | None = None

    def step(self, data: bytes | None) -> tuple[str, bytes | None]:
        raise NotImplementedError


class Plain(Mechanism):
    name = "PLAIN"

    def __init__(self, store: CredentialStore, host: str) -> None:
        self.store, self.host = store, host

    def step(self, data: bytes | None) -> tuple[str, bytes | None]:
        if data is None:
            return ("challenge", b"")
        parts = data.split(b"\0")
        if len(parts) != 3:
            raise SaslFailure("malformed-request", "Expected authzid NUL authcid NUL password")
        authzid, authcid, password = (p.decode("utf-8", "replace") for p in parts)
        username = authcid.split("@", 1)[0] if "@" in authcid else authcid
        if authzid and authzid not in (username, f"{username}@{self.host}"):
            raise SaslFailure("invalid-authzid")
        try:
            ok = self.store.check_password(username, self.host, password)
        except Exception:  # a malformed username is just a failed login
            ok = False
        if not ok:
            raise SaslFailure("not-authorized")
        self.result = SaslResult(username.casefold(), self.host)
        return ("success", None)


class Scram(Mechanism):
    def __init__(self, name: str, store: CredentialStore, host: str) -> None:
        self.name = name
        self.store, self.host = store, host
        self._mech = scramp.ScramMechanism(name)
        self._username: str | None = None
        self._known = False
        self._server = self._mech.make_server(self._auth_fn)
        self._stage = 0

    def _auth_fn(self, username: str) -> tuple[bytes, bytes, bytes, int]:
        # SCRAM saslname escaping (RFC 5802 5.1)
        name = username.replace("=2C", ",").replace("=3D", "=")
        self._username = name
        creds = None
        try:
            creds = self.store.scram_credentials(name, self.host, self.name)
        except Exception:
            creds = None
        if creds is not None:
            self._known = True
            return creds
        digest = hashlib.sha1 if self.name == "SCRAM-SHA-1" else hashlib.sha256
        salt = hmac.new(_FAKE_SECRET, name.encode(), digest).digest()[:16]
        return (salt, secrets.token_bytes(digest().digest_size), secrets.token_bytes(digest().digest_size), 4096)

    def step(self, data: bytes | None) -> tuple[str, bytes | None]:
        try:
            if self._stage == 0:
                if data is None:
                    return ("challenge", b"")
                self._server.set_client_first(data.decode("utf-8"))
                self._stage = 1
                return ("challenge", self._server.get_server_first().encode())
            if self._stage == 1:
                self._stage = 2
                self._server.set_client_final((data or b"").decode("utf-8"))
                final = self._server.get_server_final().encode()
                if not self._known:
                    raise SaslFailure("not-authorized")
                assert self._username is not None
                self.result = SaslResult(self._username.casefold(), self.host)
                return ("success", final)
        except scramp.ScramException as exc:
            log.debug("SCRAM failure: %s", exc)
            raise SaslFailure("not-authorized") from None
        except UnicodeDecodeError:
            raise SaslFailure("incorrect-encoding") from None
        raise SaslFailure("malformed-request", "Unexpected SCRAM step")


class Anonymous(Mechanism):
    name = "ANONYMOUS"

    def __init__(self, guest_host: str) -> None:
        self.host = guest_host

    def step(self, data: bytes | None) -> tuple[str, bytes | None]:
        self.result = SaslResult(secrets.token_hex(8), self.host, anonymous=True)
        return ("success", None)


class OAuthBearer(Mechanism):
    """RFC 7628: the client's first message carries `auth=Bearer <JWT>`; a refused token is
    answered with the JSON error challenge the RFC asks for, then the failure with its reason."""

    name = "OAUTHBEARER"

    def __init__(self, verifier: TokenVerifier, host: str) -> None:
        self.verifier, self.host = verifier, host
        self._refused: str | None = None

    def step(self, data: bytes | None) -> tuple[str, bytes | None]:
        if self._refused is not None:
            raise SaslFailure("not-authorized", self._refused)
        if data is None:
            return ("challenge", b"")
        parts = data.split(b"\x01")
        if not parts[0].startswith((b"n,", b"y,")):
            raise SaslFailure("malformed-request", "Expected a GS2 header (n,,) before the token")
        bearer = next((p[len(b"auth="):] for p in parts[1:] if p.startswith(b"auth=")), b"")
        scheme, _, token = bearer.decode("utf-8", "replace").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise SaslFailure("malformed-request", "Expected auth=Bearer <token>")
        try:
            claims = self.verifier.verify(token)
        except TokenError as exc:
            self._refused = f"Token refused: {exc}"
            log.info("token sign-in refused: %s", exc)
            return ("challenge", b'{"status":"invalid_token"}')
        self.result = SaslResult(secrets.token_hex(8), self.host, token=claims)
        return ("success", None)


class TokenAnonymous(Mechanism):
    """Jitsi's token sign-in: the BOSH/WebSocket URL carried `?token=`, SASL is ANONYMOUS."""

    name = "ANONYMOUS"

    def __init__(self, verifier: TokenVerifier, host: str, url_token: str | None) -> None:
        self.verifier, self.host, self.url_token = verifier, host, url_token

    def step(self, data: bytes | None) -> tuple[str, bytes | None]:
        if not self.url_token:
            raise SaslFailure("not-authorized", "A token is required: open the meeting link with ?jwt=...")
        try:
            claims = self.verifier.verify(self.url_token)
        except TokenError as exc:
            log.info("token sign-in refused: %s", exc)
            raise SaslFailure("not-authorized", f"Token refused: {exc}") from None
        self.result = SaslResult(secrets.token_hex(8), self.host, token=claims)
        return ("success", None)


def token_mechanism(name: str, verifier: TokenVerifier, host: str, url_token: str | None) -> Mechanism | None:
    if name == "OAUTHBEARER":
        return OAuthBearer(verifier, host)
    if name == "ANONYMOUS":
        return TokenAnonymous(verifier, host, url_token)
    return None


def mechanism_names(scram: bool, plain: bool, anonymous: bool) -> list[str]:
    names = []
    if scram:
        names += ["SCRAM-SHA-256", "SCRAM-SHA-1"]
    if plain:
        names.append("PLAIN")
    if anonymous:
        names.append("ANONYMOUS")
    return names


def make_mechanism(name: str, store: CredentialStore | None, host: str, guest_host: str) -> Mechanism | None:
    factories: dict[str, Callable[[], Mechanism]] = {"ANONYMOUS": lambda: Anonymous(guest_host)}
    if store is not None:
        factories["PLAIN"] = lambda: Plain(store, host)
        factories["SCRAM-SHA-1"] = lambda: Scram("SCRAM-SHA-1", store, host)
        factories["SCRAM-SHA-256"] = lambda: Scram("SCRAM-SHA-256", store, host)
    factory = factories.get(name)
    return factory() if factory else None
