"""Offline inclusion-proof bundles: what an auditor receives for one event. Pure.

A bundle is a JSON object holding the event's exact stored bytes and a C2SP tlog-proof
(https://c2sp.org/tlog-proof)::

    {
      "format": "mcp-notary/inclusion-proof@v1",
      "event_id": "...", "stream": "...", "seq": 42,
      "event_b64": "<base64 of the canonical event bytes>",
      "event": { ...the same event, parsed, for reading... },
      "tlog_proof": "c2sp.org/tlog-proof@v1\\nindex 41\\n<base64 hashes>\\n\\n<checkpoint>"
    }

Checking it needs only the bundle and a trusted key: the leaf hash is recomputed from
``event_b64`` (``event`` is for people and is ignored), the audit path is folded up to the
checkpoint's root, and the checkpoint's signature is checked. The event must also say it is
the stream's event at ``index + 1`` and the checkpoint's origin must be that stream's.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mcp_notary.errors import IntegrityError
from mcp_notary.ledger.checkpoint import Checkpoint, SignedNote
from mcp_notary.ledger.keys import TrustedKey
from mcp_notary.ledger.merkle import leaf_hash, verify_inclusion
from mcp_notary.verify.checkpoints import CheckpointEvidence, check_signatures

__all__ = [
    "BUNDLE_FORMAT",
    "TLOG_PROOF_HEADER",
    "ProofBundle",
    "ProofBundleError",
    "ProofResult",
    "make_bundle",
    "parse_tlog_proof",
    "render_tlog_proof",
    "verify_bundle",
]

BUNDLE_FORMAT = "mcp-notary/inclusion-proof@v1"
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"


class ProofBundleError(IntegrityError, ValueError):
    """A proof bundle is malformed or does not verify."""


def render_tlog_proof(index: int, proof: Sequence[bytes], note: bytes) -> str:
    """The C2SP tlog-proof text: header, ``index N``, one base64 hash per line, a blank line,
    then the signed checkpoint."""
    lines = [TLOG_PROOF_HEADER, f"index {index}"]
    lines += [base64.b64encode(h).decode("ascii") for h in proof]
    return "\n".join(lines) + "\n\n" + note.decode("utf-8")


def parse_tlog_proof(text: str) -> tuple[int, list[bytes], bytes]:
    """(index, audit path, signed checkpoint bytes) from a tlog-proof text."""
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise ProofBundleError("tlog proof has no blank line before its checkpoint")
    lines = head.split("\n")
    if lines[0] != TLOG_PROOF_HEADER:
        raise ProofBundleError(f"tlog proof does not start with {TLOG_PROOF_HEADER}")
    rest = lines[1:]
    if rest and rest[0].startswith("extra "):
        rest = rest[1:]  # opaque application data: not used here
    if not rest or not rest[0].startswith("index "):
        raise ProofBundleError("tlog proof has no index line")
    index_text = rest[0][len("index ") :]
    if not index_text.isdigit() or (index_text != "0" and index_text.startswith("0")):
        raise ProofBundleError(f"tlog proof index {index_text!r} is not a decimal number")
    proof: list[bytes] = []
    for line in rest[1:]:
        try:
            proof.append(base64.b64decode(line.encode("ascii"), validate=True))
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ProofBundleError(f"tlog proof hash line is not base64: {line!r}") from exc
    return int(index_text), proof, note.encode("utf-8")


@dataclass(frozen=True)
class ProofBundle:
    """One event, where it sits in its stream's tree, and the checkpoint that commits to it."""

    event_id: str
    stream: str
    seq: int
    event_bytes: bytes
    tlog_proof: str

    def to_json(self) -> str:
        try:
            event: Any = json.loads(self.event_bytes)
        except ValueError:
            event = None
        return json.dumps(
            {
                "format": BUNDLE_FORMAT,
                "event_id": self.event_id,
                "stream": self.stream,
                "seq": self.seq,
                "event_b64": base64.b64encode(self.event_bytes).decode("ascii"),
                "event": event,
                "tlog_proof": self.tlog_proof,
            },
            indent=2,
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ProofBundle:
        try:
            data = json.loads(text)
            if data.get("format") != BUNDLE_FORMAT:
                raise ProofBundleError(f"not an {BUNDLE_FORMAT} bundle")
            return cls(
                event_id=str(data["event_id"]),
                stream=str(data["stream"]),
                seq=int(data["seq"]),
                event_bytes=base64.b64decode(data["event_b64"], validate=True),
                tlog_proof=str(data["tlog_proof"]),
            )
        except ProofBundleError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise ProofBundleError(f"malformed proof bundle: {exc}") from exc


def make_bundle(
    event_id: str, stream: str, seq: int, body: bytes, proof: Sequence[bytes], note: bytes
) -> ProofBundle:
    """Assemble a bundle (the caller computed ``proof`` for leaf ``seq - 1``)."""
    return ProofBundle(event_id, stream, seq, body, render_tlog_proof(seq - 1, proof, note))


@dataclass(frozen=True)
class ProofResult:
    """A verified bundle: the event, the checkpoint that includes it, who signed it."""

    stream: str
    seq: int
    event_id: str
    checkpoint: Checkpoint
    signers: str


def verify_bundle(
    bundle: ProofBundle, trusted: Sequence[TrustedKey], *, origin_prefix: str
) -> ProofResult:
    """Check a bundle with nothing but trusted keys; raise ProofBundleError (or a
    :class:`~mcp_notary.ledger.merkle.ProofError`) naming the failed step."""
    # 1. The proof text and its checkpoint parse.
    index, path, note_bytes = parse_tlog_proof(bundle.tlog_proof)
    try:
        checkpoint = Checkpoint.parse_body(SignedNote.parse(note_bytes).text)
    except ValueError as exc:
        raise ProofBundleError(f"the bundle's checkpoint is malformed: {exc}") from exc
    # 2. The checkpoint is signed by a trusted key.
    by_stream, problems = check_signatures(
        [CheckpointEvidence(note_bytes, "bundle")], trusted, origin_prefix=origin_prefix
    )
    if problems:
        raise ProofBundleError(problems[0].detail)
    if not trusted:
        raise ProofBundleError("no trusted key to check the checkpoint signature against")
    trusted_cp = next((c for cs in by_stream.values() for c in cs), None)
    if trusted_cp is None:
        raise ProofBundleError(
            f"checkpoint origin {checkpoint.origin!r} is not under prefix {origin_prefix!r}"
        )
    # 3. The checkpoint is this stream's, and the event is at the index the proof claims.
    stream = next(iter(by_stream))
    if stream != bundle.stream:
        raise ProofBundleError(
            f"the checkpoint is for stream {stream}, the bundle claims {bundle.stream}"
        )
    if index != bundle.seq - 1:
        raise ProofBundleError(f"proof index {index} is not seq {bundle.seq} - 1")
    try:
        event = json.loads(bundle.event_bytes)
        claimed = (event.get("stream"), event.get("seq"), event.get("event_id"))
    except (ValueError, AttributeError) as exc:
        raise ProofBundleError("the bundled event bytes are not a JSON event") from exc
    if claimed != (bundle.stream, bundle.seq, bundle.event_id):
        raise ProofBundleError(
            f"the event says it is {claimed[0]} seq {claimed[1]} ({claimed[2]}), not "
            f"{bundle.stream} seq {bundle.seq} ({bundle.event_id})"
        )
    # 4. The audit path leads from the event's leaf hash to the signed root.
    verify_inclusion(leaf_hash(bundle.event_bytes), index, checkpoint.size, path, checkpoint.root)
    return ProofResult(bundle.stream, bundle.seq, bundle.event_id, checkpoint, trusted_cp.signers())
