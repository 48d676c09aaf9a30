"""The embedded store: one SQLite file in WAL mode, safe for several writer processes."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mcp_notary.errors import StoreError, StoreVersionError
from mcp_notary.ledger.private import PRIVATE_FILE, exposure, make_private_dir
from mcp_notary.ledger.store import (
    BODY_PLACEHOLDER,
    DERIVED_COLUMNS,
    EVENT_COLUMNS,
    PRUNE_COPY,
    PRUNE_DELETE,
    STORE_SCHEMA_VERSION,
    CheckpointRow,
    EventFilter,
    EventRow,
    LeafRecord,
    PrunedRange,
    StreamHead,
    StreamInfo,
    checkpoint_row,
    column_path,
    event_row,
    find_query,
    found_rows,
    paged_scan,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams (
    stream TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    process_start TEXT NOT NULL,
    server_name TEXT
);
CREATE TABLE IF NOT EXISTS events (
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    kind TEXT NOT NULL,
    method TEXT,
    tool TEXT,
    principal_id TEXT,
    outcome TEXT,
    body BLOB NOT NULL,
    leaf_hash BLOB NOT NULL,
    chain_hash BLOB NOT NULL,
    PRIMARY KEY (stream, seq)
);
CREATE INDEX IF NOT EXISTS events_event_id ON events (event_id);
CREATE INDEX IF NOT EXISTS events_timestamp ON events (timestamp);
CREATE INDEX IF NOT EXISTS events_tool ON events (tool, timestamp);
CREATE INDEX IF NOT EXISTS events_principal ON events (principal_id, timestamp);
-- Append-only by construction: the code has no UPDATE or DELETE path, and these triggers stop
-- accidents by other tools. They are no defence against an attacker; the hash chain is.
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'mcp-notary events are append-only'); END;
-- Retention may delete an event's row only once its position and hashes are kept in
-- pruned_events (store schema 2; schema 1 refused every delete).
CREATE TABLE IF NOT EXISTS pruned_events (
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    kind TEXT NOT NULL,
    leaf_hash BLOB NOT NULL,
    chain_hash BLOB NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (stream, seq)
);
CREATE TRIGGER IF NOT EXISTS pruned_events_no_update BEFORE UPDATE ON pruned_events
    BEGIN SELECT RAISE(ABORT, 'mcp-notary pruned events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS pruned_events_no_delete BEFORE DELETE ON pruned_events
    BEGIN SELECT RAISE(ABORT, 'mcp-notary pruned events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_delete_only_pruned BEFORE DELETE ON events
    WHEN NOT EXISTS (SELECT 1 FROM pruned_events p WHERE p.stream = old.stream
                     AND p.seq = old.seq AND p.leaf_hash = old.leaf_hash
                     AND p.chain_hash = old.chain_hash)
    BEGIN SELECT RAISE(ABORT, 'mcp-notary events are append-only'); END;
-- Per-subject payload keys (wrapped under a key kept outside the store). Erasure deletes a
-- row for good, so this table alone allows DELETE.
CREATE TABLE IF NOT EXISTS subject_keys (
    key_id TEXT PRIMARY KEY,
    wrapped BLOB NOT NULL,
    created_at TEXT NOT NULL
);
-- Signed checkpoints (C2SP signed notes), append-only like the events they commit to.
CREATE TABLE IF NOT EXISTS checkpoints (
    stream TEXT NOT NULL,
    origin TEXT NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_stream ON checkpoints (stream, size);
CREATE TRIGGER IF NOT EXISTS checkpoints_no_update BEFORE UPDATE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'mcp-notary checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'mcp-notary checkpoints are append-only'); END;
"""


