"""Gathering the facts a compliance report decides on. This is the I/O edge of the compliance
package: it reads the store through the read side's read-only connection, the access
registry, the verifier and the anchors; the checks that judge the facts are pure.

Callers go through `mcp_notary.compliance.report.generate`, which asks access control first
(`report` needs `reports.run`) and records the report as an `audit_access` event.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
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
from mcp_notary.errors import StoreError
from mcp_notary.ids import utc_timestamp
from mcp_notary.ledger.checkpointer import DEFAULT_ORIGIN_PREFIX
from mcp_notary.ledger.keys import TrustedKey
from mcp_notary.lifecycle.holds import HeldRow, active_holds
from mcp_notary.lifecycle.policy import NEVER_PRUNED
from mcp_notary.lifecycle.retention import recorded_prunes_in
from mcp_notary.lifecycle.sealing import PAYLOAD_KEY_PREFIX, SEALED
from mcp_notary.query.sqlite import readonly_connection
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


def secret_scanner(disabled: Iterable[str] = ()) -> Callable[[str], list[tuple[str, str]]]:
    """The redactor's own detectors, as a function of a text: (rule id, kind) per detection."""
    from mcp_notary.redact.detectors import Detectors, default_detectors

    off = tuple(disabled)
    detectors = Detectors(disabled=off) if off else default_detectors()

    def scan(text: str) -> list[tuple[str, str]]:
        return [(f.rule.id, f.kind) for f in detectors.find(text)]

    return scan


def _events(db: sqlite3.Connection, start: str, end: str) -> list[EventFact]:
    # audit_access events are read separately (all of them, for reconciliation); they would
    # otherwise dominate the period's population with the trail's own reads.
    rows = db.execute(
        "SELECT stream, seq, event_id, timestamp, kind, body FROM events "
        "WHERE timestamp >= ? AND timestamp < ? AND kind != 'audit_access' "
        "ORDER BY timestamp, stream, seq",
        (start, end),
    ).fetchall()
    out = []
    for stream, seq, event_id, ts, kind, body in rows:
        try:
            parsed = json.loads(bytes(body))
        except ValueError:
            parsed = {}  # unreadable bytes are the verifier's finding; count what is missing
        out.append(
            EventFact(stream, seq, event_id, ts, kind, parsed if isinstance(parsed, dict) else {})
        )
    return out


def _streams(db: sqlite3.Connection) -> list[StreamFact]:
    rows = db.execute(
        "SELECT e.stream, min(e.seq), max(e.seq), sum(e.kind != 'audit_access') FROM events e "
        "GROUP BY e.stream ORDER BY e.stream"
    ).fetchall()
    out = []
    for stream, first, last, traffic in rows:
        ts, kind, phase = db.execute(
            "SELECT timestamp, kind, json_extract(CAST(body AS TEXT), '$.details.phase') "
            "FROM events WHERE stream = ? AND seq = ?",
            (stream, last),
        ).fetchone()
        out.append(StreamFact(stream, first, last, ts, kind, phase, reader=not traffic))
    return out


def _audit_events(db: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    rows = db.execute(
        "SELECT event_id, timestamp, method, outcome, principal_id, "
        "json_extract(CAST(body AS TEXT), '$.principal.details.token_id') "
        "FROM events WHERE kind = 'audit_access'"
    ).fetchall()
    return {
        eid: {
            "kind": "audit_access",
            "timestamp": ts,
            "method": method,
            "outcome": outcome,
            "principal": principal,
            "token_id": token_id,
        }
        for eid, ts, method, outcome, principal, token_id in rows
    }


def _bodies(db: sqlite3.Connection, kind: str) -> list[bytes]:
    rows = db.execute(
        "SELECT body FROM events WHERE kind = ? ORDER BY timestamp, stream, seq", (kind,)
    ).fetchall()
    return [bytes(r[0]) for r in rows]


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


def _lifecycle(db: sqlite3.Connection, side: ReadSide, opts: EvidenceOptions) -> LifecycleFacts:
    runs = _bodies(db, "retention")
    hold_bodies = _bodies(db, "legal_hold")
    in_force = active_holds(b for b in hold_bodies if json.loads(b)["timestamp"] < opts.period_to)
    expired = {name for b in runs for name in json.loads(b)["details"].get("expired_segments", [])}
    segments = [seg for b in runs for seg in json.loads(b)["details"].get("segments", [])]
    archived = [seg["oldest"] for seg in segments if seg.get("oldest") and
                seg.get("name") not in expired]  # fmt: skip
    needs_body = any(h.needs_body for h in in_force)
    never = ",".join(f"'{k}'" for k in sorted(NEVER_PRUNED))
    prunable: list[str] = []
    for stream, seq, ts, tool, principal, body in db.execute(
        f"SELECT stream, seq, timestamp, tool, principal_id, {'body' if needs_body else 'NULL'} "
        f"FROM events WHERE kind NOT IN ({never})"
    ):
        row = HeldRow(stream, seq, ts, tool, principal, bytes(body) if body else None)
        if not any(h.matches(row) for h in in_force):
            prunable.append(ts)
    clear = [
        r[0]
        for r in db.execute(
            "SELECT timestamp FROM (SELECT timestamp, CAST(body AS TEXT) AS b FROM events) "
            "WHERE json_valid(b) AND ("
            + " OR ".join(
                f"(json_type(b, '$.{f}') NOT IN ('null') AND "
                f"json_type(b, '$.{f}.\"{SEALED}\"') IS NULL)"
                for f in ("arguments", "response_summary")
            )
            + ")"
        )
    ]
    in_period = [
        json.loads(b) for b in hold_bodies
        if opts.period_from <= json.loads(b)["timestamp"] < opts.period_to
    ]  # fmt: skip
    return LifecycleFacts(
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
    db = readonly_connection(side.sqlite_file("mcp-notary report"))
    try:
        events = _events(db, opts.period_from, opts.period_to)
        streams = _streams(db)
        (oldest,) = db.execute("SELECT min(timestamp) FROM events").fetchone()
        audit_events = _audit_events(db)
        lifecycle = _lifecycle(db, side, opts)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the audit store for the report: {exc}") from exc
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
