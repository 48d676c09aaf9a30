"""Gathering the facts a compliance report decides on. This is the I/O edge of the compliance
package: it reads the store through the read side's read-only statements, the access
registry, the verifier and the anchors; the checks that judge the facts are pure.

The SQL is written once for both stores (SQLite and PostgreSQL differ only in the driver's
placeholder): plain columns, no JSON functions. What a decision needs from inside a body is
read in Python from the stored bytes, so both backends decide alike, and a body that is not
JSON (tampering: the verifier's finding) cannot stop the report.

Callers go through `mcp_notary.compliance.report.generate`, which asks access control first
(`report` needs `reports.run`) and records the report as an `audit_access` event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mcp_notary.access.readside import ReadSide
from mcp_notary.access.registry import AccessState
from mcp_notary.anchor import open_anchor
from mcp_notary.compliance.checks import (
    AccessFacts,
    EventFact,
    Facts,
    LifecycleFacts,
    StreamFact,
)
from mcp_notary.errors import ConfigError, StoreError
from mcp_notary.ids import utc_timestamp
from mcp_notary.ledger.checkpointer import DEFAULT_ORIGIN_PREFIX
from mcp_notary.ledger.keys import TrustedKey
from mcp_notary.ledger.segment import SegmentError, decode_segment, period_end
from mcp_notary.lifecycle.archive import open_archive
from mcp_notary.lifecycle.holds import HeldRow, active_holds
from mcp_notary.lifecycle.policy import NEVER_PRUNED
from mcp_notary.lifecycle.retention import recorded_prunes_in
from mcp_notary.lifecycle.sealing import PAYLOAD_KEY_PREFIX, SEALED
from mcp_notary.query.rows import ReadOnlyRows
from mcp_notary.verify.checkpoints import CheckpointEvidence
from mcp_notary.verify.report import verify_trail

__all__ = ["EvidenceOptions", "gather_facts", "secret_scanner"]


@dataclass(frozen=True)
class EvidenceOptions:
    period_from: str  # RFC 3339 UTC, inclusive
    period_to: str  # exclusive
    trusted_keys: Sequence[TrustedKey] = ()
    anchors: Sequence[str] = ()
    origin_prefix: str = DEFAULT_ORIGIN_PREFIX
    disabled_rules: Sequence[str] = ()
    archive: str | None = None  # the retention archive (directory or s3:// URL) to read too


def secret_scanner(disabled: Iterable[str] = ()) -> Callable[[str], list[tuple[str, str]]]:
    """The redactor's own detectors, as a function of a text: (rule id, kind) per detection."""
    from mcp_notary.redact.detectors import Detectors, default_detectors

    off = tuple(disabled)
    detectors = Detectors(disabled=off) if off else default_detectors()

    def scan(text: str) -> list[tuple[str, str]]:
        return [(f.rule.id, f.kind) for f in detectors.find(text)]

    return scan


def _document(body: bytes | memoryview) -> dict[str, Any]:
    """A stored body as a JSON object; `{}` for bytes that are not one (unreadable bytes are
    the verifier's finding: the checks count what is missing)."""
    try:
        parsed = json.loads(bytes(body))
    except ValueError:  # UnicodeDecodeError included
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _at(doc: dict[str, Any], *path: str) -> Any:
    """The value at `path` in `doc`, or None where a step is missing or not an object."""
    value: Any = doc
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _events(db: ReadOnlyRows, start: str, end: str) -> list[EventFact]:
    # audit_access events are read separately (all of them, for reconciliation); they would
    # otherwise dominate the period's population with the trail's own reads.
    p = db.placeholder
    rows = db.fetch(
        "SELECT stream, seq, event_id, timestamp, kind, body FROM events "
        f"WHERE timestamp >= {p} AND timestamp < {p} AND kind != 'audit_access' "
        "ORDER BY timestamp, stream, seq",
        (start, end),
    )
    return [
        EventFact(stream, seq, event_id, ts, kind, _document(body))
        for stream, seq, event_id, ts, kind, body in rows
    ]


def _streams(db: ReadOnlyRows) -> list[StreamFact]:
    rows = db.fetch(
        "SELECT e.stream, s.lo, s.hi, s.traffic, e.timestamp, e.kind, e.body FROM "
        "(SELECT stream, min(seq) AS lo, max(seq) AS hi, "
        "sum(CASE WHEN kind != 'audit_access' THEN 1 ELSE 0 END) AS traffic "
        "FROM events GROUP BY stream) AS s "
        "JOIN events AS e ON e.stream = s.stream AND e.seq = s.hi ORDER BY e.stream"
    )
    out = []
    for stream, first, last, traffic, ts, kind, body in rows:
        phase = _at(_document(body), "details", "phase")
        out.append(
            StreamFact(
                stream, first, last, ts, kind, phase if isinstance(phase, str) else None,
                reader=not traffic,
            )
        )  # fmt: skip
    return out


