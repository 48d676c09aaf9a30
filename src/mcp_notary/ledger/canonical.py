"""Canonical bytes and the hash chain: pure functions of their inputs."""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

GENESIS_HASH = bytes(32)
"""`prev_hash` of the first event of every stream."""


def canonical_bytes(body: dict[str, Any]) -> bytes:
    """RFC 8785 (JCS) bytes of an event body: what is hashed is exactly what is stored."""
    return rfc8785.dumps(body)


def chain_hash(prev_hash: bytes, body: bytes) -> bytes:
    """`SHA-256(prev_hash || canonical_bytes)`: links each event to everything before it."""
    return hashlib.sha256(prev_hash + body).digest()
