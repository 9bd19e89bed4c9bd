"""Pure credential maths: agent secrets (scrypt, salted) and bearer tokens (random, SHA-256).

Nothing here does I/O. Secrets are 256-bit random values, so the slow hash is defence in depth
for a leaked table rather than the main protection; its parameters are stored with each hash
and can be raised later without invalidating existing secrets.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Literal

from ordinaut.errors import Unauthorized

ADMIN = "admin"
SCOPES: tuple[str, ...] = ("tasks:read", "tasks:write", "runs:read", "events:publish", ADMIN)

ACCESS_PREFIX = "ord_at_"
REFRESH_PREFIX = "ord_rt_"
TokenKind = Literal["access", "refresh"]
_PREFIXES: dict[TokenKind, str] = {"access": ACCESS_PREFIX, "refresh": REFRESH_PREFIX}

MAX_SECRET_LENGTH = 256
MAX_TOKEN_LENGTH = 256

# scrypt "interactive" parameters: ~16 MiB and tens of milliseconds per hash.
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
_DKLEN = 32


class InvalidCredentials(Unauthorized):
    """Agent id or secret wrong; one message for both so neither can be probed."""

    code = "invalid_credentials"


class InvalidToken(Unauthorized):
    """Bearer or refresh token missing, malformed, unknown, expired or revoked."""

    code = "invalid_token"


def new_secret() -> str:
    """A fresh agent secret: 32 random bytes, URL-safe base64 (43 characters).

    Never starting with "-": command lines (``ordinaut login --secret S``, curl, shells) would
    read it as an option. Redrawing the 1 in 64 that do keeps the secret uniformly random
    among the rest.
    """
    while (secret := secrets.token_urlsafe(32)).startswith("-"):
        pass
    return secret


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=_DKLEN
    )


def hash_secret(secret: str) -> str:
    """``scrypt$n$r$p$salt$hash`` with a fresh 16-byte salt; never equal for equal secrets."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(secret, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of ``secret`` against a ``hash_secret`` value; False if malformed."""
    if len(secret) > MAX_SECRET_LENGTH:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(secret, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def _dummy_hash() -> str:
    return hash_secret(new_secret())


def burn_verification(secret: str) -> None:
    """Spend the time of one verification (an unknown agent id must cost what a known one does)."""
    verify_secret(secret[:MAX_SECRET_LENGTH], _dummy_hash())


def new_token(kind: TokenKind) -> tuple[str, bytes]:
    """A bearer token of ``kind`` and the SHA-256 digest under which it is stored."""
    token = _PREFIXES[kind] + secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> bytes:
    """SHA-256 of a token: tokens carry 256 random bits, so a fast hash is enough."""
    return hashlib.sha256(token.encode()).digest()


def token_kind(token: str) -> TokenKind | None:
    """``access`` / ``refresh`` by prefix, or None for anything that is not an Ordinaut token."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    for kind, prefix in _PREFIXES.items():
        if token.startswith(prefix):
            return kind
    return None


def normalize_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Known scopes, deduplicated, in canonical order; raises ValueError naming an unknown one."""
    given = set(scopes)
    unknown = sorted(given - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}")
    return tuple(s for s in SCOPES if s in given)


def scope_string(scopes: Iterable[str]) -> str:
    """OAuth-style space-separated scope list."""
    return " ".join(scopes)
