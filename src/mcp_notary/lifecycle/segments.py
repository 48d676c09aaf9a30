"""Writing archive segments: one pass over a stream's stored leaves turns a plan's spans into
signed, self-verifying segments (the format is `mcp_notary.ledger.segment`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mcp_notary.ledger.canonical import GENESIS_HASH
from mcp_notary.ledger.checkpoint import Checkpoint
from mcp_notary.ledger.checkpointer import CheckpointSigner
from mcp_notary.ledger.merkle import CompactRange
from mcp_notary.ledger.segment import Segment, SegmentError, encode_segment
from mcp_notary.ledger.store import Store
from mcp_notary.lifecycle.archive import Archive

if TYPE_CHECKING:
    from mcp_notary.lifecycle.retention import StreamPlan

__all__ = ["SEGMENT_MAX_EVENTS", "write_segments"]

SEGMENT_MAX_EVENTS = 10_000


def _chunks(ranges: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    out = []
    for a, b in ranges:
        for start in range(a, b + 1, size):
            out.append((start, min(start + size - 1, b)))
    return out


def write_segments(
    store: Store,
    plan: StreamPlan,
    archive: Archive,
    signer: CheckpointSigner,
    origin: str,
    run_id: str,
    expires_at: Callable[[str], str | None],
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Archive the plan's spans of one stream as signed, self-verifying segments
    (at most `SEGMENT_MAX_EVENTS` each). One pass over the stream's leaves builds each
    segment's prefix range and the root its checkpoint signs."""
    chunks = _chunks(plan.spans, SEGMENT_MAX_EVENTS)
    if not chunks:
        return []
    written: list[dict[str, Any]] = []
    tree = CompactRange()
    prev = GENESIS_HASH
    i = 0
    prefix: CompactRange | None = None
    prev_at_start = prev
    bodies: list[bytes] = []
    oldest = newest = ""
    for page in store.scan_leaves(plan.stream, 1, chunks[-1][1]):
        for seq, ts, body, leaf, chain in page:
            first, last = chunks[i]
            if seq == first:
                prefix = CompactRange.from_hashes(tree.size, tree.hashes)
                prev_at_start = prev
                bodies, oldest, newest = [], "", ""
            tree.append(leaf)
            prev = chain
            if first <= seq <= last:
                if body is None:
                    raise SegmentError(f"{plan.stream} seq {seq} was pruned already")
                bodies.append(body)
                newest = max(newest, ts)
                oldest = min(oldest, ts) if oldest else ts
            if seq == last and prefix is not None:
                note = signer.sign_checkpoint(Checkpoint(origin, tree.size, tree.root()), [])
                segment = Segment(
                    stream=plan.stream,
                    first_seq=first,
                    last_seq=last,
                    prefix=prefix,
                    prev_chain_hash=prev_at_start,
                    checkpoint=note.render(),
                    bodies=tuple(bodies),
                    run_id=run_id,
                    expires_at=expires_at(newest),
                )
                where = archive.put(segment.name, encode_segment(segment), segment.expires_at)
                written.append(
                    {
                        "stream": plan.stream,
                        "first": first,
                        "last": last,
                        "name": segment.name,
                        "location": where,
                        "oldest": oldest,
                        "newest": newest,
                        "expires_at": segment.expires_at,
                    }
                )
                if progress is not None:
                    progress(len(bodies))
                i += 1
                if i == len(chunks):
                    return written
    raise SegmentError(f"{plan.stream}: the store ended before seq {chunks[i][1]}")
