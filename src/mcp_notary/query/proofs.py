"""Inclusion-proof bundles for the read side: the same `mcp-notary/inclusion-proof@v1` bundle
`mcp-notary prove` writes, so `mcp-notary verify-proof` checks a console download offline."""

from __future__ import annotations

from collections.abc import Sequence

from mcp_notary.errors import IntegrityError
from mcp_notary.ledger.checkpoint import Checkpoint, SignedNote
from mcp_notary.ledger.keys import TrustedKey
from mcp_notary.ledger.merkle import MerkleLevels, leaf_hash
from mcp_notary.ledger.store import EventRow, Store
from mcp_notary.verify.checkpoints import CheckpointEvidence, check_signatures
from mcp_notary.verify.proof import ProofBundle, make_bundle

__all__ = ["NotCovered", "inclusion_bundle"]


class NotCovered(IntegrityError):
    """No trusted checkpoint covers the event yet (it is newer than the last checkpoint)."""

    exit_code = 2


def inclusion_bundle(
    store: Store, row: EventRow, trusted: Sequence[TrustedKey], *, origin_prefix: str
) -> tuple[ProofBundle, int]:
    """The bundle proving `row` against the newest trusted checkpoint of its stream that
    covers it, and that checkpoint's size. The proof is checked against the signed root
    before it is returned, so a damaged stream raises instead of yielding a bad proof."""
    chosen: tuple[bytes, Checkpoint] | None = None
    for stored in reversed(store.checkpoints(row.stream)):
        evidence = [CheckpointEvidence(stored.note, "store", row.stream)]
        accepted, problems = check_signatures(evidence, trusted, origin_prefix=origin_prefix)
        checkpoint = Checkpoint.parse_body(SignedNote.parse(stored.note).text)
        if checkpoint.size >= row.seq and accepted and not problems:
            chosen = (stored.note, checkpoint)
            break
    if chosen is None:
        raise NotCovered(
            f"no checkpoint of stream {row.stream} signed by a trusted key covers seq {row.seq} yet"
        )
    note, checkpoint = chosen
    leaves: list[bytes] = []
    for page in store.scan_leaves(row.stream, 1, checkpoint.size):
        # A pruned event's kept leaf is vouched for by the signed root checked below.
        leaves += [leaf_hash(body) if body is not None else leaf for _s, _t, body, leaf, _c in page]
    if len(leaves) != checkpoint.size:
        raise IntegrityError(
            f"stream {row.stream} holds {len(leaves)} of the {checkpoint.size} events signed"
        )
    tree = MerkleLevels(leaves)
    if tree.root() != checkpoint.root:
        raise IntegrityError(
            f"the stored events of {row.stream} do not produce the signed root of size "
            f"{checkpoint.size}: run `mcp-notary verify`"
        )
    proof = tree.inclusion_proof(row.seq - 1)
    return make_bundle(row.event_id, row.stream, row.seq, row.body, proof, note), checkpoint.size
