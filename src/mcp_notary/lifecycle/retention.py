"""Retention runs: decide (pure `plan_stream`), archive, record, prune.

A run walks every stored event. One past its hot period is archived (when an archive is
configured) and pruned from the store; one past its total period is pruned outright; one a
legal hold matches is kept. Before anything is deleted, the run is recorded as a `retention`
event (ranges, counts, policy version, segments) made durable in the ledger: the verifier
accepts a pruned event only inside a range such a record names. Pruning keeps each event's
position, leaf and chain hash, so the chain and every signed checkpoint still verify.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mcp_notary.ids import new_event_id
from mcp_notary.ledger.checkpointer import CheckpointSigner, stream_origin
from mcp_notary.ledger.segment import SegmentError, decode_segment
from mcp_notary.ledger.store import (
    EventFilter,
    EventRow,
    Store,
    as_hashed,
    ranges_of,
    started_label,
)
from mcp_notary.lifecycle.archive import Archive
from mcp_notary.lifecycle.holds import HeldRow, LegalHold, active_holds
from mcp_notary.lifecycle.policy import NEVER_PRUNED, RetentionPolicy, cutoff
from mcp_notary.lifecycle.sealing import PAYLOAD_KEY_PREFIX
from mcp_notary.lifecycle.segments import write_segments

__all__ = [
    "RetentionPlan",
    "StreamPlan",
    "apply_plan",
    "plan_retention",
    "plan_stream",
    "recorded_prunes",
    "recorded_prunes_in",
    "run_retention",
]

Progress = Callable[[int], None]
"""Called with the number of events just processed."""


@dataclass
class StreamPlan:
    """What a run does to one stream: seq ranges to archive then prune, ranges to prune
    without archiving (past their total period), and how many events holds kept."""

    stream: str
    archive: list[tuple[int, int]] = field(default_factory=list)
    expire: list[tuple[int, int]] = field(default_factory=list)
    held: int = 0
    kept: int = 0
    spans: list[tuple[int, int]] = field(default_factory=list)
    """Stored seq runs to write as segments: each covers archive ranges and the held or kept
    events between them (segments hold only the archived bodies, the others' hashes)."""
    totals: list[tuple[int, int | None]] = field(default_factory=list)
    """The total period of the archived events: (first seq, days) wherever it changes, in seq
    order (None: kept forever). Segments are grouped by it, so each event leaves the archive
    when its own period ends."""

    def total_for(self, seq: int) -> int | None:
        """The total period of archived event `seq` (None, kept forever, if none is noted)."""
        at = bisect.bisect_right(self.totals, seq, key=lambda t: t[0]) - 1
        return self.totals[at][1] if at >= 0 else None

    @property
    def pruned(self) -> list[tuple[int, int]]:
        return ranges_of([s for a, b in [*self.archive, *self.expire] for s in range(a, b + 1)])

    def count(self, ranges: list[tuple[int, int]]) -> int:
        return sum(b - a + 1 for a, b in ranges)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "archived": [list(r) for r in self.archive],
            "expired": [list(r) for r in self.expire],
            "pruned": [list(r) for r in self.pruned],
            "archived_events": self.count(self.archive),
            "expired_events": self.count(self.expire),
            "held_events": self.held,
        }


@dataclass
class RetentionPlan:
    run_id: str
    now: str
    policy: RetentionPolicy
    holds: list[LegalHold]
    streams: list[StreamPlan] = field(default_factory=list)
    expired_segments: list[str] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    payload_keys: list[str] = field(default_factory=list)
    """Day keys past the payload period, destroyed by this run."""
    payload_keys_held: list[str] = field(default_factory=list)
    """Day keys past the payload period that a legal hold keeps."""

    @property
    def changes(self) -> bool:
        return bool(self.active or self.expired_segments or self.payload_keys)

    @property
    def active(self) -> list[StreamPlan]:
        return [s for s in self.streams if s.archive or s.expire]

    def totals(self) -> dict[str, int]:
        return {
            "archived_events": sum(s.count(s.archive) for s in self.streams),
            "expired_events": sum(s.count(s.expire) for s in self.streams),
            "held_events": sum(s.held for s in self.streams),
            "kept_events": sum(s.kept for s in self.streams),
        }

    def details(self) -> dict[str, Any]:
        """The `details` of the run's `retention` event."""
        return {
            "run_id": self.run_id,
            "as_of": self.now,
            "policy_version": self.policy.version,
            "policy": self.policy.to_dict(),
            "holds": [h.hold_id for h in self.holds],
            **self.totals(),
            "streams": [s.to_dict() for s in self.active],
            "segments": self.segments,
            "expired_segments": self.expired_segments,
            "payload_keys_destroyed": self.payload_keys,
            "payload_keys_held": self.payload_keys_held,
        }


