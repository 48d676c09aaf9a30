"""Incremental verification for a long-running watcher. Pure: reads go through functions.

Each :meth:`TrailWatcher.poll` checks only what is new since the last one: checkpoints not
seen before (signatures first), then each stream's rows up to its newest trusted checkpoint,
with the same steps as the full verifier (:mod:`mcp_notary.verify.trail`). Rows past the
newest checkpoint wait for the next poll: a live stream always has an unsigned tail of up to
one checkpoint interval. A stream that shrinks below what was already verified is reported
at once. Findings are reported once each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from mcp_notary.ledger.keys import TrustedKey
from mcp_notary.ledger.store import LeafRecord
from mcp_notary.verify.chain import Finding
from mcp_notary.verify.checkpoints import (
    CheckpointEvidence,
    TrustedCheckpoint,
    check_signatures,
)
from mcp_notary.verify.trail import StreamChecker, check_pruned, check_stream_checkpoints

__all__ = ["RangeReader", "TrailWatcher"]

RangeReader = Callable[[str, int, int], Iterable[Sequence[LeafRecord]]]
"""``read(stream, from_seq, to_seq)``: pages of that stream's rows in the inclusive range."""


class TrailWatcher:
    """Remembers what was verified; each poll reports only new findings."""

    def __init__(self, trusted: Sequence[TrustedKey], *, origin_prefix: str) -> None:
        self.trusted = list(trusted)
        self.origin_prefix = origin_prefix
        self._checkers: dict[str, StreamChecker] = {}
        self._checkpoints: dict[str, list[TrustedCheckpoint]] = {}
        self._seen_notes: set[tuple[str, bytes]] = set()
        self._reported: set[tuple[object, ...]] = set()
        self.events_verified = 0

    def verified_size(self, stream: str) -> int:
        checker = self._checkers.get(stream)
        return checker.tree_size if checker else 0

    def poll(
        self,
        heads: dict[str, int],
        new_evidence: Iterable[CheckpointEvidence],
        read: RangeReader,
        known_origins: dict[str, str] | None = None,
        retention: Mapping[str, Sequence[tuple[int, int]]] | None = None,
    ) -> list[Finding]:
        """One incremental round. ``heads`` maps every stream to its last stored seq;
        ``new_evidence`` may repeat notes already seen (they are skipped); ``retention`` gives
        the ranges recorded retention runs pruned (others found pruned are ``missing``)."""
        fresh = []
        for item in new_evidence:
            key = (item.source, item.note)
            if key not in self._seen_notes:
                self._seen_notes.add(key)
                fresh.append(item)
        by_stream, findings = check_signatures(
            fresh, self.trusted, origin_prefix=self.origin_prefix, known_origins=known_origins
        )
        for stream, checkpoints in by_stream.items():
            self._checkpoints.setdefault(stream, []).extend(checkpoints)
        for stream, head in sorted(heads.items()):
            checker = self._checkers.get(stream)
            if checker is None:
                checker = self._checkers[stream] = StreamChecker(stream)
            checkpoints = self._checkpoints.get(stream, [])
            if head < checker.last_seq:
                findings.append(
                    Finding(
                        "tail_truncated",
                        stream,
                        head + 1,
                        f"the stream ended at seq {checker.last_seq} when last checked and now "
                        f"ends at seq {head}",
                        seq_end=checker.last_seq,
                    )
                )
            target = max((c.size for c in checkpoints), default=0)
            checker.want(c.size for c in checkpoints)
            if target > checker.last_seq:
                before = checker.rows
                for page in read(stream, checker.last_seq + 1, target):
                    findings += checker.feed(page)
                self.events_verified += checker.rows - before
            _, found = check_stream_checkpoints(checker, checkpoints, require_coverage=False)
            findings += found
            findings += check_pruned(stream, checker.pruned, (retention or {}).get(stream, ()))[1]
        new: list[Finding] = []
        for finding in findings:
            identity = (finding.kind, finding.stream, finding.seq, finding.seq_end, finding.detail)
            if identity not in self._reported:
                self._reported.add(identity)
                new.append(finding)
        return new
