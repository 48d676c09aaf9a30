"""Where the checkpoint signing key lives, and the trusted-keys files verifiers read.

The signing key is an Ed25519 private key in a file *outside the store* (mode 0600, refused
if group or others can read it), by default ``checkpoint.key`` in the per-user data directory
(``$MCP_NOTARY_SIGNING_KEY_FILE`` overrides). It is created on first use, with its public
vkey written beside it (``checkpoint.vkey``): hand that file to auditors.

A trusted-keys file holds one vkey per line, optionally with a validity window::

    # comment
    mcp-notary/host+1a2b3c4d+AV1p... not-before=2026-01-01T00:00:00Z not-after=2027-01-01T00:00:00Z

A plain ``.vkey`` file is a trusted-keys file with one line and no window. Windows are what
key rotation leaves behind: the retired key stays trusted for checkpoints of events up to its
``not-after``, so an attacker who steals it later cannot use it for anything newer.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import platformdirs

from mcp_notary.errors import ConfigError
from mcp_notary.ledger.private import make_private_dir
from mcp_notary.ledger.signing import (
    KeyFileError,
    NoteSigner,
    NoteVerifier,
    generate_key_file,
    load_signer,
    write_vkey,
)

__all__ = [
    "SIGNING_KEY_ENV",
    "Rotation",
    "TrustedKey",
    "default_key_name",
    "default_signing_key_path",
    "load_or_create_signing_key",
    "load_trusted_keys",
    "parse_trusted_keys",
    "rotate_signing_key",
    "trusted_keys_path_for",
    "vkey_path_for",
]

SIGNING_KEY_ENV = "MCP_NOTARY_SIGNING_KEY_FILE"


def default_signing_key_path() -> Path:
    """``$MCP_NOTARY_SIGNING_KEY_FILE``, else ``checkpoint.key`` in the user data directory."""
    env = os.environ.get(SIGNING_KEY_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("mcp-notary")) / "checkpoint.key"


def default_key_name() -> str:
    """``mcp-notary/<host>``: the signed-note key name written into signature lines."""
    host = "".join(c for c in socket.gethostname() if not c.isspace() and c != "+") or "localhost"
    return f"mcp-notary/{host}"


def vkey_path_for(key_path: Path) -> Path:
    """The public vkey file kept beside a private key file (``x.key`` -> ``x.vkey``)."""
    return key_path.with_suffix(".vkey") if key_path.suffix == ".key" else Path(f"{key_path}.vkey")


def publish_new(path: Path, write: Callable[[Path], object]) -> None:
    """Create ``path`` complete or not at all: write a private temporary file beside it, then
    hard-link it into place (which fails if ``path`` exists), so a concurrent reader never sees
    a half-written key and a concurrent creator never overwrites one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    write(tmp)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # someone else's complete file won
    finally:
        tmp.unlink(missing_ok=True)


def load_or_create_signing_key(path: Path | None = None, name: str | None = None) -> NoteSigner:
    """Load the signing key at ``path`` (default: :func:`default_signing_key_path`), creating
    it (0600, never overwriting) and its vkey beside it on first use.

    Safe when several processes start at once: exactly one key is created, and every process
    loads that one.
    """
    path = path if path is not None else default_signing_key_path()
    if not path.exists():
        make_private_dir(path.parent)
        key_name = name or default_key_name()
        publish_new(path, lambda tmp: generate_key_file(tmp, key_name))
    signer = load_signer(path)
    vkey = vkey_path_for(path)
    if not vkey.exists():
        publish_new(vkey, lambda tmp: write_vkey(tmp, signer.verifier))
    return signer


@dataclass(frozen=True)
class TrustedKey:
    """A verifier key and the window of event times it may sign for (RFC 3339 UTC strings,
    inclusive, None meaning unbounded)."""

    verifier: NoteVerifier
    not_before: str | None = None
    not_after: str | None = None

    def valid_at(self, timestamp: str) -> bool:
        """Whether an event time (stored RFC 3339 form) lies inside the window."""
        if self.not_before is not None and timestamp < self.not_before:
            return False
        return not (self.not_after is not None and timestamp > self.not_after)

    def window(self) -> str:
        return f"{self.not_before or '-inf'} .. {self.not_after or '+inf'}"


def _normalise_time(value: str, where: str) -> str:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"{where}: {value!r} is not an RFC 3339 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_trusted_keys(text: str, source: str = "<trusted keys>") -> list[TrustedKey]:
    """Parse a trusted-keys file (see the module docstring). Raises ConfigError."""
    keys: list[TrustedKey] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        vkey, *options = line.split()
        where = f"{source} line {number}"
        try:
            verifier = NoteVerifier.from_vkey(vkey)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        window: dict[str, str] = {}
        for option in options:
            key, sep, value = option.partition("=")
            if not sep or key not in ("not-before", "not-after"):
                raise ConfigError(f"{where}: unknown option {option!r}")
            window[key] = _normalise_time(value, where)
        keys.append(TrustedKey(verifier, window.get("not-before"), window.get("not-after")))
    return keys


def load_trusted_keys(path: str | os.PathLike[str]) -> list[TrustedKey]:
    """Read a trusted-keys (or single vkey) file. Raises ConfigError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read trusted key file {os.fspath(path)!s}: {exc}") from exc
    keys = parse_trusted_keys(text, os.fspath(path))
    if not keys:
        raise ConfigError(f"trusted key file {os.fspath(path)!s} holds no vkey")
    return keys


def trusted_keys_path_for(key_path: Path) -> Path:
    """The trusted-keys file kept beside a private key file (written by key rotation)."""
    return key_path.with_name("trusted-keys")


@dataclass(frozen=True)
class Rotation:
    """What :func:`rotate_signing_key` did."""

    old: NoteVerifier
    new: NoteVerifier
    retired_key: Path
    trusted_keys: Path
    old_not_after: str
    new_not_before: str


def rotate_signing_key(path: Path, *, grace_s: float, now: datetime | None = None) -> Rotation:
    """Replace the signing key at ``path`` with a new one of the same name.

    The old private key is kept (renamed ``<stem>.<key id>.retired.key``, still 0600) so
    nothing signed with it becomes unverifiable, and the trusted-keys file beside the key
    gets the old vkey with ``not-after`` = now + ``grace_s`` (processes started before the
    rotation keep signing with the old key until they restart) and the new vkey with
    ``not-before`` = now. Raises KeyFileError / ConfigError.
    """
    old = load_signer(path)
    moment = now or datetime.now(UTC)
    not_after = (moment + timedelta(seconds=grace_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    not_before = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    retired = path.with_name(f"{path.stem}.{old.key_id.hex()}.retired.key")
    if retired.exists():
        raise KeyFileError(f"refusing to overwrite retired key {retired}")
    trusted_path = trusted_keys_path_for(path)
    lines: list[str] = []
    if trusted_path.exists():
        lines = trusted_path.read_text(encoding="utf-8").splitlines()
    lines = [line for line in lines if line.split("#", 1)[0].split()[:1] != [old.vkey]]
    os.replace(path, retired)
    vkey = vkey_path_for(path)
    vkey.unlink(missing_ok=True)
    new = load_or_create_signing_key(path, old.name).verifier
    lines += [
        f"# rotated {not_before}",
        f"{old.vkey} not-after={not_after}",
        f"{new.vkey} not-before={not_before}",
    ]
    tmp = trusted_path.with_name(trusted_path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, trusted_path)
    return Rotation(old.verifier, new, retired, trusted_path, not_after, not_before)
