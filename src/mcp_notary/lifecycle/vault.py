"""Payload keys for crypto-shredding (per data subject, and per day for the payload period).
I/O edge: a key file and the store.

Each data subject gets a random AES-256 key. The store keeps it only wrapped (AES-GCM) under
the vault key, a file outside the store like the signing and redaction keys, so a copy of the
store alone opens nothing. Subject identifiers never reach the store either: a key is named
by an HMAC of the identifier under a second part of the vault key. Erasure deletes the
wrapped key; every payload sealed under it is then ciphertext nobody can open, while the
chain, which covers that ciphertext, still verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mcp_notary.errors import ConfigError
from mcp_notary.ids import utc_timestamp
from mcp_notary.ledger.keys import publish_new
from mcp_notary.ledger.signing import write_new_file
from mcp_notary.ledger.store import Store

__all__ = [
    "SubjectKeyring",
    "VaultKey",
    "default_vault_key_path",
    "load_or_create_vault_key",
    "load_vault_key",
]

VAULT_KEY_ENV = "MCP_NOTARY_VAULT_KEY_FILE"
_KEY_BYTES = 32
CACHE_S = 60.0
"""How long a process reuses a subject key without asking the store: after an erasure, other
processes stop sealing under the destroyed key within this time."""


@dataclass(frozen=True)
class VaultKey:
    wrap_key: bytes
    id_key: bytes

    def key_id(self, subject: str) -> str:
        """The store's name for a subject's key: no identifier, yet the same every time."""
        digest = hmac.new(self.id_key, subject.encode(), hashlib.sha256).hexdigest()
        return f"subj_{digest[:32]}"

    def wrap(self, key_id: str, key: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + AESGCM(self.wrap_key).encrypt(nonce, key, key_id.encode())

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        try:
            return AESGCM(self.wrap_key).decrypt(wrapped[:12], wrapped[12:], key_id.encode())
        except InvalidTag as exc:
            raise ConfigError(
                f"subject key {key_id} does not open with this vault key (wrong vault key file?)"
            ) from exc


def default_vault_key_path() -> Path:
    """`$MCP_NOTARY_VAULT_KEY_FILE`, else `vault.key` in the per-user data directory."""
    override = os.environ.get(VAULT_KEY_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("mcp-notary")) / "vault.key"


def _read(path: Path) -> VaultKey:
    if os.name != "nt" and path.stat().st_mode & 0o077:
        raise ConfigError(f"vault key file {path} is accessible to other users; chmod 600 it")
    try:
        raw = bytes.fromhex(path.read_text("ascii").strip())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"vault key file {path} is not a key written by mcp-notary") from exc
    if len(raw) != 2 * _KEY_BYTES:
        raise ConfigError(f"vault key file {path} is not a key written by mcp-notary")
    return VaultKey(raw[:_KEY_BYTES], raw[_KEY_BYTES:])


def load_vault_key(path: str | Path | None = None) -> VaultKey:
    """The existing vault key (a reader never creates one). Raises ConfigError if missing."""
    target = Path(path).expanduser() if path is not None else default_vault_key_path()
    if not target.exists():
        raise ConfigError(f"no vault key at {target}: sealed payloads cannot be opened here")
    return _read(target)


def load_or_create_vault_key(path: str | Path | None = None) -> VaultKey:
    """The vault key at `path`, created (0600, fsync'd, never overwriting) if missing."""
    target = Path(path).expanduser() if path is not None else default_vault_key_path()
    if target.exists():
        return _read(target)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = secrets.token_bytes(2 * _KEY_BYTES).hex().encode() + b"\n"
    # Complete or not at all: two processes starting together agree on one key.
    publish_new(target, lambda tmp: write_new_file(tmp, data, 0o600, "vault key file"))
    return _read(target)


class SubjectKeyring:
    """Subject keys of one store, created on first use and cached (a proxy seals many calls
    of one subject)."""

    def __init__(self, store: Store, vault: VaultKey) -> None:
        self.store = store
        self.vault = vault
        self._cache: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    def key_id(self, subject: str) -> str:
        return self.vault.key_id(subject)

    def key_for(self, subject: str) -> tuple[str, bytes]:
        """The subject's key id and key, created and stored if it has none."""
        key_id = self.vault.key_id(subject)
        return key_id, self.key(key_id)

    def key(self, key_id: str) -> bytes:
        """The key named `key_id` (a subject's, or a day's payload key), created if missing."""
        with self._lock:
            cached = self._cache.get(key_id)
            if cached is not None and time.monotonic() - cached[1] < CACHE_S:
                return cached[0]
            fresh = self.vault.wrap(key_id, AESGCM.generate_key(256))
            stored = self.store.put_subject_key(key_id, fresh, utc_timestamp())
            key = self.vault.unwrap(key_id, stored)
            self._cache[key_id] = (key, time.monotonic())
            return key

    def open(self, key_id: str) -> bytes | None:
        """The key named `key_id`, or None once it was erased."""
        wrapped = self.store.subject_key(key_id)
        return None if wrapped is None else self.vault.unwrap(key_id, wrapped)

    def destroy(self, key_id: str) -> bool:
        with self._lock:
            self._cache.pop(key_id, None)
        return self.store.delete_subject_key(key_id)
