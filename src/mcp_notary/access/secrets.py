"""API token secrets: how they look, how they are made, how they are stored (hashed only).

A token is `mcpn_<id>_<secret>`: the id (12 hex digits) is public and names the token in lists
and audit events; the secret (256 random bits) is shown once and stored only as an Argon2id
hash (argon2-cffi, RFC 9106 low-memory profile). Verifying costs tens of milliseconds on
purpose, so callers cache successful verifications by a digest of the token, never the token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "TOKEN_PREFIX",
    "IssuedToken",
    "hash_secret",
    "new_token",
    "parse_token",
    "token_digest",
    "verify_secret",
]

TOKEN_PREFIX = "mcpn_"
_TOKEN_RE = re.compile(r"^mcpn_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class IssuedToken:
    """A freshly made token. `repr` hides the secret: it must reach the person, not a log."""

    token_id: str
    value: str

    def __repr__(self) -> str:
        return f"IssuedToken(token_id={self.token_id!r}, value='mcpn_…')"

    __str__ = __repr__


def new_token() -> IssuedToken:
    token_id = secrets.token_hex(6)
    return IssuedToken(token_id, f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}")


def parse_token(value: str) -> tuple[str, str] | None:
    """`(token_id, secret)` of a well-formed token, else None."""
    match = _TOKEN_RE.match(value.strip())
    return (match.group(1), match.group(2)) if match else None


def hash_secret(value: str) -> str:
    """The Argon2id hash (PHC string) of a whole token value."""
    return _hasher.hash(value)


def verify_secret(stored_hash: str, value: str) -> bool:
    try:
        return _hasher.verify(stored_hash, value)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def token_digest(value: str) -> str:
    """A cache key for a verified token: never stored, never logged."""
    return hashlib.sha256(value.encode()).hexdigest()
