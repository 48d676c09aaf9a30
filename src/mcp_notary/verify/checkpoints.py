"""Checkpoint evidence: parse signed notes, check their signatures against trusted keys, and
attribute each to a stream. Pure: bytes and keys in, trusted checkpoints and findings out.

Evidence comes from three places, named in every finding so an auditor knows which copy
failed: the store's ``checkpoints`` table (``store``), checkpoint files the auditor saved
(``file:<path>``), and anchors (``anchor:<location>``).

Signature rules (c2sp.org/signed-note): a signature whose key name and key ID match no trusted
key is ignored; one that matches and fails rejects the checkpoint (``bad_signature``); a
checkpoint left with no verified signature is rejected (``unknown_key``). A key's validity
window is checked against the time of the last event the checkpoint covers, later, by the
stream verifier (``key_not_valid``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mcp_notary.ledger.checkpoint import Checkpoint, SignedNote
from mcp_notary.ledger.keys import TrustedKey
from mcp_notary.verify.chain import Finding

__all__ = [
    "CheckpointEvidence",
    "TrustedCheckpoint",
    "check_signatures",
    "stream_of_origin",
]


@dataclass(frozen=True)
class CheckpointEvidence:
    """A signed note from somewhere, not yet trusted. ``stream`` is the store's claim (the
    ``checkpoints.stream`` column) when it comes from the store."""

    note: bytes
    source: str
    stream: str | None = None


@dataclass(frozen=True)
class TrustedCheckpoint:
    """A checkpoint with at least one valid signature by a trusted key, and those keys."""

    checkpoint: Checkpoint
    source: str
    keys: tuple[TrustedKey, ...]

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    def signers(self) -> str:
        return ", ".join(
            sorted({k.verifier.name + "+" + k.verifier.key_id.hex() for k in self.keys})
        )


def stream_of_origin(
    origin: str, prefix: str, known_origins: Mapping[str, str] | None = None
) -> str | None:
    """The stream a checkpoint origin belongs to: ``known_origins`` first (origin -> stream,
    from the store), else ``<prefix>/<stream>``."""
    if known_origins and origin in known_origins:
        return known_origins[origin]
    head = prefix.rstrip("/") + "/"
    if origin.startswith(head) and len(origin) > len(head):
        return origin[len(head) :]
    return None


def _verify_one(
    note: SignedNote, trusted: Sequence[TrustedKey]
) -> tuple[list[TrustedKey], str | None]:
    """(keys whose signatures verified, name+id of a trusted key whose signature failed)."""
    by_id: dict[tuple[str, bytes], list[TrustedKey]] = {}
    for key in trusted:
        by_id.setdefault((key.verifier.name, key.verifier.key_id), []).append(key)
    good: list[TrustedKey] = []
    for sig in note.signatures:
        candidates = by_id.get((sig.name, sig.key_id))
        if not candidates:
            continue  # unknown signer: ignored, as the spec requires
        if not candidates[0].verifier.verify(note.text, sig.signature):
            return [], f"{sig.name}+{sig.key_id.hex()}"
        good.extend(candidates)
    return good, None


def check_signatures(
    evidence: Iterable[CheckpointEvidence],
    trusted: Sequence[TrustedKey],
    *,
    origin_prefix: str,
    known_origins: Mapping[str, str] | None = None,
) -> tuple[dict[str, list[TrustedCheckpoint]], list[Finding]]:
    """Trusted checkpoints grouped by stream, and findings for every rejected one.

    Identical notes from several sources count once per source (so an anchored copy can be
    matched to the stored one), and all are checked.
    """
    by_stream: dict[str, list[TrustedCheckpoint]] = {}
    findings: list[Finding] = []
    for item in evidence:
        label = item.stream or "?"
        try:
            note = SignedNote.parse(item.note)
            checkpoint = Checkpoint.parse_body(note.text)
        except ValueError as exc:
            findings.append(
                Finding(
                    "unreadable_checkpoint",
                    label,
                    None,
                    f"not a well-formed signed checkpoint: {exc}",
                    source=item.source,
                )
            )
            continue
        stream = stream_of_origin(checkpoint.origin, origin_prefix, known_origins) or item.stream
        label = stream or checkpoint.origin
        if item.stream is not None and stream is not None and stream != item.stream:
            findings.append(
                Finding(
                    "inconsistent_checkpoint",
                    item.stream,
                    None,
                    f"stored as a checkpoint of {item.stream} but signed for origin "
                    f"{checkpoint.origin}",
                    source=item.source,
                )
            )
            continue
        if not trusted:
            continue  # reported once, by the caller, as no_trusted_key
        keys, failed = _verify_one(note, trusted)
        if failed is not None:
            findings.append(
                Finding(
                    "bad_signature",
                    label,
                    None,
                    f"checkpoint of size {checkpoint.size} carries a signature by trusted key "
                    f"{failed} that does not verify",
                    source=item.source,
                )
            )
            continue
        if not keys:
            names = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in note.signatures)
            findings.append(
                Finding(
                    "unknown_key",
                    label,
                    None,
                    f"checkpoint of size {checkpoint.size} is signed by no trusted key "
                    f"(signed by: {names})",
                    source=item.source,
                )
            )
            continue
        if stream is None:
            continue  # trusted, but of a log this verifier is not asked about
        by_stream.setdefault(stream, []).append(
            TrustedCheckpoint(checkpoint, item.source, tuple(keys))
        )
    return by_stream, findings
