"""Keyed correlation tokens and the redaction key file.

A redacted value becomes `[REDACTED:<kind>:<token>]`, token = the first 12 hex digits of
HMAC-SHA256(key, value). The same secret under the same key gives the same token, so an
investigator can join "the same card in two calls" without seeing it; without the key a token
cannot be checked against guesses (an unkeyed hash of an SSN or PAN can, in seconds). The key
therefore lives outside the audit store, in a 0600 file, and never prints itself.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp_notary.errors import ConfigError

KEY_FILE_ENV = "MCP_NOTARY_REDACTION_KEY_FILE"
KEY_BYTES = 32
TOKEN_HEX = 12  # 48 bits: joins stay unambiguous for millions of distinct values
DIGEST_HEX = 32  # 128 bits, for payload digests an investigator may check a copy against

# Domain separation: a token, a digest and a key id of the same input never coincide.
_TOKEN_TAG = b"mcp-notary/token/v1\x00"
_DIGEST_TAG = b"mcp-notary/digest/v1\x00"
_KEY_ID_TAG = b"mcp-notary/key-id/v1\x00"


class RedactionKey:
    """The HMAC key. `repr`/`str` show only the key id, so it cannot leak through a log line."""

    __slots__ = ("_key", "_token_base", "key_id")

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigError("redaction key is too short (need at least 16 bytes)")
        self._key = bytes(key)
        # HMAC state with the tag already absorbed; copying it is cheaper than a fresh HMAC.
        self._token_base = hmac.new(self._key, _TOKEN_TAG, "sha256")
        self.key_id: str = hashlib.sha256(_KEY_ID_TAG + self._key).hexdigest()[:16]
        """A short hash of the key (never the key): names the key in rotation events."""

    @classmethod
    def generate(cls) -> RedactionKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    def token(self, value: str | bytes) -> str:
        """12 hex digits identifying `value` under this key."""
        data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        mac = self._token_base.copy()
        mac.update(data)
        return mac.hexdigest()[:TOKEN_HEX]

    def digest(self, data: bytes) -> str:
        """32 hex digits: a keyed digest of a payload that is not stored (blobs, long text)."""
        return hmac.digest(self._key, _DIGEST_TAG + data, "sha256").hex()[:DIGEST_HEX]

    def __repr__(self) -> str:
        return f"RedactionKey(key_id={self.key_id!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RedactionKey) and hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __reduce__(self) -> Any:
        raise TypeError("RedactionKey cannot be pickled")  # pickles end up in files and logs

    def _file_bytes(self) -> bytes:
        return self._key.hex().encode("ascii") + b"\n"


MARKER_OPEN = "[REDACTED:"
"""How every redaction marker begins."""


def marker(kind: str, token: str, shown: str | None = None) -> str:
    """The text that replaces a redacted value."""
    return f"{MARKER_OPEN}{kind}:{shown}:{token}]" if shown else f"{MARKER_OPEN}{kind}:{token}]"


def default_key_path() -> Path:
    """`$MCP_NOTARY_REDACTION_KEY_FILE`, else `redaction.key` in the per-user data directory."""
    override = os.environ.get(KEY_FILE_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("mcp-notary")) / "redaction.key"


def _check_private(path: Path) -> None:
    if os.name == "nt":
        return  # POSIX mode bits mean nothing there; rely on the profile directory's ACL
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(
            f"redaction key file {path} is accessible to other users (mode {mode:o}); "
            f"run `chmod 600 {path}`"
        )


def _read_key(path: Path) -> RedactionKey:
    _check_private(path)
    try:
        text = path.read_text("ascii").strip()
        return RedactionKey(bytes.fromhex(text))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"redaction key file {path} is not a hex key written by mcp-notary"
        ) from exc


def _write_new(path: Path, key: RedactionKey) -> Path:
    """Write `key` to a fresh 0600 file next to `path` (O_EXCL: never reuse a file someone else
    made) and return that file's path, fsync'd."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key._file_bytes())
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def load_or_create_key(path: str | Path | None = None) -> RedactionKey:
    """The key at `path` (default: `default_key_path()`), created with mode 0600 if missing.

    Creation publishes a complete file atomically (hard link of a fsync'd temp file), so two
    processes starting together agree on one key and never read a half-written one."""
    target = Path(path).expanduser() if path is not None else default_key_path()
    if target.exists():
        return _read_key(target)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = RedactionKey.generate()
    tmp = _write_new(target, key)
    try:
        os.link(tmp, target)
    except FileExistsError:
        return _read_key(target)  # another process won the race; use its key
    except OSError:
        # No hard links on this filesystem: exclusive create of the final name instead.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key._file_bytes())
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        tmp.unlink(missing_ok=True)
    return key


@dataclass(frozen=True)
class KeyRotation:
    """The fact of a rotation, to be recorded as a `key_rotation` event. Holds no key."""

    path: str
    old_key_id: str | None
    new_key_id: str
    rotated_at: str
    retired_path: str | None = None

    def details(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "key": "redaction",
            "path": self.path,
            "old_key_id": self.old_key_id,
            "new_key_id": self.new_key_id,
            "rotated_at": self.rotated_at,
        }
        if self.retired_path:
            body["retired_path"] = self.retired_path
        return body


def rotate_key(
    path: str | Path | None = None, *, keep_old: bool = False
) -> tuple[RedactionKey, KeyRotation]:
    """Replace the key at `path` with a new one (atomic rename of a fsync'd 0600 file).

    Tokens made after rotation no longer join with older ones. With `keep_old`, the old key is
    kept beside it as `<name>.<old_key_id>` so old tokens can still be matched; without, it is
    gone (which is the point when the key may have leaked)."""
    target = Path(path).expanduser() if path is not None else default_key_path()
    old = _read_key(target) if target.exists() else None
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    new = RedactionKey.generate()
    retired: Path | None = None
    if old is not None and keep_old:
        retired = target.with_name(f"{target.name}.{old.key_id}")
        os.link(target, retired)
    tmp = _write_new(target, new)
    os.replace(tmp, target)
    stamp = datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fact = KeyRotation(
        path=str(target),
        old_key_id=old.key_id if old else None,
        new_key_id=new.key_id,
        rotated_at=stamp,
        retired_path=str(retired) if retired else None,
    )
    return new, fact
