"""C2SP tlog-checkpoint bodies and C2SP signed notes: text formats only, no keys.

A checkpoint body (https://c2sp.org/tlog-checkpoint)::

    <origin>\\n
    <decimal tree size>\\n
    <base64 root hash>\\n
    [<extension line>\\n ...]

A signed note (https://c2sp.org/signed-note) is a text ending in a newline, a blank line,
then one or more signature lines ``— <key name> <base64(key ID[4] || signature)>\\n``
(U+2014 em dash). Signing and verification live in :mod:`mcp_notary.ledger.signing`.

Parsing is strict: anything the specifications forbid is rejected with a
:class:`NoteFormatError` or :class:`CheckpointFormatError` naming the problem, and base64
must be canonical, so ``render(parse(b)) == b`` for every accepted input. Both errors are
:class:`~mcp_notary.errors.IntegrityError` (stored evidence that does not parse does not
verify) and :class:`ValueError`.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from mcp_notary.errors import IntegrityError

__all__ = [
    "MAX_SIGNATURES",
    "ROOT_HASH_SIZE",
    "SIGNATURE_PREFIX",
    "Checkpoint",
    "CheckpointFormatError",
    "NoteFormatError",
    "NoteSignature",
    "SignedNote",
    "check_note_text",
    "is_valid_key_name",
]

SIGNATURE_PREFIX = "\u2014 "
"""Start of every signature line: em dash (U+2014) and a space."""

MAX_SIGNATURES = 100
"""Most signature lines accepted in one note. The spec requires at least 16 and leaves
the cap to verifiers; 100 matches golang.org/x/mod/sumdb/note."""

ROOT_HASH_SIZE = 32
"""Checkpoint root hashes are SHA-256: the only hash tlog-tiles and this ledger use."""

KEY_ID_SIZE = 4
_MAX_TREE_SIZE = 2**64 - 1  # the size is a uint64 in every other implementation
_DECIMAL = re.compile(r"0|[1-9][0-9]*")  # no sign, no leading zeros, ASCII digits only
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # ASCII controls other than newline


class NoteFormatError(IntegrityError, ValueError):
    """A signed note, or a value meant for one, does not follow c2sp.org/signed-note."""


class CheckpointFormatError(IntegrityError, ValueError):
    """A checkpoint body, or a value meant for one, does not follow c2sp.org/tlog-checkpoint."""


def is_valid_key_name(name: str) -> bool:
    """Whether ``name`` may be a signed-note key name: non-empty, no Unicode spaces, no '+'."""
    return (
        bool(name)
        and "+" not in name
        and not any(c.isspace() for c in name)
        and not _CONTROL.search(name)
    )


def _b64decode_canonical(text: str) -> bytes:
    """Decode standard, padded base64, refusing any other spelling of the same bytes.

    Python (like Go's StdEncoding) accepts non-zero padding bits; re-encoding and
    comparing closes that gap so one value has exactly one accepted text.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError(f"not standard base64: {exc}") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("not canonical base64")
    return raw


def _decode_text(data: bytes, error: type[ValueError], what: str) -> str:
    """UTF-8 decode and refuse control characters other than newline (both specs' rule)."""
    if not isinstance(data, bytes):
        raise error(f"{what} must be bytes, got {type(data).__name__}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not valid UTF-8 (byte {exc.start})") from None
    bad = _CONTROL.search(text)
    if bad:
        raise error(f"{what} contains control character {bad.group()!r} at offset {bad.start()}")
    return text


def check_note_text(text: bytes) -> None:
    """Raise :class:`NoteFormatError` unless ``text`` can be the text of a signed note:
    UTF-8 without control characters other than newline, ending in a newline."""
    _decode_text(text, NoteFormatError, "note text")
    if not text.endswith(b"\n"):
        raise NoteFormatError("note text must end with a newline")


# --------------------------------------------------------------------------------------
# Checkpoint body


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The signed statement "the log ``origin`` had ``size`` leaves with root ``root``".

    Values are checked on construction, so a :class:`Checkpoint` always renders to a body
    that :meth:`parse_body` accepts. Extension lines are supported for parsing other
    logs' checkpoints; the spec marks them NOT RECOMMENDED because monitors cannot audit
    them, so this ledger does not emit any.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise CheckpointFormatError("checkpoint origin must be a non-empty string")
        if "\n" in self.origin or _CONTROL.search(self.origin):
            raise CheckpointFormatError("checkpoint origin must not contain control characters")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise CheckpointFormatError(f"checkpoint size must be an int, got {self.size!r}")
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise CheckpointFormatError(f"checkpoint size {self.size} is outside 0..2**64-1")
        if not isinstance(self.root, bytes) or len(self.root) != ROOT_HASH_SIZE:
            raise CheckpointFormatError(f"checkpoint root must be {ROOT_HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise CheckpointFormatError("checkpoint extensions must be a tuple of strings")
        for i, ext in enumerate(self.extensions):
            if not isinstance(ext, str) or not ext:
                raise CheckpointFormatError(f"checkpoint extension line {i} must be non-empty")
            if "\n" in ext or _CONTROL.search(ext):
                raise CheckpointFormatError(
                    f"checkpoint extension line {i} must not contain control characters"
                )

    def to_body(self) -> bytes:
        """Render the note text: origin, size, base64 root and extensions, one per line."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        lines.extend(self.extensions)
        return "".join(line + "\n" for line in lines).encode("utf-8")

    @classmethod
    def parse_body(cls, body: bytes) -> Checkpoint:
        """Parse a checkpoint note text, rejecting anything the spec does not allow."""
        text = _decode_text(body, CheckpointFormatError, "checkpoint body")
        if not text.endswith("\n"):
            raise CheckpointFormatError("checkpoint body must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointFormatError(
                f"checkpoint body has {len(lines)} lines, needs origin, size and root hash"
            )
        for number, line in enumerate(lines, start=1):
            if not line:
                raise CheckpointFormatError(f"checkpoint body line {number} is empty")
        origin, size_text, root_text, *extensions = lines
        if not _DECIMAL.fullmatch(size_text):
            raise CheckpointFormatError(
                f"checkpoint size {size_text!r} is not a decimal number without leading zeros"
            )
        size = int(size_text)
        if size > _MAX_TREE_SIZE:
            raise CheckpointFormatError(f"checkpoint size {size} does not fit in 64 bits")
        try:
            root = _b64decode_canonical(root_text)
        except ValueError as exc:
            raise CheckpointFormatError(f"checkpoint root hash: {exc}") from None
        if len(root) != ROOT_HASH_SIZE:
            raise CheckpointFormatError(
                f"checkpoint root hash is {len(root)} bytes, expected {ROOT_HASH_SIZE}"
            )
        return cls(origin=origin, size=size, root=root, extensions=tuple(extensions))


# --------------------------------------------------------------------------------------
# Signed note


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the signer's key name, 4-byte key ID and signature bytes.

    Whether the signature verifies is not this class's business; see
    :func:`mcp_notary.ledger.signing.verify_note`.
    """

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not is_valid_key_name(self.name):
            raise NoteFormatError(
                f"invalid key name {self.name!r}: must be non-empty without spaces or '+'"
            )
        if not isinstance(self.key_id, bytes) or len(self.key_id) != KEY_ID_SIZE:
            raise NoteFormatError(f"key ID must be {KEY_ID_SIZE} bytes")
        if not isinstance(self.signature, bytes) or not self.signature:
            raise NoteFormatError("signature must be non-empty bytes")

    def render(self) -> str:
        """Render the line, including its trailing newline."""
        encoded = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{SIGNATURE_PREFIX}{self.name} {encoded}\n"

    @classmethod
    def parse(cls, line: str) -> NoteSignature:
        """Parse one signature line, with or without its trailing newline."""
        if line.endswith("\n"):
            line = line[:-1]
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteFormatError(f"signature line does not start with an em dash: {line!r}")
        name, sep, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not sep:
            raise NoteFormatError(f"signature line has no signature after the key name: {line!r}")
        if not is_valid_key_name(name):
            raise NoteFormatError(
                f"invalid key name {name!r}: must be non-empty without spaces or '+'"
            )
        try:
            raw = _b64decode_canonical(encoded)
        except ValueError as exc:
            raise NoteFormatError(f"signature by {name!r}: {exc}") from None
        if len(raw) <= KEY_ID_SIZE:
            raise NoteFormatError(f"signature by {name!r} is too short to hold a key ID")
        return cls(name=name, key_id=raw[:KEY_ID_SIZE], signature=raw[KEY_ID_SIZE:])


@dataclass(frozen=True, slots=True)
class SignedNote:
    """A note text and its signature lines, in order. Nothing here is verified.

    ``text`` is the signed message: UTF-8, ending in a newline, which the signatures cover
    byte for byte (it excludes the separating blank line). At least one signature is
    required because a note without one cannot be rendered in the signed-note format.
    """

    text: bytes
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        check_note_text(self.text)
        if not isinstance(self.signatures, tuple) or not all(
            isinstance(s, NoteSignature) for s in self.signatures
        ):
            raise NoteFormatError("signatures must be a tuple of NoteSignature")
        if not self.signatures:
            raise NoteFormatError("a signed note needs at least one signature")
        if len(self.signatures) > MAX_SIGNATURES:
            raise NoteFormatError(
                f"note has {len(self.signatures)} signatures, more than {MAX_SIGNATURES}"
            )

    def render(self) -> bytes:
        """Render text, blank line and signature lines as the bytes of a signed note."""
        lines = "".join(s.render() for s in self.signatures)
        return self.text + b"\n" + lines.encode("utf-8")

    @classmethod
    def parse(cls, data: bytes) -> SignedNote:
        """Parse a signed note, rejecting any malformation with a :class:`NoteFormatError`."""
        text = _decode_text(data, NoteFormatError, "signed note")
        # The text may itself contain blank lines; signature lines never do, so the last
        # blank line is the separator (as the spec says).
        split = text.rfind("\n\n")
        if split < 0:
            raise NoteFormatError("signed note has no blank line before its signatures")
        body, signature_block = text[: split + 1], text[split + 2 :]
        if not signature_block:
            raise NoteFormatError("signed note has no signature lines")
        if not signature_block.endswith("\n"):
            raise NoteFormatError("signed note must end with a newline")
        lines = signature_block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise NoteFormatError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
        signatures = tuple(NoteSignature.parse(line) for line in lines)
        return cls(text=body.encode("utf-8"), signatures=signatures)
