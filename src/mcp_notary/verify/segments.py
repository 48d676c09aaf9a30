"""Archived segments, checked offline. Pure: segment bytes, trusted keys and (optionally) the
store's kept hashes in, findings out.

A segment is intact when (a) each body names its stream and seq, (b) the bodies chain from
the segment's ``prev_chain_hash`` (through the given chain hashes of the range's events it does
not hold), (c) their leaves folded onto the prefix give the root of
the checkpoint in its header, (d) that checkpoint is signed by a trusted key for the
segment's stream and size, and, when the store is at hand, (e) the leaves and chain hashes
equal what the store kept of the pruned events (so the archive holds exactly what left).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from mcp_notary.ledger.checkpoint import Checkpoint, SignedNote
from mcp_notary.ledger.keys import TrustedKey
from mcp_notary.ledger.segment import Segment
from mcp_notary.ledger.store import LeafRecord
from mcp_notary.verify.chain import Finding, FindingKind
from mcp_notary.verify.checkpoints import CheckpointEvidence, check_signatures

__all__ = ["check_segment"]


def check_segment(
    segment: Segment,
    source: str,
    trusted: Sequence[TrustedKey],
    *,
    origin_prefix: str,
    known_origins: dict[str, str] | None = None,
    stored: Sequence[LeafRecord] | None = None,
) -> list[Finding]:
    stream = segment.stream
    findings: list[Finding] = []

    def bad(seq: int | None, detail: str, kind: FindingKind = "modified") -> None:
        findings.append(Finding(kind, stream, seq, detail, source=source))

    # (a), (b)
    prev = segment.prev_chain_hash
    chains: list[bytes] = []
    leaves: list[bytes] = []
    for seq, body, leaf, given in segment.entries():
        leaves.append(leaf)
        if body is None:
            assert given is not None
            prev = given  # held elsewhere: its hashes are checked against the store, (e)
            chains.append(prev)
            continue
        try:
            event = json.loads(body)
            claimed = (event.get("stream"), event.get("seq"))
        except (ValueError, AttributeError):
            bad(seq, "archived bytes are not a JSON event", "unreadable")
            claimed = None
        if claimed is not None and claimed != (stream, seq):
            bad(seq, f"archived event says it is {claimed[0]} seq {claimed[1]}", "reordered")
        prev = hashlib.sha256(prev + body).digest()
        chains.append(prev)
    # (c), (d)
    try:
        checkpoint = Checkpoint.parse_body(SignedNote.parse(segment.checkpoint).text)
    except ValueError as exc:
        bad(None, f"the segment's checkpoint is unreadable: {exc}", "unreadable_checkpoint")
        return findings
    if checkpoint.size != segment.last_seq:
        bad(
            None,
            f"the segment ends at seq {segment.last_seq} but its checkpoint signs size "
            f"{checkpoint.size}",
        )
    elif checkpoint.root != segment.root():
        bad(
            segment.first_seq,
            f"archived events seq {segment.first_seq}..{segment.last_seq} do not produce the "
            "root their checkpoint signs",
        )
    accepted, problems = check_signatures(
        [CheckpointEvidence(segment.checkpoint, source, stream)],
        trusted,
        origin_prefix=origin_prefix,
        known_origins=known_origins,
    )
    findings += problems
    if trusted and not problems and stream not in accepted:
        bad(None, "the segment's checkpoint is not for this stream", "inconsistent_checkpoint")
    # (e)
    if stored is not None:
        kept = {r[0]: r for r in stored}
        for seq, leaf, chain in zip(
            range(segment.first_seq, segment.last_seq + 1), leaves, chains, strict=True
        ):
            row = kept.get(seq)
            if row is None:
                bad(seq, f"the store keeps no hashes for archived seq {seq}", "missing")
            elif row[3] != leaf or row[4] != chain:
                bad(seq, "the archived event does not match the hashes the store kept")
    return findings