def _audit_events(db: ReadOnlyRows) -> dict[str, dict[str, Any]]:
    rows = db.fetch(
        "SELECT event_id, timestamp, method, outcome, principal_id, body "
        "FROM events WHERE kind = 'audit_access' ORDER BY timestamp, stream, seq"
    )
    return {
        eid: {
            "kind": "audit_access",
            "timestamp": ts,
            "method": method,
            "outcome": outcome,
            "principal": principal,
            "token_id": _at(_document(body), "principal", "details", "token_id"),
        }
        for eid, ts, method, outcome, principal, body in rows
    }


def _bodies(db: ReadOnlyRows, kind: str) -> list[bytes]:
    rows = db.fetch(
        f"SELECT body FROM events WHERE kind = {db.placeholder} ORDER BY timestamp, stream, seq",
        (kind,),
    )
    return [bytes(r[0]) for r in rows]


_PAGE = 5000


def _stored(db: ReadOnlyRows) -> Iterator[tuple[Any, ...]]:
    """(stream, seq, timestamp, kind, tool, principal_id, body) of every stored event, a page
    at a time in (stream, seq) order (indexed on both backends), so memory stays bounded."""
    p = db.placeholder
    after: tuple[Any, ...] = ()
    while True:
        where = f"WHERE (stream, seq) > ({p}, {p}) " if after else ""
        rows = db.fetch(
            "SELECT stream, seq, timestamp, kind, tool, principal_id, body FROM events "
            f"{where}ORDER BY stream, seq LIMIT {_PAGE}",
            after,
        )
        yield from rows
        if len(rows) < _PAGE:
            return
        after = (rows[-1][0], rows[-1][1])


def _clear_payload(body: bytes) -> bool:
    """Whether a stored payload field (`arguments`, `response_summary`) is present and not a
    sealed envelope."""
    doc = _document(body)
    for field in ("arguments", "response_summary"):
        value = doc.get(field)
        if value is not None and not (isinstance(value, dict) and SEALED in value):
            return True
    return False


def _summary(body: bytes, keys: Sequence[str]) -> dict[str, Any]:
    event = json.loads(body)
    details = event.get("details") or {}
    return {
        "event_id": event.get("event_id"),
        "timestamp": event.get("timestamp"),
        "by": (event.get("principal") or {}).get("id"),
        **{k: details.get(k) for k in keys},
    }


_RUN_KEYS = (
    "run_id", "as_of", "policy_version", "archived_events", "expired_events", "held_events",
    "holds", "payload_keys_destroyed", "expired_segments",
)  # fmt: skip


def _archived(url: str) -> tuple[list[str], list[str], str | None]:
    """What the archive at `url` still holds: the sorted times of its events, the sorted ends
    of their own total periods (events kept forever left out), and the first read error."""
    times: list[str] = []
    ends: list[str] = []
    try:
        archive = open_archive(url)
        for name in archive.names():
            segment = decode_segment(archive.get(name))
            for body in segment.bodies:
                ts = str(_document(body).get("timestamp", ""))
                times.append(ts)
                if segment.total_days is not None:
                    ends.append(period_end(ts, segment.total_days))
                elif segment.expires_at is not None:  # format 1: one expiry per segment
                    ends.append(segment.expires_at)
    except (StoreError, SegmentError, ConfigError) as exc:
        return sorted(times), sorted(ends), str(exc)[:300]
    return sorted(times), sorted(ends), None


