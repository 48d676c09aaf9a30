"""The store interface every backend implements (SQLite now, PostgreSQL later), and the pure
step that turns an event into the row appended to a stream."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeAlias

from mcp_notary.events.model import AuditEvent
from mcp_notary.ledger.canonical import GENESIS_HASH, canonical_bytes, chain_hash
from mcp_notary.ledger.merkle import leaf_hash

STORE_SCHEMA_VERSION = 2
"""1: events, streams, checkpoints. 2: adds `pruned_events` (what retention keeps of a deleted
event) and `subject_keys` (crypto-shredding)."""


@dataclass(frozen=True)
class StreamInfo:
    """One writer's sequence of events. Each proxy process writes its own stream, so writers
    never contend for a sequence number."""

    stream: str
    created_at: str
    host: str
    pid: int
    process_start: str
    server_name: str | None = None


@dataclass(frozen=True)
class StreamHead:
    """Where a stream ends: the last seq appended and its chain hash."""

    seq: int = 0
    chain_hash: bytes = GENESIS_HASH


@dataclass(frozen=True)
class EventRow:
    """One appended event: its canonical bytes plus the columns used to find it. A row read
    from SQL in `EVENT_COLUMNS` order becomes one with `EventRow.from_columns`."""

    stream: str
    seq: int
    event_id: str
    timestamp: str
    kind: str
    method: str | None
    tool: str | None
    principal_id: str | None
    outcome: str | None
    body: bytes
    leaf_hash: bytes
    chain_hash: bytes


LeafRecord: TypeAlias = tuple[int, str, bytes | None, bytes, bytes]
"""``(seq, timestamp, body, leaf_hash, chain_hash)`` of one stored row, as a plain tuple: the
verifier reads a million of these, and building a dataclass per row would cost more than
hashing it. ``body`` is None for an event whose body retention deleted (its hashes stay)."""


@dataclass(frozen=True)
class PrunedRange:
    """Seqs ``first..last`` of one stream whose bodies retention deleted in run ``run_id``."""

    stream: str
    first: int
    last: int
    run_id: str

    def to_dict(self) -> dict[str, object]:
        return {"stream": self.stream, "first": self.first, "last": self.last, "run": self.run_id}


EVENT_COLUMNS = (
    "stream, seq, event_id, timestamp, kind, method, tool, principal_id, outcome, body, "
    "leaf_hash, chain_hash"
)
"""The `events` columns in `EventRow` field order, for every backend's SELECT and INSERT."""

CHECKPOINT_COLUMNS = "stream, origin, size, root, note, created_at"


def event_row(v: Sequence[Any]) -> EventRow:
    """An `EventRow` from SQL values in `EVENT_COLUMNS` order (BLOBs may come back as views)."""
    return EventRow(
        stream=v[0],
        seq=v[1],
        event_id=v[2],
        timestamp=v[3],
        kind=v[4],
        method=v[5],
        tool=v[6],
        principal_id=v[7],
        outcome=v[8],
        body=bytes(v[9]),
        leaf_hash=bytes(v[10]),
        chain_hash=bytes(v[11]),
    )


DERIVED_COLUMNS = ("event_id", "kind", "method", "tool", "principal_id", "outcome")
"""The `events` columns that repeat a field of the hashed body (besides stream, seq and
timestamp, which the verifier checks with the chain). Nothing a reader trusts may differ from
the body: `verify` reports a row whose columns do, and the read side uses the body's values."""

_COLUMN_PATHS: dict[str, tuple[str, ...]] = {
    "event_id": ("event_id",),
    "kind": ("kind",),
    "method": ("method",),
    "tool": ("tool",),
    "principal_id": ("principal", "id"),
    "outcome": ("outcome",),
}


def column_path(column: str) -> tuple[str, ...]:
    """Where in the body a derived column comes from: ``principal_id`` -> (principal, id)."""
    return _COLUMN_PATHS[column]


def body_columns(body: bytes) -> dict[str, Any] | None:
    """The derived columns as the hashed body states them (pure); None if the body is not a
    JSON object."""
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(event, dict):
        return None
    found: dict[str, Any] = {}
    for column, path in _COLUMN_PATHS.items():
        value: Any = event
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        found[column] = value
    return found


