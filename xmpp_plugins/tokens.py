"""JWT sign-in (`[auth] mode = "token"`): an application that knows its users signs a token,
the meeting URL carries it, and its claims decide room, name and moderator rights.

Verification is PyJWT's, not ours. The algorithm comes from the config and only from there: a
token's `alg` header is never believed (Jitsi's CVE-2021-39215 was an HS256 token verified with
an RS256 public key as the HMAC secret). Every refusal says why in words a person can act on,
and never repeats the token.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

log = logging.getLogger(__name__)

MAX_TOKEN = 8192  # bytes; a JWT of a few claims is well under 1 kB


class TokenError(Exception):
    """A token (or the key to check it) is refused; the text is for the person holding it."""


@dataclass(frozen=True)
class TokenClaims:
    room: str  # a room name (the node of its JID) or "*"
    moderator: bool = False
    name: str = ""
    avatar: str = ""
    email: str = ""
    user_id: str = ""

    def allows_room(self, room: str) -> bool:
        return self.room == "*" or self.room.lower() == room.lower()


def load_public_key(path: Path, algorithm: str) -> Any:
    """The PEM public key for RS256 or ES256 (P-256) from `path`; TokenError says what is wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TokenError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise TokenError(f"{str(path)!r} is not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if algorithm == "RS256" and not isinstance(key, rsa.RSAPublicKey):
        raise TokenError(f"{str(path)!r} is not an RSA public key (needed for RS256)")
    if algorithm == "ES256" and not (isinstance(key, ec.EllipticCurvePublicKey)
                                     and isinstance(key.curve, ec.SECP256R1)):
        raise TokenError(f"{str(path)!r} is not a P-256 elliptic curve public key (needed for ES256)")
    return key


def _when(ts: Any) -> str:
    try:
        return datetime.fromtimestamp(float(ts), timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError, OSError):
        return "an unreadable time"


class TokenVerifier:
    def __init__(self, algorithm: str, key: Any, audience: str = "", issuer: str = "", leeway: float = 0.0) -> None:
        self.algorithm = algorithm
        self.key = key
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway

    @classmethod
    def from_config(cls, auth: Any, base: Path) -> "TokenVerifier":
        if auth.jwt_algorithm == "HS256":
            key: Any = auth.jwt_secret
        else:
            key = load_public_key(base / Path(auth.jwt_public_key).expanduser(), auth.jwt_algorithm)
        return cls(auth.jwt_algorithm, key, auth.jwt_audience, auth.jwt_issuer)

    def verify(self, token: str) -> TokenClaims:
        token = token.strip()
        if not token:
            raise TokenError("no token given")
        if len(token) > MAX_TOKEN:
            raise TokenError(f"the token is longer than {MAX_TOKEN} bytes")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise TokenError("this is not a JSON Web Token") from None
        alg = str(header.get("alg", ""))
        if alg != self.algorithm:
            raise TokenError(f"the token is signed with {alg or 'no algorithm'!r}; this server accepts only "
                             f"{self.algorithm} tokens")
        try:
            claims = jwt.decode(
                token, self.key, algorithms=[self.algorithm], leeway=self.leeway,
                audience=self.audience or None, issuer=self.issuer or None,
                options={"require": ["exp"], "verify_aud": bool(self.audience)})
        except jwt.InvalidSignatureError:
            raise TokenError("the token's signature is wrong (not signed with this server's key)") from None
        except jwt.ExpiredSignatureError:
            raise TokenError(f"the token expired at {_when(unverified.get('exp'))}") from None
        except jwt.ImmatureSignatureError:
            raise TokenError(f"the token is not valid before {_when(unverified.get('nbf'))}") from None
        except jwt.InvalidAudienceError:
            raise TokenError(f"the token is for audience {unverified.get('aud')!r}, not {self.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise TokenError(f"the token is from issuer {unverified.get('iss')!r}, not {self.issuer!r}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidAlgorithmError:
            raise TokenError(f"this server accepts only {self.algorithm} tokens") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"the token is invalid ({exc})") from None
        return self._claims(claims)

    @staticmethod
    def _claims(claims: dict[str, Any]) -> TokenClaims:
        room = claims.get("room")
        if not isinstance(room, str) or not room:
            raise TokenError("the token names no room (claim 'room': a room name or \"*\")")
        context = claims.get("context") if isinstance(claims.get("context"), dict) else {}
        user = context.get("user") if isinstance(context.get("user"), dict) else {}

        def text(value: Any, limit: int = 256) -> str:
            return value[:limit] if isinstance(value, str) else ""

        moderator = user.get("moderator", claims.get("moderator", False))
        return TokenClaims(room=room, moderator=moderator is True or moderator == "true",
                           name=text(user.get("name")), avatar=text(user.get("avatar"), 1024),
                           email=text(user.get("email")), user_id=text(user.get("id")))
