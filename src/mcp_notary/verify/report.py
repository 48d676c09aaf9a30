"""The whole-trail verifier: every stream, every checkpoint copy, one report. Pure: the store's
rows are read through the functions passed in, and evidence arrives as bytes.

Exit statuses (decided by the CLI from :attr:`TrailReport.status`): 0 intact, 1 integrity
failure (any ``integrity`` finding), 2 incomplete evidence (only ``incomplete`` findings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mcp_notary.ledger.keys import TrustedKey
from mcp_notary.ledger.store import LeafRecord
from mcp_notary.verify.chain import Finding
from mcp_notary.verify.checkpoints import (
    CheckpointEvidence,
    TrustedCheckpoint,
    check_signatures,
)
from mcp_notary.verify.trail import (
    StreamChecker,
    StreamReport,
    check_pruned,
    check_stream_checkpoints,
)

__all__ = [
    "EXIT_INCOMPLETE",
    "EXIT_INTACT",
    "EXIT_INTEGRITY",
    "TrailReport",
    "verify_trail",
]

EXIT_INTACT, EXIT_INTEGRITY, EXIT_INCOMPLETE = 0, 1, 2
_VERDICTS = {
    EXIT_INTACT: "intact",
    EXIT_INTEGRITY: "integrity failure",
    EXIT_INCOMPLETE: "incomplete evidence",
}

PageReader = Callable[[str], Iterable[Sequence[LeafRecord]]]
"""``pages(stream)``: that stream's rows in seq order, page by page."""

RowRunner = Callable[[str, set[int]], tuple[StreamChecker, list[Finding]] | None]
"""``run(stream, wanted_sizes)``: step 1 done some other way (in parallel), or None to let
the verifier read ``pages(stream)`` itself."""


@dataclass
class TrailReport:
    """Everything the verifier found, stream by stream."""

    streams: list[StreamReport] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    """Findings not tied to one stream's rows (keys, unattributable checkpoints)."""
    checkpoints_checked: int = 0
    anchors: int = 0

    @property
    def events(self) -> int:
        return sum(s.events for s in self.streams)

    def all_findings(self) -> list[Finding]:
        return [*self.findings, *(f for s in self.streams for f in s.findings)]

    @property
    def status(self) -> int:
        found = self.all_findings()
        if any(f.severity == "integrity" for f in found):
            return EXIT_INTEGRITY
        return EXIT_INCOMPLETE if found else EXIT_INTACT

    @property
    def verdict(self) -> str:
        return _VERDICTS[self.status]

    def to_dict(self) -> dict[str, object]:
        return {
            "result": self.verdict,
            "exit_status": self.status,
            "streams": len(self.streams),
            "events": self.events,
            "checkpoints_checked": self.checkpoints_checked,
            "anchors": self.anchors,
            "findings": [f.to_dict() for f in self.all_findings()],
            "stream_reports": [s.to_dict() for s in self.streams],
        }


def verify_trail(
    stream_names: Sequence[str],
    pages: PageReader,
    evidence: Sequence[CheckpointEvidence],
    trusted: Sequence[TrustedKey],
    *,
    origin_prefix: str,
    known_origins: dict[str, str] | None = None,
    anchors_given: int = 0,
    run_rows: RowRunner | None = None,
    retention: Mapping[str, Sequence[tuple[int, int]]] | None = None,
) -> TrailReport:
    """Verify every stream in ``stream_names`` against every checkpoint in ``evidence``.

    ``evidence`` holds the store's checkpoints (source ``store``), the auditor's saved ones
    (``file:...``) and anchored copies (``anchor:...``); with ``anchors_given`` > 0, stored
    checkpoints without an anchored copy are reported as ``not_anchored``. ``retention``
    gives, per stream, the seq ranges recorded retention runs deleted: pruned events inside
    them are "deleted by policy", others ``missing``.
    """
    report = TrailReport(anchors=anchors_given)
    by_stream, report.findings = check_signatures(
        evidence, trusted, origin_prefix=origin_prefix, known_origins=known_origins
    )
    report.checkpoints_checked = len(evidence)
    if not trusted:
        report.findings.append(
            Finding(
                "no_trusted_key",
                "*",
                None,
                "no trusted checkpoint key was given or found, so no checkpoint could be "
                "checked: pass --trusted-key FILE",
                "incomplete",
            )
        )
    anchored_keys = {
        (c.origin, c.size, c.root)
        for cs in by_stream.values()
        for c in cs
        if c.source.startswith("anchor:")
    }

    def is_anchored(c: TrustedCheckpoint) -> bool:
        return (c.origin, c.size, c.root) in anchored_keys

    known = set(stream_names)
    for stream in stream_names:
        checkpoints = by_stream.get(stream, [])
        wanted = {c.size for c in checkpoints}
        result = StreamReport(stream)
        done = run_rows(stream, wanted) if run_rows is not None else None
        if done is not None:
            checker, result.findings = done
        else:
            checker = StreamChecker(stream, wanted)
            for page in pages(stream):
                result.findings += checker.feed(page)
        result.findings += checker.finish()
        result.pruned, found = check_pruned(
            stream, checker.pruned, (retention or {}).get(stream, ())
        )
        result.findings += found
        covered, found = check_stream_checkpoints(
            checker,
            checkpoints,
            anchored=is_anchored if anchors_given else None,
            require_coverage=bool(trusted) and checker.rows > 0,
        )
        result.findings += found
        result.events = checker.rows
        result.last_seq = checker.last_seq
        result.checkpoints = len(checkpoints)
        result.covered_size = covered
        report.streams.append(result)

    # Trusted checkpoints of streams the store does not have at all.
    for stream, checkpoints in sorted(by_stream.items()):
        if stream in known:
            continue
        largest = max(checkpoints, key=lambda c: c.size)
        if largest.size == 0:
            continue
        report.findings.append(
            Finding(
                "missing",
                stream,
                1,
                f"the whole stream is absent from the store, yet a trusted checkpoint commits "
                f"to {largest.size} of its events",
                seq_end=largest.size,
                source=largest.source,
            )
        )
    return report