def column_disagreements(row: EventRow) -> dict[str, tuple[Any, Any]]:
    """``{column: (stored, body's)}`` for each derived column of `row` that differs from its
    body (every column, with None as the body's value, if the body is not a JSON object)."""
    truth = body_columns(row.body)
    return {
        c: (getattr(row, c), None if truth is None else truth[c])
        for c in DERIVED_COLUMNS
        if truth is None or getattr(row, c) != truth[c]
    }


def as_hashed(row: EventRow) -> EventRow:
    """`row` with its derived columns taken from its body: what a reader may rely on."""
    truth = body_columns(row.body)
    if truth is None:
        return row
    return replace(row, **{c: truth[c] for c in DERIVED_COLUMNS})


def column_check_rows(store: Store, stream: str) -> Iterator[EventRow]:
    """The rows of `stream` whose derived columns must be compared with their bodies: the
    store's own prefilter if it has one (SQLite), else every row."""
    suspects: Callable[[str], Iterator[EventRow]] | None = getattr(store, "column_suspects", None)
    return suspects(stream) if suspects is not None else store.scan(stream)


def stream_ends(store: Store, stream: str) -> tuple[EventRow | None, EventRow | None]:
    """The first and the last stored event of `stream`."""
    first = next(iter(store.scan(stream)), None)
    head = store.head(stream).seq
    last = next(iter(store.scan(stream, from_seq=max(head, 1))), None)
    return first, last


def checkpoint_row(v: Sequence[Any]) -> CheckpointRow:
    """A `CheckpointRow` from SQL values in `CHECKPOINT_COLUMNS` order."""
    return CheckpointRow(
        stream=v[0], origin=v[1], size=v[2], root=bytes(v[3]), note=bytes(v[4]), created_at=v[5]
    )


@dataclass(frozen=True)
class CheckpointRow:
    """A signed checkpoint of one stream, as stored: ``note`` is the complete C2SP signed note
    (checkpoint body, blank line, signature lines); ``size`` and ``root`` repeat what the note
    says so checkpoints can be found without parsing. ``created_at`` is when it was issued
    (not signed: the note carries no time)."""

    stream: str
    origin: str
    size: int
    root: bytes
    note: bytes
    created_at: str


@dataclass(frozen=True)
class EventFilter:
    """Read-side filters; every field optional. Times are RFC 3339 strings (lexically ordered)."""

    tool: str | None = None
    principal: str | None = None
    outcome: str | None = None
    kind: str | None = None
    stream: str | None = None
    since: str | None = None
    until: str | None = None


SCAN_PAGE = 5000


def leaf_scan_query(placeholder: str, columns: str, stored_body: str) -> str:
    """One page of `Store.scan_leaves` (params: stream, from, to, stream, from, to, limit):
    stored events and the hashes retention kept of pruned ones, in seq order. `columns` select
    from ``seq, timestamp, body, leaf_hash, chain_hash``, where `body` is `stored_body` for a
    stored event and NULL for a pruned one."""
    p = placeholder
    return (
        f"SELECT {columns} FROM ("
        f"SELECT seq, timestamp, {stored_body} AS body, leaf_hash, chain_hash FROM events "
        f"WHERE stream = {p} AND seq >= {p} AND seq <= {p} "
        "UNION ALL SELECT seq, timestamp, NULL, leaf_hash, chain_hash FROM pruned_events "
        f"WHERE stream = {p} AND seq >= {p} AND seq <= {p}) AS leaves ORDER BY seq LIMIT {p}"
    )


PRUNE_COPY = (
    "INSERT INTO pruned_events (stream, seq, event_id, timestamp, kind, leaf_hash, chain_hash, "
    "run_id) SELECT stream, seq, event_id, timestamp, kind, leaf_hash, chain_hash, {p} "
    "FROM events WHERE stream = {p} AND seq >= {p} AND seq <= {p}"
)
"""Copy what verification needs of the events in a range before their rows are deleted (the
stores' delete guard refuses to delete an event without this copy)."""

