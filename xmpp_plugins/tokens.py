"""JWT sign-in (`[auth] mode = "token"`): an application that knows its users signs a token,
the meeting URL carries it, and its claims decide room, name and moderator rights.

Verification is PyJWT's, not ours. The algorithm comes from the config and only from there: a
token's `alg` header is never believed (Jitsi's CVE-2021-39215 was an HS256 token verified with
an RS256 public key as the HMAC secret). Every refusal says why in words a person can act on,
and never repeats the token.
"""
from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

log = logging.getLogger(__name__)

MAX_TOKEN = 8192  # bytes; a JWT of a few claims is well under 1 kB
# keys from a key server (jwt_key_url): how long one is kept, how long a miss is remembered (so a
# flood of tokens with made-up kids costs one look-up each a minute, not one per sign-in), the
# largest key file read, the longest wait, and how many look-ups a minute at most
KEY_TTL = 3600.0
MISS_TTL = 60.0
MAX_KEY_FILE = 16 * 1024
KEY_FETCH_TIMEOUT = 5.0
KEY_FETCHES_PER_MINUTE = 30
KID_RE = re.compile(r"^[A-Za-z0-9._:/@+=-]{1,256}$")


def key_url_problem(url: str) -> str:
    """Why `url` cannot be a key server ("" if it can): https, or http to a loopback address."""
    m = re.match(r"^(https?)://([^/:]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/.*)?$", url)
    if m is None:
        return f"{url!r} is not an http(s) URL"
    if m.group(1) == "http":
        host = m.group(2).strip("[]")
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            return f"{url!r} must be https (http only to a loopback address): keys must not be swapped on the way"
    return ""


class KeyNeeded(Exception):
    """The token's key is not known yet: await `fetch()`, then verify again."""

    def __init__(self, verifier: "TokenVerifier", kid: str) -> None:
        super().__init__(kid)
        self.verifier, self.kid = verifier, kid

    async def fetch(self) -> None:
        await self.verifier.fetch_key(self.kid)


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
    return load_public_key_bytes(data, algorithm, repr(str(path)))


def load_public_key_bytes(data: bytes, algorithm: str, what: str) -> Any:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise TokenError(f"{what} is not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if algorithm == "RS256" and not isinstance(key, rsa.RSAPublicKey):
        raise TokenError(f"{what} is not an RSA public key (needed for RS256)")
    if algorithm == "ES256" and not (isinstance(key, ec.EllipticCurvePublicKey)
                                     and isinstance(key.curve, ec.SECP256R1)):
        raise TokenError(f"{what} is not a P-256 elliptic curve public key (needed for ES256)")
    return key


async def _get(url: str) -> bytes:
    """A key file from the key server, bounded in size and time; TokenError says what failed."""
    import aiohttp
    try:
        timeout = aiohttp.ClientTimeout(total=KEY_FETCH_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.get(url, allow_redirects=False) as r:
                if r.status != 200:
                    raise TokenError(f"the key server has no key for this token (HTTP {r.status})")
                data = await r.content.read(MAX_KEY_FILE + 1)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise TokenError(f"the key server cannot be reached ({type(exc).__name__})") from None
    if len(data) > MAX_KEY_FILE:
        raise TokenError(f"the key server's answer is larger than {MAX_KEY_FILE} bytes")
    return data


def _when(ts: Any) -> str:
    try:
        return datetime.fromtimestamp(float(ts), timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError, OSError):
        return "an unreadable time"


class TokenVerifier:
    def __init__(self, algorithm: str, key: Any, audience: str = "", issuer: str = "", leeway: float = 0.0,
                 key_url: str = "") -> None:
        self.algorithm = algorithm
        self.key = key
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        # a key server instead of one key: keys by kid, fetched on first use (see fetch_key)
        self.key_url = key_url.rstrip("/")
        self._keys: dict[str, tuple[Any, float]] = {}  # kid -> (key, kept until)
        self._misses: dict[str, tuple[str, float]] = {}  # kid -> (why, remembered until)
        self._fetching: dict[str, asyncio.Future] = {}
        self._fetch_times: list[float] = []

    def _key_for(self, header: dict[str, Any]) -> Any:
        if not self.key_url:
            return self.key
        kid = header.get("kid")
        if not isinstance(kid, str) or not KID_RE.match(kid):
            raise TokenError("the token names no usable key (header 'kid')")
        now = time.monotonic()
        known = self._keys.get(kid)
        if known is not None and known[1] > now:
            return known[0]
        miss = self._misses.get(kid)
        if miss is not None and miss[1] > now:
            raise TokenError(miss[0])
        raise KeyNeeded(self, kid)

    async def fetch_key(self, kid: str) -> None:
        """Fetch the key of `kid` from the key server into the cache; a failure is remembered
        as the reason the token is refused. One look-up per kid at a time, a few a minute."""
        pending = self._fetching.get(kid)
        if pending is not None:
            await asyncio.shield(pending)
            return
        fut = self._fetching[kid] = asyncio.get_running_loop().create_future()
        try:
            now = time.monotonic()
            self._fetch_times = [t for t in self._fetch_times if t > now - 60.0]
            if len(self._fetch_times) >= KEY_FETCHES_PER_MINUTE:
                self._misses[kid] = ("too many key look-ups; try again in a minute", now + 5.0)
                return
            self._fetch_times.append(now)
            url = f"{self.key_url}/{hashlib.sha256(kid.encode()).hexdigest()}.pem"
            try:
                key = load_public_key_bytes(await _get(url), self.algorithm, f"the key of {kid!r}")
            except TokenError as exc:
                log.info("key %r from %s refused: %s", kid, self.key_url, exc)
                self._misses[kid] = (str(exc), time.monotonic() + MISS_TTL)
                return
            self._keys[kid] = (key, time.monotonic() + KEY_TTL)
            self._misses.pop(kid, None)
        finally:
            del self._fetching[kid]
            fut.set_result(None)

    @classmethod
    def from_config(cls, auth: Any, base: Path) -> "TokenVerifier":
        if auth.jwt_algorithm == "HS256":
            key: Any = auth.jwt_secret
        elif auth.jwt_key_url:
            key = None  # per kid, from the key server
        else:
            key = load_public_key(base / Path(auth.jwt_public_key).expanduser(), auth.jwt_algorithm)
        return cls(auth.jwt_algorithm, key, auth.jwt_audience, auth.jwt_issuer, key_url=auth.jwt_key_url)

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
        key = self._key_for(header)
        try:
            claims = jwt.decode(
                token, key, algorithms=[self.algorithm], leeway=self.leeway,
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
