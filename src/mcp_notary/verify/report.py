"""The whole-trail verifier: every stream, every checkpoint copy, one report. Pure: the store's
rows are read through the functions passed in, and evidence arrives as bytes.

Exit statuses (decided by the CLI from :attr:`TrailReport.status`): 0 intact, 1 integrity
failure (any ``integrity`` finding), 2 incomplete evidence (only ``incomplete`` findings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mcp_notary.ledger.keys import TrustedKey
from mcp_notary.ledger.store import EventRow, LeafRecord, StreamInfo
from mcp_notary.verify.chain import Finding
from mcp_notary.verify.checkpoints import (
    CheckpointEvidence,
    TrustedCheckpoint,
    check_signatures,
)
from mcp_notary.verify.columns import (
    StreamState,
    check_columns,
    check_registration,
    stream_state,
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

StreamEnds = Callable[[str], tuple[EventRow | None, EventRow | None]]
"""``ends(stream)``: its first and last stored event."""

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
    sources: dict[str, int] = field(default_factory=dict)
    """Checkpoint copies checked, by where they came from: store, file, anchor."""
    outside_streams: set[str] = field(default_factory=set)
    """Streams that a trusted checkpoint from outside the store (file, anchor) names."""
    columns_checked: bool = False
    states: dict[str, StreamState] = field(default_factory=dict)

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

    @property
    def outside_evidence(self) -> bool:
        """Whether any checkpoint from outside the store (saved file, anchor) was trusted."""
        return bool(self.outside_streams)

    def checked(self) -> list[str]:
        """What was checked against what, in words."""
        store = self.sources.get("store", 0)
        files = self.sources.get("file", 0)
        anchored = self.sources.get("anchor", 0)
        said = [
            f"{self.events} stored event(s) in {len(self.streams)} stream(s) against their own "
            "leaf and chain hashes and the stream and seq they state",
        ]
        if self.columns_checked:
            said.append(
                "the indexed columns (event_id, kind, method, tool, principal_id, outcome) and "
                "the streams table against the hashed events"
            )
        said.append(
            f"the Merkle roots of those events against {store} checkpoint(s) stored with them, "
            f"{files} saved checkpoint file(s) and {anchored} anchored copy(ies) in "
            f"{self.anchors} anchor(s)"
        )
        return said

    def limits(self) -> list[str]:
        """What this run could not detect, given the evidence it had."""
        if not self.outside_evidence:
            return [
                "no outside evidence (anchor, witness or saved checkpoint) was given: the "
                "store's own checkpoints were checked against the store itself, so cutting a "
                "stream back to one of its checkpoints, removing a closed stream's close, or "
                "deleting a whole stream (its checkpoints too, a reader's audit_access stream "
                "included) cannot be detected"
            ]
        unnamed = sorted(s.stream for s in self.streams if s.stream not in self.outside_streams)
        said = [
            "events after the newest outside checkpoint of a stream, and streams that no "
            "outside checkpoint names, can still be cut or deleted undetected"
        ]
        if unnamed:
            shown = ", ".join(unnamed[:5]) + (
                f" and {len(unnamed) - 5} more" if len(unnamed) > 5 else ""
            )
            said.append(f"{len(unnamed)} stream(s) have no outside checkpoint: {shown}")
        return said

    def to_dict(self) -> dict[str, object]:
        return {
            "result": self.verdict,
            "exit_status": self.status,
            "streams": len(self.streams),
            "events": self.events,
            "checkpoints_checked": self.checkpoints_checked,
            "anchors": self.anchors,
            "evidence": {
                "checkpoint_sources": dict(self.sources),
                "outside_evidence": self.outside_evidence,
                "checked": self.checked(),
                "limits": self.limits(),
            },
            "findings": [f.to_dict() for f in self.all_findings()],
            "stream_reports": [
                {
                    **s.to_dict(),
                    **(
                        {"state": self.states[s.stream].to_dict()}
                        if s.stream in self.states
                        else {}
                    ),
                }
                for s in self.streams
            ],
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
    column_rows: Callable[[str], Iterable[EventRow]] | None = None,
    registrations: Mapping[str, StreamInfo] | None = None,
    ends: StreamEnds | None = None,
    alive: Callable[[str], bool | None] | None = None,
) -> TrailReport:
    """Verify every stream in ``stream_names`` against every checkpoint in ``evidence``.

    ``evidence`` holds the store's checkpoints (source ``store``), the auditor's saved ones
    (``file:...``) and anchored copies (``anchor:...``); with ``anchors_given`` > 0, stored
    checkpoints without an anchored copy are reported as ``not_anchored``. ``retention``
    gives, per stream, the seq ranges recorded retention runs deleted: pruned events inside
    them are "deleted by policy", others ``missing``. Step 3 (:mod:`.columns`) runs when
    its readers are given: ``column_rows(stream)`` the rows whose columns to compare (all,
    or a store's prefilter of them), ``registrations`` the streams table, ``ends(stream)``
    the first and last stored event, ``alive(stream)`` whether its writer still runs.
    """
    report = TrailReport(anchors=anchors_given, columns_checked=column_rows is not None)
    for item in evidence:
        kind = item.source.split(":", 1)[0]
        report.sources[kind] = report.sources.get(kind, 0) + 1
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

    report.outside_streams = {
        stream for stream, cs in by_stream.items() if any(c.source != "store" for c in cs)
    }

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
        if column_rows is not None:
            result.findings += check_columns(stream, column_rows(stream))
        first, last = ends(stream) if ends is not None else (None, None)
        if registrations is not None:
            result.findings += check_registration(
                stream, registrations.get(stream), first, checker.rows > 0
            )
        if ends is not None and checker.rows > 0:
            report.states[stream] = stream_state(
                stream, last, alive(stream) if alive is not None else None
            )
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