PRUNE_DELETE = "DELETE FROM events WHERE stream = {p} AND seq >= {p} AND seq <= {p}"


def ranges_of(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted seqs as inclusive ``(first, last)`` runs: ``[1, 2, 3, 7]`` -> ``[(1, 3), (7, 7)]``."""
    out: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def paged_scan(
    query: Callable[[str, Sequence[Any]], list[Any]],
    placeholder: str,
    stream: str,
    from_seq: int = 1,
) -> Iterator[EventRow]:
    """`Store.scan` for any SQL backend: keyset pages on (stream, seq), so a million-event
    stream never sits in memory at once. `query(sql, params)` runs one SELECT."""
    sql = (
        f"SELECT {EVENT_COLUMNS} FROM events WHERE stream = {placeholder} AND seq >= "
        f"{placeholder} ORDER BY seq LIMIT {placeholder}"
    )
    next_seq = from_seq
    while True:
        rows = query(sql, (stream, next_seq, SCAN_PAGE))
        for r in rows:
            yield event_row(r)
        if len(rows) < SCAN_PAGE:
            return
        next_seq = rows[-1][1] + 1


BODY_PLACEHOLDER = "{pattern}"
"""Where the LIKE pattern goes in a backend's `body_like` (the pattern is passed as bytes)."""


def find_query(
    where: EventFilter,
    limit: int | None,
    columns: str,
    placeholder: str,
    body_like: str = f"body LIKE {BODY_PLACEHOLDER}",
) -> tuple[str, list[Any]]:
    """The SQL of `Store.find` (newest first, so a limit keeps the newest; callers reverse) with
    its parameters, in the backend's `placeholder` style: one definition for every backend."""
    clauses: list[str] = []
    params: list[Any] = []
    if where.kind is not None:
        # The kind decides what is kept (holds, retention runs): a row whose kind column was
        # edited must still be found. Canonical bodies spell it `"kind":"..."` exactly; the
        # superset this finds is narrowed on the bodies by `found_rows`.
        clauses.append(
            f"(kind = {placeholder} OR {body_like.replace(BODY_PLACEHOLDER, placeholder)})"
        )
        params += [where.kind, f'%"kind":"{where.kind}"%'.encode()]
        limit = None
    for column, op, value in (
        ("tool", "=", where.tool),
        ("principal_id", "=", where.principal),
        ("outcome", "=", where.outcome),
        ("stream", "=", where.stream),
        ("timestamp", ">=", where.since),
        ("timestamp", "<", where.until),
    ):
        if value is not None:
            clauses.append(f"{column} {op} {placeholder}")
            params.append(value)
    sql = f"SELECT {columns} FROM events"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY timestamp DESC, stream DESC, seq DESC"
    if limit is not None:
        sql += f" LIMIT {placeholder}"
        params.append(limit)
    return sql, params


def started_details(row: EventRow | None) -> dict[str, Any] | None:
    """The details of `row` if it is a stream's hashed `started` lifecycle record."""
    if row is None:
        return None
    try:
        event = json.loads(row.body)
    except ValueError:
        return None
    details = event.get("details") if isinstance(event, dict) else None
    if event.get("kind") != "lifecycle" or not isinstance(details, dict):
        return None
    return details if details.get("phase") == "started" else None


def started_label(store: Store, stream: str) -> str | None:
    """The server name a stream's own hashed `started` record gives, if it gives one."""
    label = (started_details(next(iter(store.scan(stream)), None)) or {}).get("label")
    return label if isinstance(label, str) else None


def found_rows(rows: Iterable[EventRow], where: EventFilter, limit: int | None) -> list[EventRow]:
    """`Store.find`'s answer from the rows `find_query` selected (newest first): each row's
    derived columns taken from its body, the kind filter applied to those, oldest first."""
    out = [r for r in map(as_hashed, rows) if where.kind is None or r.kind == where.kind]
    if limit is not None:
        out = out[:limit]
    return out[::-1]


def prepare_row(event: AuditEvent, stream: str, head: StreamHead) -> EventRow:
    """Place `event` after `head`: assign the next seq, canonicalise, hash."""
    seq = head.seq + 1
    body = canonical_bytes(event.body(stream, seq))
    return EventRow(
        stream=stream,
        seq=seq,
        event_id=event.event_id,
        timestamp=event.timestamp,
        kind=event.kind,
        method=event.method,
        tool=event.tool,
        principal_id=event.principal.id,
        outcome=event.outcome,
        body=body,
        leaf_hash=leaf_hash(body),
        chain_hash=chain_hash(head.chain_hash, body),
    )


class Store(Protocol):
    """An append-only event store. There is deliberately no update method, and the only
    deletions are `prune` (bodies whose position and hashes are kept) and
    `delete_subject_key` (crypto-shredding)."""

    def create_stream(self, info: StreamInfo) -> None: ...

    def streams(self) -> list[StreamInfo]: ...

    def head(self, stream: str) -> StreamHead: ...

    def append_batch(self, rows: Sequence[EventRow]) -> None:
        """Append rows atomically. Raises `StoreError` if any (stream, seq) already exists."""
        ...

    def scan(self, stream: str, from_seq: int = 1) -> Iterator[EventRow]:
        """Rows of one stream in seq order (a stored gap shows as a jump in seq)."""
        ...

    def find(self, where: EventFilter, limit: int | None = None) -> list[EventRow]:
        """Matching rows, oldest first; with `limit`, the newest `limit` of them."""
        ...

    def get(self, event_id: str) -> EventRow | None: ...

    def count(self, stream: str | None = None) -> int: ...

    def stream_names(self) -> list[str]:
        """Every stream that has a `streams` row or any stored event, sorted. A verifier walks
        these rather than `streams()`, so deleting a stream's registration hides nothing."""
        ...

    def scan_leaves(
        self, stream: str, from_seq: int = 1, to_seq: int | None = None, *, bodies: bool = True
    ) -> Iterator[list[LeafRecord]]:
        """Pages of `LeafRecord`s of one stream in seq order, from `from_seq` up to `to_seq`
        (inclusive; default: the end). The fast path for verification. With `bodies=False`
        the body is left out (empty bytes): hashes and positions only."""
        ...

    def leaf_hashes(self, stream: str, from_seq: int, to_seq: int) -> list[tuple[int, bytes]]:
        """``(seq, stored leaf hash)`` of the rows in ``from_seq..to_seq``, in seq order: the
        cheap read-back the checkpointer does before each checkpoint."""
        ...

    def append_checkpoint(self, row: CheckpointRow) -> None:
        """Append one signed checkpoint. Checkpoints are append-only, like events."""
        ...

    def checkpoints(self, stream: str | None = None, min_size: int = 0) -> list[CheckpointRow]:
        """Stored checkpoints (of one stream, or all) of at least `min_size` leaves, ordered by
        stream, size and time."""
        ...

    def latest_checkpoint(self, stream: str) -> CheckpointRow | None:
        """The stream's checkpoint of the largest size (the latest issued among equals)."""
        ...

    def prune(self, ranges: Mapping[str, Sequence[tuple[int, int]]], run_id: str) -> int:
        """Delete the bodies of the events in `ranges` (per stream, inclusive seq ranges),
        keeping their position and hashes in `pruned_events`, in one transaction. Returns how
        many events were pruned (seqs already pruned or absent are skipped)."""
        ...

    def pruned_ranges(self, stream: str | None = None) -> list[PrunedRange]:
        """What retention deleted, as contiguous ranges per stream and run."""
        ...

    def put_subject_key(self, key_id: str, wrapped: bytes, created_at: str) -> bytes:
        """Store a data subject's wrapped key unless one exists; return the stored one (so
        concurrent writers agree on one key)."""
        ...

    def subject_key(self, key_id: str) -> bytes | None: ...

    def subject_key_ids(self, prefix: str) -> list[str]:
        """The ids of the stored keys that start with `prefix`, sorted."""
        ...

    def delete_subject_key(self, key_id: str) -> bool:
        """Destroy a subject key (crypto-shredding), leaving no copy in the store's files.
        Returns whether it existed."""
        ...

    def close(self) -> None: ...