def _data_classes(body: bytes) -> frozenset[str]:
    """The kinds of value redaction removed from an event (its `sensitive_fields`)."""
    try:
        fields = json.loads(body).get("sensitive_fields") or []
    except (ValueError, AttributeError):
        return frozenset()
    return frozenset(str(f.get("kind")) for f in fields if isinstance(f, dict))


def plan_stream(
    stream: str,
    server: str | None,
    rows: Iterable[EventRow],
    policy: RetentionPolicy,
    holds: list[LegalHold],
    now: datetime,
    *,
    archiving: bool,
    signed_upto: int | None = None,
    progress: Progress | None = None,
) -> StreamPlan:
    """Decide, for each stored event of one stream, whether this run archives, expires or
    keeps it. Pure. Events past `signed_upto` (the stream's largest checkpoint; None: no
    limit) are kept: pruning an event no signature covers would leave hashes nobody vouches
    for."""
    plan = StreamPlan(stream)
    cutoffs: dict[int, str] = {}

    def past(days: int | None) -> str:
        if days is None:
            return ""  # nothing is older than the empty string
        if days not in cutoffs:
            cutoffs[days] = cutoff(now, days)
        return cutoffs[days]

    archive: list[int] = []
    expire: list[int] = []
    spans: list[list[int]] = []
    open_span: list[int] | None = None  # the span still contiguous with the stored rows
    previous = 0
    n = 0
    for n, stored_row in enumerate(rows, 1):
        if progress is not None and n % 1000 == 0:
            progress(1000)
        # What is kept, held or pruned is decided on the hashed body, never on the columns
        # beside it, which a writer to the store file could edit without breaking the chain.
        row = as_hashed(stored_row)
        if row.seq != previous + 1:
            open_span = None  # a gap (pruned before) ends the stored run
        previous = row.seq
        if row.kind in NEVER_PRUNED or (signed_upto is not None and row.seq > signed_upto):
            plan.kept += 1
            continue
        classes = _data_classes(row.body) if policy.uses_data_classes else frozenset()
        periods = policy.periods_for(stream, server, row.tool, row.kind, classes)
        past_total = row.timestamp < past(periods.total)
        past_hot = archiving and row.timestamp < past(periods.hot)
        if not (past_total or past_hot):
            plan.kept += 1
            continue
        held = HeldRow(stream, row.seq, row.timestamp, row.tool, row.principal_id, row.body)
        if any(h.matches(held) for h in holds):
            plan.held += 1
            continue
        if past_total:
            expire.append(row.seq)
            continue
        archive.append(row.seq)
        if not plan.totals or plan.totals[-1][1] != periods.total:
            plan.totals.append((row.seq, periods.total))
        if open_span is None:
            open_span = [row.seq, row.seq]
            spans.append(open_span)
        else:
            open_span[1] = row.seq
    if progress is not None:
        progress(n % 1000)
    plan.archive, plan.expire = ranges_of(archive), ranges_of(expire)
    plan.spans = [(a, b) for a, b in spans]
    return plan


def plan_retention(
    store: Store,
    policy: RetentionPolicy,
    now: datetime,
    *,
    archive: Archive | None,
    progress: Progress | None = None,
) -> RetentionPlan:
    """Plan a run over the whole store (reads only)."""
    holds = active_holds(r.body for r in store.find(EventFilter(kind="legal_hold")))
    plan = RetentionPlan(
        run_id=new_event_id(),
        now=now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        policy=policy,
        holds=holds,
    )
    servers = {s.stream: s.server_name for s in store.streams()}
    for stream in list(servers):  # the label the stream's own started record states wins
        servers[stream] = started_label(store, stream) or servers[stream]
    for stream in store.stream_names():
        latest = store.latest_checkpoint(stream)
        plan.streams.append(
            plan_stream(
                stream,
                servers.get(stream),
                store.scan(stream),
                policy,
                holds,
                now,
                archiving=archive is not None,
                signed_upto=latest.size if latest is not None else 0,
                progress=progress,
            )
        )
    if archive is not None:
        plan.expired_segments = _expired_segments(archive, plan.now)
    if policy.payload_days is not None:
        plan.payload_keys, plan.payload_keys_held = _expired_payload_keys(
            store, cutoff(now, policy.payload_days), holds
        )
    return plan


