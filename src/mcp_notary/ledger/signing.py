"""Ed25519 signed-note signing and verification (c2sp.org/signed-note, signature type 0x01).

Key and vkey strings interoperate with golang.org/x/mod/sumdb/note and the C2SP tools::

    vkey:         <name>+<hex key ID>+<base64(0x01 || 32-byte public key)>
    private key:  PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte seed)>
    key ID:       SHA-256(<name> || 0x0A || 0x01 || public key)[:4]

All cryptography is done by ``cryptography``; nothing here hand-rolls a primitive.

Errors::

    IntegrityError (mcp_notary.errors)
    └── SignatureError
        ├── UnknownKeyError     no signature in the note is from a key we trust
        └── BadSignatureError   a signature from a trusted key does not verify
    ConfigError (mcp_notary.errors)
    ├── KeyFormatError          a vkey or private key string is malformed (also ValueError)
    └── KeyFileError            a key file is missing, unsafe, or would be overwritten

Only :func:`generate_key_file`, :func:`load_signer`, :func:`write_vkey` and
:func:`load_verifier` touch the file system.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from collections.abc import Sequence
from typing import NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mcp_notary.errors import ConfigError, IntegrityError
from mcp_notary.ledger.checkpoint import (
    NoteSignature,
    SignedNote,
    check_note_text,
    is_valid_key_name,
)

__all__ = [
    "SIGNATURE_TYPE_ED25519",
    "BadSignatureError",
    "KeyFileError",
    "KeyFormatError",
    "NoteSigner",
    "NoteVerifier",
    "SignatureError",
    "UnknownKeyError",
    "generate_key_file",
    "key_id",
    "load_signer",
    "load_verifier",
    "sign_note",
    "verify_note",
    "write_vkey",
]

SIGNATURE_TYPE_ED25519 = 0x01
"""Signed-note signature type identifier for plain Ed25519 signatures."""

_PRIVATE_PREFIX = "PRIVATE+KEY+"
_ED25519_KEY_SIZE = 32
_KEY_FILE_MAX = 4096  # a private key line is ~100 bytes; refuse to slurp anything huge


class SignatureError(IntegrityError):
    """A signed note does not verify against the trusted keys."""


class UnknownKeyError(SignatureError):
    """The note carries no signature from any trusted key (name and key ID both match).

    Signatures from unknown keys are ignored, as the spec requires (they are how keys
    rotate and witnesses cosign), so this is raised only when nothing is left to verify.
    ``unknown`` lists the ``(name, hex key ID)`` pairs that were present.
    """

    def __init__(self, unknown: Sequence[tuple[str, str]]) -> None:
        self.unknown = tuple(unknown)
        found = ", ".join(f"{n}+{k}" for n, k in self.unknown) or "none"
        super().__init__(f"note has no signature from a trusted key (signatures by: {found})")


class BadSignatureError(SignatureError):
    """A signature whose key name and key ID match a trusted key failed to verify."""

    def __init__(self, name: str, key_id: bytes) -> None:
        self.name = name
        self.key_id = key_id
        super().__init__(f"invalid signature by trusted key {name}+{key_id.hex()}")


class KeyFormatError(ConfigError, ValueError):
    """A vkey or private key string is malformed or its key ID does not match its key."""


class KeyFileError(ConfigError):
    """A key file cannot be used: missing, unreadable, unsafe permissions, or already there."""


def key_id(name: str, signature_type: int, public_key: bytes) -> bytes:
    """Return the 4-byte signed-note key ID,
    ``SHA-256(name || 0x0A || signature_type || public_key)[:4]``."""
    if not 0 <= signature_type <= 0xFF:
        raise ValueError(f"signature type {signature_type} is not a byte")
    material = name.encode("utf-8") + b"\n" + bytes([signature_type]) + public_key
    return hashlib.sha256(material).digest()[:4]


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not is_valid_key_name(name):
        raise KeyFormatError(f"invalid key name {name!r}: must be non-empty without spaces or '+'")


def _decode_key_material(encoded: str, what: str) -> bytes:
    """Decode ``base64(0x01 || 32 bytes)`` and return the 32 bytes."""
    try:
        raw = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise KeyFormatError(f"{what}: key material is not base64") from None
    if not raw or raw[0] != SIGNATURE_TYPE_ED25519:
        raise KeyFormatError(f"{what}: unsupported signature type (only Ed25519, 0x01)")
    if len(raw) != 1 + _ED25519_KEY_SIZE:
        raise KeyFormatError(f"{what}: Ed25519 key material must be {_ED25519_KEY_SIZE} bytes")
    return raw[1:]


def _parse_hex_key_id(text: str, what: str) -> bytes:
    # Exactly 8 hex digits, as Go's parser demands; bytes.fromhex alone would allow spaces.
    if len(text) != 8 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise KeyFormatError(f"{what}: key ID must be 8 hex digits")
    return bytes.fromhex(text)


class NoteVerifier:
    """A trusted Ed25519 public key under a key name, able to check note signatures."""

    __slots__ = ("_key_id", "_name", "_public_bytes", "_public_key")

    def __init__(self, name: str, public_key: Ed25519PublicKey | bytes) -> None:
        """Trust ``public_key`` (object or 32 raw bytes) for signatures by ``name``."""
        _check_name(name)
        if isinstance(public_key, bytes):
            if len(public_key) != _ED25519_KEY_SIZE:
                raise KeyFormatError(f"Ed25519 public key must be {_ED25519_KEY_SIZE} bytes")
            public_key = Ed25519PublicKey.from_public_bytes(public_key)
        self._name = name
        self._public_key = public_key
        self._public_bytes = public_key.public_bytes_raw()
        self._key_id = key_id(name, SIGNATURE_TYPE_ED25519, self._public_bytes)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<hex key ID>+<base64(0x01 || public key)>``.

        The key ID in the string must be the one derived from the name and key, so a
        typo or a spliced vkey is caught here rather than at the first verification.
        """
        parts = vkey.strip().split("+", 2)  # base64 may itself contain "+"
        if len(parts) != 3:
            raise KeyFormatError("vkey must have the form <name>+<key ID>+<key>")
        name, hex_id, encoded = parts
        _check_name(name)
        claimed = _parse_hex_key_id(hex_id, f"vkey for {name}")
        verifier = cls(name, _decode_key_material(encoded, f"vkey for {name}"))
        if verifier.key_id != claimed:
            raise KeyFormatError(
                f"vkey for {name}: key ID {hex_id} does not match the key ({verifier.key_id.hex()})"
            )
        return verifier

    @property
    def name(self) -> str:
        """The key name signatures must carry."""
        return self._name

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID signatures must carry."""
        return self._key_id

    @property
    def public_key_bytes(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return self._public_bytes

    @property
    def vkey(self) -> str:
        """This key as a vkey string."""
        material = base64.b64encode(bytes([SIGNATURE_TYPE_ED25519]) + self._public_bytes)
        return f"{self._name}+{self._key_id.hex()}+{material.decode('ascii')}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (without the key ID prefix) is this key's over ``text``."""
        try:
            self._public_key.verify(signature, text)
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NoteVerifier):
            return NotImplemented
        return self._name == other._name and self._public_bytes == other._public_bytes

    def __hash__(self) -> int:
        return hash((self._name, self._public_bytes))

    def __repr__(self) -> str:
        return f"NoteVerifier({self.vkey!r})"