def store_files(path: Path) -> tuple[Path, ...]:
    """The database and the side files SQLite keeps beside it (WAL, shared memory, journal)."""
    return (path, *(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm", "-journal")))


def exposed_store(path: Path) -> str | None:
    """Why the store at `path` is open to other local accounts, or None if it is not."""
    found = exposure(*store_files(path))
    if not found:
        return None
    modes = ", ".join(f"{p.name} {mode:04o}" for p, mode in found)
    names = " ".join(str(p) for p, _ in found)
    return (
        f"audit store {path} can be read by other users ({modes}): they can copy the trail "
        f"without roles or a read audit (run: chmod 600 {names})"
    )


_warned: set[Path] = set()
_warned_lock = threading.Lock()


def _warn_if_exposed(path: Path) -> None:
    """Say once per process that a store is open to others (every open would be noise)."""
    message = exposed_store(path)
    with _warned_lock:
        if message is None or path in _warned:
            return
        _warned.add(path)
    print(f"mcp-notary: warning: {message}", file=sys.stderr, flush=True)


def _create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite opens it: SQLite would create it with the
    umask's mode (0644 under 022), and it gives the -wal and -shm files the database's mode."""
    make_private_dir(path.parent)
    # An existing store (or another process's new one) is opened by SQLite as it is.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))


class SQLiteStore:
    """`Store` over one SQLite file. One connection per instance, guarded by a lock so a writer
    thread and readers in the same process can share it."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "NORMAL",
        readonly: bool = False,
        busy_timeout_ms: int = 30_000,
    ):
        self.path = Path(path)
        self._readonly = readonly
        self._lock = threading.Lock()
        try:
            if readonly:
                if not self.path.exists():
                    raise StoreError(f"no audit store at {self.path}")
                self._db = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
                )
            else:
                _create_private(self.path)
                self._db = sqlite3.connect(
                    self.path,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=busy_timeout_ms / 1000,
                )
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if not readonly:
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute(f"PRAGMA synchronous = {synchronous}")
                self._init_schema()
            self._check_version()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open audit store {self.path}: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"cannot create audit store {self.path}: {exc}") from exc
        _warn_if_exposed(self.path)

    def _init_schema(self) -> None:
        # One transaction: concurrent first starts must not race on creation or migration.
        with self._lock:
            try:
                self._db.executescript("BEGIN IMMEDIATE;" + _SCHEMA)
                db = self._db
                row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    db.execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                        (str(STORE_SCHEMA_VERSION),),
                    )
                elif row[0] == "1":
                    # 1 -> 2: the new tables and guard were just created; the old trigger
                    # that refused every delete goes.
                    db.execute("DROP TRIGGER IF EXISTS events_no_delete")
                    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
                db.execute("COMMIT")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        self._version = int(row[0]) if row else 0
        # A schema-1 store opened read-only is read as it is (nothing was ever pruned).
        readable = (1, STORE_SCHEMA_VERSION) if self._readonly else (STORE_SCHEMA_VERSION,)
        if row is None or self._version not in readable:
            found = row[0] if row else "none"
            raise StoreVersionError(
                f"{self.path} has store schema version {found}; this release reads version "
                f"{STORE_SCHEMA_VERSION}"
            )

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"audit store query failed: {exc}") from exc

    def create_stream(self, info: StreamInfo) -> None:
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO streams VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        info.stream,
                        info.created_at,
                        info.host,
                        info.pid,
                        info.process_start,
                        info.server_name,
                    ),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot create stream {info.stream}: {exc}") from exc

    def streams(self) -> list[StreamInfo]:
        rows = self._query("SELECT * FROM streams ORDER BY created_at, stream")
        return [StreamInfo(*r) for r in rows]

    def _has_pruned(self, stream: str | None = None) -> bool:
        """Whether retention pruned anything (of `stream`): only then do reads also look at
        `pruned_events`, so an unpruned store reads as fast as before."""
        if self._version < 2:
            return False
        if stream is None:
            return bool(self._query("SELECT 1 FROM pruned_events LIMIT 1"))
        return bool(self._query("SELECT 1 FROM pruned_events WHERE stream = ? LIMIT 1", (stream,)))

    def _last_row(self, table: str, columns: str, stream: str, below: int) -> Any:
        rows = self._query(
            f"SELECT seq, {columns} FROM {table} WHERE stream = ? AND seq < ? "
            "ORDER BY seq DESC LIMIT 1",
            (stream, below),
        )
        return rows[0] if rows else None

    def _last_leaf(self, columns: str, stream: str, below: int = 2**63 - 1) -> Any:
        """(seq, *columns) of the last stored or pruned event of `stream` before `below`."""
        found = [self._last_row("events", columns, stream, below)]
        if self._has_pruned(stream):
            found.append(self._last_row("pruned_events", columns, stream, below))
        present = [r for r in found if r is not None]
        return max(present, key=lambda r: r[0]) if present else None

    def head(self, stream: str) -> StreamHead:
        row = self._last_leaf("chain_hash", stream)
        return StreamHead(row[0], bytes(row[1])) if row else StreamHead()

    def append_batch(self, rows: Sequence[EventRow]) -> None:
        if not rows:
            return
        values = [
            (
                r.stream,
                r.seq,
                r.event_id,
                r.timestamp,
                r.kind,
                r.method,
                r.tool,
                r.principal_id,
                r.outcome,
                r.body,
                r.leaf_hash,
                r.chain_hash,
            )
            for r in rows
        ]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    values,
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(f"append failed: {exc}") from exc

    def scan(self, stream: str, from_seq: int = 1) -> Iterator[EventRow]:
        return paged_scan(self._query, "?", stream, from_seq)

    def column_suspects(self, stream: str) -> Iterator[EventRow]:
        """Rows of `stream` whose derived columns SQLite's JSON reading of the body does not
        reproduce (or whose body is not JSON): the verifier's prefilter, which confirms each
        in Python. Reading every body in C costs a fraction of parsing it in Python."""
        body = "CAST(body AS TEXT)"
        differs = " OR ".join(
            f"{c} IS NOT json_extract({body}, '$.{'.'.join(column_path(c))}')"
            for c in DERIVED_COLUMNS
        )
        sql = (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE stream = ? AND seq >= ? AND "
            f"(NOT json_valid({body}) OR {differs}) ORDER BY seq LIMIT ?"
        )
        next_seq = 1
        while True:
            rows = self._query(sql, (stream, next_seq, 1000))
            yield from (event_row(r) for r in rows)
            if len(rows) < 1000:
                return
            next_seq = rows[-1][1] + 1

    def find(self, where: EventFilter, limit: int | None = None) -> list[EventRow]:
        # SQLite's LIKE does not match inside a BLOB: the body is compared as text.
        like = f"CAST(body AS TEXT) LIKE CAST({BODY_PLACEHOLDER} AS TEXT)"
        sql, params = find_query(where, limit, EVENT_COLUMNS, "?", like)
        return found_rows(map(event_row, self._query(sql, params)), where, limit)

    def get(self, event_id: str) -> EventRow | None:
        rows = self._query(f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?", (event_id,))
        return event_row(rows[0]) if rows else None

    def count(self, stream: str | None = None) -> int:
        if stream is None:
            return int(self._query("SELECT count(*) FROM events")[0][0])
        return int(self._query("SELECT count(*) FROM events WHERE stream = ?", (stream,))[0][0])

    def stream_names(self) -> list[str]:
        pruned = " UNION SELECT DISTINCT stream FROM pruned_events" if self._has_pruned() else ""
        rows = self._query(
            f"SELECT stream FROM streams UNION SELECT DISTINCT stream FROM events{pruned} "
            "ORDER BY 1"
        )
        return [r[0] for r in rows]

    def scan_leaves(
        self, stream: str, from_seq: int = 1, to_seq: int | None = None, *, bodies: bool = True
    ) -> Iterator[list[LeafRecord]]:
        page = 20_000
        last = to_seq if to_seq is not None else 2**63 - 1
        # BLOB columns come back as bytes: the rows are already the tuples we promise. The
        # casts keep the promised types even if someone stored TEXT or NULL in a column
        # (SQLite lets a tamperer do that): the verifier reports, never crashes. Only a
        # pruned event's body is NULL.
        stored = "IFNULL(CAST(body AS BLOB), x'')" if bodies else "x''"
        columns = (
            "CAST(seq AS INTEGER), IFNULL(CAST(timestamp AS TEXT), ''), {body}, "
            "IFNULL(CAST(leaf_hash AS BLOB), x''), IFNULL(CAST(chain_hash AS BLOB), x'')"
        )
        where = "WHERE stream = ? AND seq >= ? AND seq <= ?"
        pruned = self._has_pruned(stream)
        if pruned:
            # A compound ordered by the raw seq, so SQLite merges two index-ordered scans
            # under the LIMIT; the extra first column is dropped below.
            query = (
                f"SELECT seq, {columns.format(body=stored)} FROM events {where} UNION ALL "
                f"SELECT seq, {columns.format(body='NULL')} FROM pruned_events {where} "
                "ORDER BY 1 LIMIT ?"
            )
        else:
            query = f"SELECT {columns.format(body=stored)} FROM events {where} ORDER BY seq LIMIT ?"
        next_seq = from_seq
        while next_seq <= last:
            params: tuple[Any, ...] = (stream, next_seq, last)
            params = (*params, *params, page) if pruned else (*params, page)
            raw = self._query(query, params)
            rows: list[LeafRecord] = [r[1:] for r in raw] if pruned else raw
            if rows:
                yield rows
            if len(rows) < page:
                return
            next_seq = rows[-1][0] + 1

    def leaf_hashes(self, stream: str, from_seq: int, to_seq: int) -> list[tuple[int, bytes]]:
        tables = ["events", "pruned_events"] if self._has_pruned(stream) else ["events"]
        rows = sorted(
            r
            for table in tables
            for r in self._query(
                f"SELECT seq, leaf_hash FROM {table} WHERE stream = ? AND seq >= ? AND seq <= ? "
                "ORDER BY seq",
                (stream, from_seq, to_seq),
            )
        )
        return [(r[0], r[1] if isinstance(r[1], bytes) else bytes(r[1] or b"")) for r in rows]

    def row_before(self, stream: str, seq: int) -> tuple[bytes, str] | None:
        """(chain hash, timestamp) of the last stored row before `seq` (parallel verifier)."""
        row = self._last_leaf("chain_hash, timestamp", stream, seq)
        return (bytes(row[1]), row[2]) if row else None

    def seq_boundaries(self, stream: str, every: int) -> list[int]:
        """The seq of the 1st, (every+1)th, (2*every+1)th... stored row of a stream."""
        rows = self._query(
            "SELECT seq FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n "
            f"FROM {self._seqs(stream)} WHERE stream = ?) WHERE (n - 1) % ? = 0",
            (stream, every),
        )
        return [int(r[0]) for r in rows]

    def _seqs(self, stream: str) -> str:
        if not self._has_pruned(stream):
            return "events"
        return "(SELECT stream, seq FROM events UNION ALL SELECT stream, seq FROM pruned_events)"

    def append_checkpoint(self, row: CheckpointRow) -> None:
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO checkpoints (stream, origin, size, root, note, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (row.stream, row.origin, row.size, row.root, row.note, row.created_at),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot append checkpoint of {row.stream}: {exc}") from exc

    def _has_checkpoints_table(self) -> bool:
        # A store written before checkpoints existed, opened read-only, has no such table:
        # that is "no checkpoints", which the verifier reports, not a broken store.
        rows = self._query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints'"
        )
        return bool(rows)

    def checkpoints(self, stream: str | None = None, min_size: int = 0) -> list[CheckpointRow]:
        if not self._has_checkpoints_table():
            return []
        sql = "SELECT stream, origin, size, root, note, created_at FROM checkpoints WHERE size >= ?"
        params: tuple[int | str, ...] = (min_size,)
        if stream is not None:
            sql += " AND stream = ?"
            params = (min_size, stream)
        sql += " ORDER BY stream, size, created_at, rowid"
        return [checkpoint_row(r) for r in self._query(sql, params)]

    def latest_checkpoint(self, stream: str) -> CheckpointRow | None:
        if not self._has_checkpoints_table():
            return None
        rows = self._query(
            "SELECT stream, origin, size, root, note, created_at FROM checkpoints "
            "WHERE stream = ? ORDER BY size DESC, created_at DESC, rowid DESC LIMIT 1",
            (stream,),
        )
        return checkpoint_row(rows[0]) if rows else None

    def prune(self, ranges: Mapping[str, Sequence[tuple[int, int]]], run_id: str) -> int:
        pruned = 0
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for stream, stream_ranges in ranges.items():
                    for first, last in stream_ranges:
                        bounds = (stream, first, last)
                        self._db.execute(PRUNE_COPY.format(p="?"), (run_id, *bounds))
                        pruned += self._db.execute(PRUNE_DELETE.format(p="?"), bounds).rowcount
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(f"cannot prune: {exc}") from exc
        return pruned

    def pruned_ranges(self, stream: str | None = None) -> list[PrunedRange]:
        if not self._has_pruned(stream):
            return []
        # Gaps-and-islands: consecutive seqs of one run share seq - row_number().
        where = "WHERE stream = ?" if stream is not None else ""
        rows = self._query(
            "SELECT stream, min(seq), max(seq), run_id FROM (SELECT stream, seq, run_id, "
            "seq - row_number() OVER (PARTITION BY stream, run_id ORDER BY seq) AS island "
            f"FROM pruned_events {where}) GROUP BY stream, run_id, island "
            "ORDER BY stream, min(seq)",
            (stream,) if stream is not None else (),
        )
        return [PrunedRange(r[0], int(r[1]), int(r[2]), r[3]) for r in rows]

    def put_subject_key(self, key_id: str, wrapped: bytes, created_at: str) -> bytes:
        with self._lock:
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO subject_keys (key_id, wrapped, created_at) "
                    "VALUES (?, ?, ?)",
                    (key_id, wrapped, created_at),
                )
                row = self._db.execute(
                    "SELECT wrapped FROM subject_keys WHERE key_id = ?", (key_id,)
                ).fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot store a subject key: {exc}") from exc
        return bytes(row[0])

    def subject_key(self, key_id: str) -> bytes | None:
        if self._version < 2:
            return None
        rows = self._query("SELECT wrapped FROM subject_keys WHERE key_id = ?", (key_id,))
        return bytes(rows[0][0]) if rows else None

    def subject_key_ids(self, prefix: str) -> list[str]:
        if self._version < 2:
            return []
        rows = self._query(
            "SELECT key_id FROM subject_keys WHERE substr(key_id, 1, ?) = ? ORDER BY key_id",
            (len(prefix), prefix),
        )
        return [r[0] for r in rows]

    def delete_subject_key(self, key_id: str) -> bool:
        with self._lock:
            try:
                # secure_delete zeroes the freed bytes; the checkpoint then moves the zeroed
                # page into the main file and empties the WAL, so no copy of the key is left.
                self._db.execute("PRAGMA secure_delete = ON")
                deleted = self._db.execute(
                    "DELETE FROM subject_keys WHERE key_id = ?", (key_id,)
                ).rowcount
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot delete a subject key: {exc}") from exc
        return deleted > 0

    def close(self) -> None:
        with self._lock:
            self._db.close()
