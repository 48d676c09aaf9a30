"""Findings, and chain verification of one stream's rows. Pure: rows in, findings out.

A finding says what is wrong, where (stream, seq or seq range, the checkpoint copy concerned)
and how bad it is. The checks themselves are numbered steps in :mod:`mcp_notary.verify.trail`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Literal

from mcp_notary.ledger.store import EventRow, LeafRecord

FindingKind = Literal[
    # one stored event or a range of them
    "modified",  # bytes differ from what was hashed, chained or signed
    "missing",  # seq range (or a whole stream) absent from the store
    "reordered",  # an event stored at a seq that is not its own
    "unreadable",  # stored bytes are not a JSON event
    "time_regression",  # an event ends before an earlier-sequenced event started
    "column_mismatch",  # a stored column (kind, principal_id...) differs from the hashed event
    # the stream as a whole
    "empty_stream",  # a registered stream with no events
    "tail_truncated",  # a signed checkpoint commits to more events than are stored
    "uncovered",  # events no trusted checkpoint covers yet
    "appended_after_close",  # events after the checkpoint that sealed a cleanly closed stream
    "stream_record",  # the streams table row is missing or disagrees with the stream's events
    # checkpoints
    "fork",  # two trusted checkpoints of one size with different roots
    "inconsistent_checkpoint",  # a trusted checkpoint that the later trusted history contradicts
    "bad_signature",  # a signature by a trusted key does not verify
    "unknown_key",  # a checkpoint signed by no trusted key
    "key_not_valid",  # signed by a trusted key outside its validity window
    "unreadable_checkpoint",  # a checkpoint that is not a well-formed signed note
    "not_anchored",  # stored checkpoints with no copy in the given anchors
    "no_trusted_key",  # nothing to check signatures against
]
Severity = Literal["integrity", "incomplete"]


@dataclass(frozen=True)
class Finding:
    """One thing wrong with the trail, where it is, and how bad it is.

    ``severity`` is ``integrity`` for evidence of tampering (exit 1) and ``incomplete`` for
    evidence that is missing, so the trail can be neither confirmed nor refuted (exit 2).
    ``seq``..``seq_end`` name the events concerned (``seq_end`` only for a range);
    ``source`` names the checkpoint or anchor copy a checkpoint finding is about."""

    kind: FindingKind
    stream: str
    seq: int | None
    detail: str
    severity: Severity = "integrity"
    seq_end: int | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(self) -> str:
        if self.seq is None:
            where = self.stream
        elif self.seq_end is not None and self.seq_end != self.seq:
            where = f"{self.stream} seq {self.seq}..{self.seq_end}"
        else:
            where = f"{self.stream} seq {self.seq}"
        text = f"{self.kind}: {where}: {self.detail}"
        return f"{text} [{self.source}]" if self.source else text


def verify_stream(
    stream: str,
    rows: Iterable[EventRow],
    on_row: Callable[[], None] | None = None,
) -> Iterator[Finding]:
    """Findings for one stream's rows (given in stored seq order). Empty when intact.

    The row checks of :class:`mcp_notary.verify.trail.StreamChecker`, for callers holding
    `EventRow`s; the full verifier reads plain tuples instead, which is much faster."""
    from mcp_notary.verify.trail import verify_stream_rows

    def records() -> Iterator[LeafRecord]:
        for row in rows:
            if on_row is not None:
                on_row()
            yield (row.seq, row.timestamp, row.body, row.leaf_hash, row.chain_hash)

    yield from verify_stream_rows(stream, records())