class NoteSigner:
    """An Ed25519 private key under a key name, able to sign notes.

    The secret never appears in ``repr()``/``str()`` and the object refuses to be pickled,
    so it cannot leak into logs, tracebacks or caches by accident. The only way to
    serialise it is :func:`generate_key_file`.
    """

    __slots__ = ("_private_key", "_verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        """Sign as ``name`` with ``private_key``."""
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("private_key must be an Ed25519PrivateKey")
        self._private_key = private_key
        self._verifier = NoteVerifier(name, private_key.public_key())

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        """Create a signer with a fresh random key."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_private_key_string(cls, skey: str) -> NoteSigner:
        """Parse ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>``.

        Error messages never quote the input, because it is a secret.
        """
        if not skey.startswith(_PRIVATE_PREFIX):
            raise KeyFormatError("private key must start with PRIVATE+KEY+")
        parts = skey[len(_PRIVATE_PREFIX) :].strip().split("+", 2)  # base64 may contain "+"
        if len(parts) != 3:
            raise KeyFormatError("private key must have the form PRIVATE+KEY+<name>+<id>+<key>")
        name, hex_id, encoded = parts
        _check_name(name)
        claimed = _parse_hex_key_id(hex_id, f"private key for {name}")
        seed = _decode_key_material(encoded, f"private key for {name}")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        if signer.key_id != claimed:
            raise KeyFormatError(f"private key for {name}: key ID does not match the key")
        return signer

    def _private_key_string(self) -> str:
        # Private on purpose: exporting the secret is generate_key_file's job alone.
        seed = self._private_key.private_bytes_raw()
        material = base64.b64encode(bytes([SIGNATURE_TYPE_ED25519]) + seed).decode("ascii")
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id.hex()}+{material}"

    @property
    def name(self) -> str:
        """The key name written into signature lines."""
        return self._verifier.name

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID written into signature lines."""
        return self._verifier.key_id

    @property
    def verifier(self) -> NoteVerifier:
        """The matching public verifier."""
        return self._verifier

    @property
    def vkey(self) -> str:
        """The matching vkey string (public)."""
        return self._verifier.vkey

    def sign(self, text: bytes) -> NoteSignature:
        """Sign ``text`` (the exact note text, final newline included)."""
        return NoteSignature(self.name, self.key_id, self._private_key.sign(text))

    def __repr__(self) -> str:
        return f"NoteSigner(name={self.name!r}, key_id={self.key_id.hex()!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("NoteSigner holds a private key and cannot be pickled")


def sign_note(text: bytes, signers: Sequence[NoteSigner]) -> SignedNote:
    """Sign ``text`` with every signer and return the note, signatures in signer order.

    Raises :class:`~mcp_notary.ledger.checkpoint.NoteFormatError` if ``text`` is not a
    valid note text, and ValueError for no signers or two signers with the same name and
    key ID (verifiers could not tell their signatures apart).
    """
    if not signers:
        raise ValueError("sign_note needs at least one signer")
    seen: set[tuple[str, bytes]] = set()
    for s in signers:
        if (s.name, s.key_id) in seen:
            raise ValueError(f"two signers share key {s.name}+{s.key_id.hex()}")
        seen.add((s.name, s.key_id))
    check_note_text(text)  # fail before spending signatures on an unusable text
    return SignedNote(text, tuple(s.sign(text) for s in signers))


def verify_note(note: SignedNote, verifiers: Sequence[NoteVerifier]) -> list[str]:
    """Verify ``note`` against the trusted ``verifiers``; return the verified key names.

    Follows c2sp.org/signed-note: signatures whose (name, key ID) match no trusted key
    are ignored; every signature that does match is checked, and one failure rejects the
    note (:class:`BadSignatureError`); if none matched, :class:`UnknownKeyError`. Names are
    returned once each, in the order their signatures appear.
    """
    trusted: dict[tuple[str, bytes], NoteVerifier] = {}
    for v in verifiers:
        if (v.name, v.key_id) in trusted and trusted[(v.name, v.key_id)] != v:
            raise ValueError(f"two different trusted keys share {v.name}+{v.key_id.hex()}")
        trusted[(v.name, v.key_id)] = v
    verified: list[str] = []
    unknown: list[tuple[str, str]] = []
    for sig in note.signatures:
        verifier = trusted.get((sig.name, sig.key_id))
        if verifier is None:
            unknown.append((sig.name, sig.key_id.hex()))
            continue
        if not verifier.verify(note.text, sig.signature):
            raise BadSignatureError(sig.name, sig.key_id)
        if sig.name not in verified:
            verified.append(sig.name)
    if not verified:
        raise UnknownKeyError(unknown)
    return verified


# --------------------------------------------------------------------------------------
# Key files


def write_new_file(path: str | os.PathLike[str], data: bytes, mode: int, what: str) -> None:
    # O_EXCL: never overwrite (or follow a planted symlink to) an existing file; the mode
    # is set at creation so there is no window in which the file is more permissive.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise KeyFileError(f"refusing to overwrite existing {what} {os.fspath(path)!s}") from None
    except OSError as exc:
        raise KeyFileError(f"cannot create {what} {os.fspath(path)!s}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            # A key that was announced (vkey published) but lost in a crash is a log that
            # can never sign again, so make it durable before returning.
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(path)
        raise


def _read_small_file(path: str | os.PathLike[str], what: str, *, private: bool) -> str:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise KeyFileError(f"cannot open {what} {os.fspath(path)!s}: {exc.strerror}") from exc
    try:
        # fstat the open descriptor, not the path, so the file checked is the file read.
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"{what} {os.fspath(path)!s} is not a regular file")
        if private and os.name == "posix" and st.st_mode & 0o077:
            raise KeyFileError(
                f"{what} {os.fspath(path)!s} has mode {stat.S_IMODE(st.st_mode):04o}; it must "
                f"not be accessible by group or others (run: chmod 600 {os.fspath(path)!s})"
            )
        chunks: list[bytes] = []
        total = 0
        while total <= _KEY_FILE_MAX:
            chunk = os.read(fd, _KEY_FILE_MAX + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    if total > _KEY_FILE_MAX:
        raise KeyFileError(f"{what} {os.fspath(path)!s} is too large to be a key file")
    try:
        return b"".join(chunks).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise KeyFileError(f"{what} {os.fspath(path)!s} is not UTF-8 text") from None


def generate_key_file(path: str | os.PathLike[str], name: str) -> NoteVerifier:
    """Create a new Ed25519 key named ``name`` in a new file at ``path`` (mode 0600).

    Refuses to overwrite an existing file. Returns the public verifier, e.g. for
    :func:`write_vkey`.
    """
    signer = NoteSigner.generate(name)
    data = (signer._private_key_string() + "\n").encode("utf-8")
    write_new_file(path, data, 0o600, "private key file")
    return signer.verifier


def load_signer(path: str | os.PathLike[str]) -> NoteSigner:
    """Load a private key file written by :func:`generate_key_file` (or Go's note tools).

    Refuses files that group or others can access at all: a readable key means anyone on
    the host can forge checkpoints, and a writable one lets them swap the key.
    """
    text = _read_small_file(path, "private key file", private=True)
    try:
        return NoteSigner.from_private_key_string(text)
    except KeyFormatError as exc:
        raise KeyFormatError(f"{os.fspath(path)!s}: {exc}") from None


def write_vkey(path: str | os.PathLike[str], verifier: NoteVerifier) -> None:
    """Write ``verifier``'s vkey to a new file at ``path`` (mode 0644; never overwrites)."""
    write_new_file(path, (verifier.vkey + "\n").encode("utf-8"), 0o644, "vkey file")


def load_verifier(path: str | os.PathLike[str]) -> NoteVerifier:
    """Load a vkey file written by :func:`write_vkey`."""
    text = _read_small_file(path, "vkey file", private=False)
    try:
        return NoteVerifier.from_vkey(text)
    except KeyFormatError as exc:
        raise KeyFormatError(f"{os.fspath(path)!s}: {exc}") from None
