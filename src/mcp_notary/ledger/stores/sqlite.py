"""The embedded store: one SQLite file in WAL mode, safe for several writer processes."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mcp_notary.errors import StoreError, StoreVersionError
from mcp_notary.ledger.store import (
    EVENT_COLUMNS,
    STORE_SCHEMA_VERSION,
    CheckpointRow,
    EventFilter,
    EventRow,
    LeafRecord,
    StreamHead,
    StreamInfo,
    checkpoint_row,
    event_row,
    find_query,
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
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'mcp-notary events are append-only'); END;
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
        self._lock = threading.Lock()
        try:
            if readonly:
                if not self.path.exists():
                    raise StoreError(f"no audit store at {self.path}")
                self._db = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
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

    def _init_schema(self) -> None:
        # One script, one transaction: concurrent first starts must not race on creation.
        script = (
            "BEGIN IMMEDIATE;"
            + _SCHEMA
            + "INSERT OR IGNORE INTO meta (key, value) VALUES "
            + f"('schema_version', '{STORE_SCHEMA_VERSION}');"
            + "COMMIT;"
        )
        with self._lock:
            try:
                self._db.executescript(script)
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or int(row[0]) != STORE_SCHEMA_VERSION:
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

    def head(self, stream: str) -> StreamHead:
        rows = self._query(
            "SELECT seq, chain_hash FROM events WHERE stream = ? ORDER BY seq DESC LIMIT 1",
            (stream,),
        )
        return StreamHead(rows[0][0], bytes(rows[0][1])) if rows else StreamHead()

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

    def find(self, where: EventFilter, limit: int | None = None) -> list[EventRow]:
        sql, params = find_query(where, limit, EVENT_COLUMNS, "?")
        return [event_row(r) for r in reversed(self._query(sql, params))]

    def get(self, event_id: str) -> EventRow | None:
        rows = self._query(f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?", (event_id,))
        return event_row(rows[0]) if rows else None

    def count(self, stream: str | None = None) -> int:
        if stream is None:
            return int(self._query("SELECT count(*) FROM events")[0][0])
        return int(self._query("SELECT count(*) FROM events WHERE stream = ?", (stream,))[0][0])

    def stream_names(self) -> list[str]:
        rows = self._query(
            "SELECT stream FROM streams UNION SELECT DISTINCT stream FROM events ORDER BY 1"
        )
        return [r[0] for r in rows]

    def scan_leaves(
        self, stream: str, from_seq: int = 1, to_seq: int | None = None, *, bodies: bool = True
    ) -> Iterator[list[LeafRecord]]:
        page = 20_000
        body = "IFNULL(CAST(body AS BLOB), x'')" if bodies else "x''"
        last = to_seq if to_seq is not None else 2**63 - 1
        next_seq = from_seq
        while next_seq <= last:
            # BLOB columns come back as bytes: the rows are already the tuples we promise.
            # The casts keep the promised types even if someone stored TEXT or NULL in a
            # column (SQLite lets a tamperer do that): the verifier reports, never crashes.
            rows: list[LeafRecord] = self._query(
                f"SELECT CAST(seq AS INTEGER), IFNULL(CAST(timestamp AS TEXT), ''), {body}, "
                "IFNULL(CAST(leaf_hash AS BLOB), x''), IFNULL(CAST(chain_hash AS BLOB), x'') "
                "FROM events "
                "WHERE stream = ? AND seq >= ? AND seq <= ? ORDER BY seq LIMIT ?",
                (stream, next_seq, last, page),
            )
            if rows:
                yield rows
            if len(rows) < page:
                return
            next_seq = rows[-1][0] + 1

    def leaf_hashes(self, stream: str, from_seq: int, to_seq: int) -> list[tuple[int, bytes]]:
        rows = self._query(
            "SELECT seq, leaf_hash FROM events WHERE stream = ? AND seq >= ? AND seq <= ? "
            "ORDER BY seq",
            (stream, from_seq, to_seq),
        )
        return [(r[0], r[1] if isinstance(r[1], bytes) else bytes(r[1] or b"")) for r in rows]

    def row_before(self, stream: str, seq: int) -> tuple[bytes, str] | None:
        """(chain hash, timestamp) of the last stored row before `seq` (parallel verifier)."""
        rows = self._query(
            "SELECT chain_hash, timestamp FROM events WHERE stream = ? AND seq < ? "
            "ORDER BY seq DESC LIMIT 1",
            (stream, seq),
        )
        return (bytes(rows[0][0]), rows[0][1]) if rows else None

    def seq_boundaries(self, stream: str, every: int) -> list[int]:
        """The seq of the 1st, (every+1)th, (2*every+1)th... stored row of a stream."""
        rows = self._query(
            "SELECT seq FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n "
            "FROM events WHERE stream = ?) WHERE (n - 1) % ? = 0",
            (stream, every),
        )
        return [int(r[0]) for r in rows]

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

    def close(self) -> None:
        with self._lock:
            self._db.close()