def _lifecycle(db: ReadOnlyRows, side: ReadSide, opts: EvidenceOptions) -> LifecycleFacts:
    runs = _bodies(db, "retention")
    hold_bodies = _bodies(db, "legal_hold")
    in_force = active_holds(b for b in hold_bodies if json.loads(b)["timestamp"] < opts.period_to)
    expired = {name for b in runs for name in json.loads(b)["details"].get("expired_segments", [])}
    segments = [seg for b in runs for seg in json.loads(b)["details"].get("segments", [])]
    archived = [seg["oldest"] for seg in segments if seg.get("oldest") and
                seg.get("name") not in expired]  # fmt: skip
    needs_body = any(h.needs_body for h in in_force)
    prunable: list[str] = []
    clear: list[str] = []
    for stream, seq, ts, kind, tool, principal, body in _stored(db):
        stored = bytes(body)
        if _clear_payload(stored):
            clear.append(ts)
        if kind in NEVER_PRUNED:
            continue
        row = HeldRow(stream, seq, ts, tool, principal, stored if needs_body else None)
        if not any(h.matches(row) for h in in_force):
            prunable.append(ts)
    in_period = [
        json.loads(b) for b in hold_bodies
        if opts.period_from <= json.loads(b)["timestamp"] < opts.period_to
    ]  # fmt: skip
    archived_times, archived_ends, archive_error = (
        _archived(opts.archive) if opts.archive else ([], [], None)
    )
    return LifecycleFacts(
        archive=opts.archive,
        archive_error=archive_error,
        archived_times=archived_times,
        archived_ends=archived_ends,
        runs=[_summary(b, _RUN_KEYS) for b in runs],
        holds=[h.to_details() for h in in_force],
        hold_events=[
            {
                "event_id": e["event_id"],
                "timestamp": e["timestamp"],
                "by": (e.get("principal") or {}).get("id"),
                **e["details"],
            }
            for e in in_period
        ],
        erasures=[
            _summary(b, ("subject_key", "sealed_events", "reason"))
            for b in _bodies(db, "erasure")
            if opts.period_from <= json.loads(b)["timestamp"] < opts.period_to
        ],
        archived_oldest=min(archived) if archived else None,
        prunable_times=sorted(prunable),
        clear_payload_times=sorted(clear),
        payload_keys=side.store.subject_key_ids(PAYLOAD_KEY_PREFIX),
    )


def _checkpoints(
    side: ReadSide, opts: EvidenceOptions
) -> tuple[list[CheckpointEvidence], dict[str, str], list[dict[str, Any]]]:
    """Every checkpoint copy (store and anchors) for the verifier, and the period's stored
    checkpoints with their anchor receipts (where a copy was found) for the report."""
    evidence: list[CheckpointEvidence] = []
    known_origins: dict[str, str] = {}
    rows = side.store.checkpoints()
    for row in rows:
        evidence.append(CheckpointEvidence(row.note, "store", row.stream))
        known_origins.setdefault(row.origin, row.stream)
    receipts: dict[bytes, list[str]] = {}
    for url in opts.anchors:
        for note in open_anchor(url).notes():
            evidence.append(CheckpointEvidence(note.note, f"anchor:{note.location}"))
            receipts.setdefault(note.note, []).append(note.location)
    period = [
        {
            "stream": r.stream,
            "origin": r.origin,
            "size": r.size,
            "root": r.root.hex(),
            "created_at": r.created_at,
            "note": r.note.decode("utf-8", "replace"),
            "anchored_at": receipts.get(r.note, []),
        }
        for r in rows
        if opts.period_from <= r.created_at < opts.period_to
    ]
    return evidence, known_origins, period


def gather_facts(side: ReadSide, opts: EvidenceOptions, *, report_stream: str | None) -> Facts:
    """Read everything the checks need. The caller has already been authorised."""
    db = side.readonly_rows()
    try:
        events = _events(db, opts.period_from, opts.period_to)
        streams = _streams(db)
        ((oldest,),) = db.fetch("SELECT min(timestamp) FROM events")
        audit_events = _audit_events(db)
        lifecycle = _lifecycle(db, side, opts)
    finally:
        db.close()
    evidence, known_origins, period_checkpoints = _checkpoints(side, opts)
    trail = verify_trail(
        side.store.stream_names(),
        side.store.scan_leaves,
        evidence,
        list(opts.trusted_keys),
        origin_prefix=opts.origin_prefix,
        known_origins=known_origins,
        anchors_given=len(opts.anchors),
        retention=recorded_prunes_in(side.store),
    )
    registry = side.control.store
    grants = registry.grant_changes()
    state = AccessState.replay(g for g in grants if g.at < opts.period_to)
    tokens = [{k: v for k, v in asdict(t).items() if k != "secret_hash"} for t in registry.tokens()]
    access = AccessFacts(
        grants=[asdict(g) for g in grants],
        tokens=tokens,
        revocations=[asdict(r) for r in registry.revocations()],
        roles_at_end={p: sorted(r) for p, r in sorted(state.roles.items())},
        audit_events=audit_events,
    )
    return Facts(
        period_from=opts.period_from,
        period_to=opts.period_to,
        generated_at=utc_timestamp(),
        events=events,
        streams=streams,
        oldest_timestamp=oldest,
        verification=trail.to_dict(),
        checkpoints=period_checkpoints,
        anchors_given=len(opts.anchors),
        access=access,
        report_stream=report_stream,
        secret_scan=secret_scanner(opts.disabled_rules),
        lifecycle=lifecycle,
    )
