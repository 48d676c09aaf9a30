"""Writing archive segments: one pass over a stream's stored leaves turns a plan's spans into
signed, self-verifying segments (the format is `mcp_notary.ledger.segment`)."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcp_notary.ledger.canonical import GENESIS_HASH
from mcp_notary.ledger.checkpoint import Checkpoint
from mcp_notary.ledger.checkpointer import CheckpointSigner
from mcp_notary.ledger.merkle import CompactRange
from mcp_notary.ledger.segment import Segment, SegmentError, encode_segment, period_end
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


@dataclass
class _Group:
    """The archived events of one chunk that share a total period and a UTC day."""

    total: int | None
    prefix: CompactRange
    prev_chain: bytes
    seqs: list[int] = field(default_factory=list)


def _group_name(total: int | None, day: str) -> str:
    return f"{day}.P{total}D" if total is not None else "forever"


def write_segments(
    store: Store,
    plan: StreamPlan,
    archive: Archive,
    signer: CheckpointSigner,
    origin: str,
    run_id: str,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Archive the plan's spans of one stream as signed, self-verifying segments, grouped by
    expiry: the archived events of a chunk (at most `SEGMENT_MAX_EVENTS` seqs) that share a
    total period and a UTC day form one segment, which expires when the period of its newest
    event ends (events kept forever form one group). A segment holds only its group's bodies
    and the leaf and chain hashes of the other events of its range. One pass over the
    stream's leaves builds each segment's prefix range and the root its checkpoint signs."""
    chunks = _chunks(plan.spans, SEGMENT_MAX_EVENTS)
    if not chunks:
        return []
    starts = [a for a, _ in plan.archive]

    def is_archived(seq: int) -> bool:
        at = bisect.bisect_right(starts, seq) - 1
        return at >= 0 and seq <= plan.archive[at][1]

    written: list[dict[str, Any]] = []
    tree = CompactRange()
    prev = GENESIS_HASH
    i = 0
    groups: dict[str, _Group] = {}
    # The chunk's rows: seq -> (timestamp, body if archived, leaf, chain).
    rows: dict[int, tuple[str, bytes | None, bytes, bytes]] = {}
    for page in store.scan_leaves(plan.stream, 1, chunks[-1][1]):
        for seq, ts, body, leaf, chain in page:
            first, last = chunks[i]
            if first <= seq <= last:
                archived = is_archived(seq)
                if archived:
                    if body is None:
                        raise SegmentError(f"{plan.stream} seq {seq} was pruned already")
                    total = plan.total_for(seq)
                    key = _group_name(total, ts[:10])
                    if key not in groups:
                        prefix = CompactRange.from_hashes(tree.size, tree.hashes)
                        groups[key] = _Group(total, prefix, prev)
                    groups[key].seqs.append(seq)
                rows[seq] = (ts, body if archived else None, leaf, chain)
            tree.append(leaf)
            prev = chain
            if seq == last:
                for key, group in groups.items():
                    written.append(
                        _write_group(plan.stream, key, group, rows, archive, signer, origin, run_id)
                    )
                    if progress is not None:
                        progress(len(group.seqs))
                groups, rows = {}, {}
                i += 1
                if i == len(chunks):
                    return written
    raise SegmentError(f"{plan.stream}: the store ended before seq {chunks[i][1]}")


def _write_group(
    stream: str,
    key: str,
    group: _Group,
    rows: dict[int, tuple[str, bytes | None, bytes, bytes]],
    archive: Archive,
    signer: CheckpointSigner,
    origin: str,
    run_id: str,
) -> dict[str, Any]:
    first, last = group.seqs[0], group.seqs[-1]
    members = set(group.seqs)
    tree = CompactRange.from_hashes(group.prefix.size, group.prefix.hashes)
    bodies: list[bytes] = []
    others: list[tuple[int, bytes, bytes]] = []
    for seq in range(first, last + 1):
        _, body, leaf, chain = rows[seq]
        tree.append(leaf)
        if seq in members:
            assert body is not None
            bodies.append(body)
        else:
            others.append((seq, leaf, chain))
    stamps = [rows[seq][0] for seq in group.seqs]
    oldest, newest = min(stamps), max(stamps)
    expires_at = period_end(newest, group.total) if group.total is not None else None
    note = signer.sign_checkpoint(Checkpoint(origin, tree.size, tree.root()), [])
    segment = Segment(
        stream=stream,
        first_seq=first,
        last_seq=last,
        prefix=group.prefix,
        prev_chain_hash=group.prev_chain,
        checkpoint=note.render(),
        bodies=tuple(bodies),
        run_id=run_id,
        expires_at=expires_at,
        others=tuple(others),
        total_days=group.total,
        group=key,
    )
    where = archive.put(segment.name, encode_segment(segment), segment.expires_at)
    return {
        "stream": stream,
        "first": first,
        "last": last,
        "events": len(bodies),
        "name": segment.name,
        "location": where,
        "oldest": oldest,
        "newest": newest,
        "total_days": group.total,
        "expires_at": segment.expires_at,
    }