def _expired_payload_keys(
    store: Store, before: str, holds: list[LegalHold]
) -> tuple[list[str], list[str]]:
    """Day keys whose whole day is older than `before`: (to destroy, kept by a hold)."""
    expired, held = [], []
    for key_id in store.subject_key_ids(PAYLOAD_KEY_PREFIX):
        day = key_id[len(PAYLOAD_KEY_PREFIX) :]
        try:
            start = datetime.fromisoformat(day)
        except ValueError:
            continue
        end = (start + timedelta(days=1)).strftime("%Y-%m-%d")
        if end > before[:10]:
            continue
        rows = store.find(EventFilter(since=day, until=end)) if holds else []
        if any(
            h.matches(HeldRow(r.stream, r.seq, r.timestamp, r.tool, r.principal_id, r.body))
            for r in rows
            for h in holds
        ):
            held.append(key_id)
        else:
            expired.append(key_id)
    return expired, held


def _expired_segments(archive: Archive, now: str) -> list[str]:
    expired = []
    for name in archive.names():
        try:
            segment = decode_segment(archive.get(name))
        except SegmentError:
            continue  # not ours to delete; `verify --archive` reports it
        if segment.expires_at is not None and segment.expires_at < now:
            expired.append(name)
    return expired


def apply_plan(
    store: Store,
    plan: RetentionPlan,
    *,
    archive: Archive | None,
    signer: CheckpointSigner | None,
    origin_prefix: str,
    record: Callable[[dict[str, Any]], object],
    progress: Progress | None = None,
) -> None:
    """Carry out `plan`: write segments, record the run (durably, through `record`), prune,
    then delete archived segments past their total period."""

    for stream_plan in plan.active:
        if stream_plan.archive:
            if archive is None or signer is None:
                raise ValueError("archiving needs an archive and a signing key")
            latest = store.latest_checkpoint(stream_plan.stream)
            origin = (
                latest.origin
                if latest is not None
                else stream_origin(stream_plan.stream, origin_prefix)
            )
            plan.segments += write_segments(
                store,
                stream_plan,
                archive,
                signer,
                origin,
                plan.run_id,
                progress,
            )
    if not plan.changes:
        return
    record(plan.details())
    store.prune({s.stream: s.pruned for s in plan.active}, plan.run_id)
    if progress is not None:
        progress(sum(s.count(s.expire) for s in plan.active))
    for key_id in plan.payload_keys:
        store.delete_subject_key(key_id)
    if archive is not None:
        for name in plan.expired_segments:
            archive.delete(name)


def recorded_prunes_in(store: Store) -> dict[str, list[tuple[int, int]]]:
    """`recorded_prunes` of every `retention` event in `store`: what verifiers accept."""
    return recorded_prunes(r.body for r in store.find(EventFilter(kind="retention")))


def recorded_prunes(bodies: Iterable[bytes]) -> dict[str, list[tuple[int, int]]]:
    """Per stream, the seq ranges recorded retention runs pruned, from the stored bodies of
    `retention` events (what `verify` accepts as deleted by policy)."""
    out: dict[str, list[tuple[int, int]]] = {}
    for body in bodies:
        try:
            details = json.loads(body)["details"]
            for entry in details["streams"]:
                out.setdefault(str(entry["stream"]), []).extend(
                    (int(a), int(b)) for a, b in entry["pruned"]
                )
        except (ValueError, KeyError, TypeError):
            continue  # a damaged record is the verifier's to report
    return out


def run_retention(
    store: Store,
    policy: RetentionPolicy,
    now: datetime,
    *,
    archive: Archive | None,
    signer: Callable[[], CheckpointSigner] | None,
    origin_prefix: str,
    record: Callable[[dict[str, Any]], object],
    dry_run: bool = False,
    planned: Progress | None = None,
    applied: Progress | None = None,
) -> RetentionPlan:
    """One retention run: plan, then (unless `dry_run`) archive, record and prune. The CLI,
    the proxy's schedule and `serve` all run this. `signer` is called only if segments are
    written (it may read a key file)."""
    plan = plan_retention(store, policy, now, archive=archive, progress=planned)
    if dry_run or not plan.changes:
        return plan
    needs_signer = archive is not None and any(s.archive for s in plan.active)
    apply_plan(
        store,
        plan,
        archive=archive,
        signer=signer() if needs_signer and signer is not None else None,
        origin_prefix=origin_prefix,
        record=record,
        progress=applied,
    )
    return plan
