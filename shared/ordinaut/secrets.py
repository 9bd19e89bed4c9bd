"""Secret values at rest: Fernet (AES-128-CBC + HMAC-SHA256) with a key from configuration.

Pure: encrypt and decrypt only. Storage is ``store/secrets.py``; values never reach logs,
run records, events, errors or metrics (the pipeline masks them in what it records).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ordinaut.errors import Unavailable, ValidationFailed
from ordinaut.lazy import lazy_module

if TYPE_CHECKING:
    from cryptography import fernet
else:
    # loaded by the first secret sealed or opened, not by every process that names this module
    # (the API's cold start: ~10 ms)
    fernet = lazy_module("cryptography.fernet")

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_VALUE_BYTES = 8 * 1024


class SecretBox:
    """Encrypts and decrypts secret values with one configured key."""

    def __init__(self, key: str) -> None:
        if not key:
            raise Unavailable(
                "secrets are not configured: set ORDINAUT_SECRETS_KEY (a Fernet key; "
                "`ordinaut dev` makes one for you)"
            )
        try:
            self._fernet = fernet.Fernet(key.encode())
        except (ValueError, TypeError) as exc:
            raise Unavailable("ORDINAUT_SECRETS_KEY is not a valid Fernet key") from exc

    def seal(self, value: str) -> bytes:
        return self._fernet.encrypt(value.encode())

    def open(self, sealed: bytes) -> str:
        try:
            return self._fernet.decrypt(sealed).decode()
        except fernet.InvalidToken as exc:
            raise Unavailable(
                "a stored secret cannot be decrypted with the configured key"
            ) from exc


def new_key() -> str:
    """A fresh key for ORDINAUT_SECRETS_KEY."""
    return fernet.Fernet.generate_key().decode()


def check_secret(name: str, value: str | None) -> None:
    """422 naming the field when a secret's name or value is outside the documented bounds."""
    problems = []
    if not NAME_RE.match(name):
        problems.append(
            {"field": "name", "message": "letters, digits and _, 1-64, not a digit first"}
        )
    if value is not None and len(value.encode()) > MAX_VALUE_BYTES:
        problems.append({"field": "value", "message": f"at most {MAX_VALUE_BYTES} bytes"})
    if problems:
        raise ValidationFailed(problems[0]["message"], problems)
