"""The shared store: PostgreSQL via psycopg 3, for many proxies on many hosts.

Every proxy process writes its own stream (its own seq, chain and Merkle tree), so writers
never contend on a sequence: the only shared structures are the primary key and the monthly
partitions of `events` (pg_partitions.py).
Appends use COPY inside one transaction per batch. A broken connection is dropped and
reopened on the next call, so the ledger writer's retry loop rides out a database restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import platformdirs
import psycopg
from psycopg import sql

from mcp_notary.errors import ConfigError, StoreError, StoreVersionError
from mcp_notary.ledger.spool import DEFAULT_MAX_BYTES, SpoolingStore, StoreUnavailableError
from mcp_notary.ledger.store import (
    CHECKPOINT_COLUMNS,
    EVENT_COLUMNS,
    CheckpointRow,
    EventFilter,
    EventRow,
    LeafRecord,
    PrunedRange,
    Store,
    StreamHead,
    StreamInfo,
    checkpoint_row,
    event_row,
    find_query,
    found_rows,
    leaf_scan_query,
    paged_scan,
)
from mcp_notary.ledger.stores.pg_migrations import (
    BOOTSTRAP,
    LATEST_VERSION,
    MIGRATION_LOCK_ID,
    MIGRATIONS,
)
from mcp_notary.ledger.stores.pg_partitions import (
    PRUNE_COPY_BY_MONTH,
    create_partition,
    create_partition_ahead,
    month_of,
    next_month,
    remove_pruned,
)

CONNECT_TIMEOUT_S = 5
_T = TypeVar("_T")


def redact_url(url: str) -> str:
    """`url` without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://…"
    host = info.get("host", "")
    port = info.get("port", "")
    return f"postgresql://{info.get('user', '')}@{host}{':' if port else ''}{port}/" + str(
        info.get("dbname", "")
    )


def connect(
    url: str, *, readonly: bool = False, settings: Mapping[str, str | int] | None = None
) -> psycopg.Connection[Any]:
    """An autocommit connection (with a connect timeout unless the URL sets one); read-only
    sessions refuse every write; `settings` are session parameters (`SET name = value`)."""
    kwargs: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in url:
        kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
    db = psycopg.connect(url, **kwargs)
    if readonly:
        db.execute("SET default_transaction_read_only = on")
    for name, value in (settings or {}).items():
        db.execute(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(str(value))))
    return db


def close_quietly(db: psycopg.Connection[Any] | None) -> None:
    if db is not None:
        with contextlib.suppress(psycopg.Error):  # closing a dead connection may fail
            db.close()


def schema_version(db: psycopg.Connection[Any]) -> int | None:
    """The store's applied migration version; None where there is no store."""
    exists = db.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return None
    row = db.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def check_version(db: psycopg.Connection[Any], name: str) -> None:
    """Refuse a missing store, or one of a version this release does not read."""
    version = schema_version(db)
    if version is None:
        raise StoreError(f"no audit store at {name}")
    if version != LATEST_VERSION:
        raise StoreVersionError(
            f"{name} has store schema version {version}; this release reads version "
            f"{LATEST_VERSION}"
        )


class PostgresStore:
    """`Store` over one PostgreSQL schema (the connection's `search_path`). One connection per
    instance, guarded by a lock so a writer thread and readers in one process can share it."""

    def __init__(
        self, url: str, *, readonly: bool = False, synchronous_commit: str | None = None
    ) -> None:
        self.url = url
        self.name = redact_url(url)
        self.readonly = readonly
        self._synchronous_commit = synchronous_commit
        self._lock = threading.Lock()
        self._db: psycopg.Connection[Any] | None = None
        self._months: set[str] = set()  # months whose partition this writer has ensured
        self._looked_ahead: set[str] = set()  # months whose next one it tried to make ahead
        with self._lock:
            try:
                db = self._connection()
                if readonly:
                    self._check_version(db)
                else:
                    self._migrate(db)
            except psycopg.Error as exc:
                self._drop()
                raise StoreError(f"cannot open audit store {self.name}: {exc}") from exc
            except StoreError:
                self._drop()
                raise

    # -- connection ----------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        """The open connection, reconnecting if the last one broke. Caller holds the lock."""
        if self._db is not None and not self._db.closed and not self._db.broken:
            return self._db
        self._drop()
        sync = self._synchronous_commit
        settings = {"synchronous_commit": sync} if sync is not None else None
        self._db = connect(self.url, readonly=self.readonly, settings=settings)
        return self._db

    def _drop(self) -> None:
        close_quietly(self._db)
        self._db = None

    def _run(self, what: str, fn: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """Call `fn(connection)` under the lock; translate driver errors, and drop a broken
        connection so the next call reconnects."""
        with self._lock:
            try:
                return fn(self._connection())
            except psycopg.Error as exc:
                lost = self._db is None or self._db.broken or self._db.closed
                if lost or isinstance(exc, psycopg.OperationalError):
                    self._drop()
                    # Unreachable, not refused: the spool may hold the rows until it is back.
                    raise StoreUnavailableError(f"{what} failed ({self.name}): {exc}") from exc
                raise StoreError(f"{what} failed ({self.name}): {exc}") from exc

    def _query(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        def run(db: psycopg.Connection[Any]) -> list[Any]:
            return db.execute(query.encode(), params).fetchall()

        return self._run("audit store query", run)

    # -- schema --------------------------------------------------------------------------------

    def _check_version(self, db: psycopg.Connection[Any]) -> None:
        check_version(db, self.name)

    def _migrate(self, db: psycopg.Connection[Any]) -> None:
        version = schema_version(db)
        if version == LATEST_VERSION:
            return  # the common case, and the only one a writer-role login can pass
        if version is not None and version > LATEST_VERSION:
            self._check_version(db)
        with db.transaction():
            # Serialise concurrent first starts; the lock ends with the transaction.
            db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
            db.execute(BOOTSTRAP)
            schema_row = db.execute("SELECT quote_ident(current_schema())").fetchone()
            if schema_row is None or schema_row[0] is None:
                raise StoreError(f"{self.name}: no schema on the search_path to create the store")
            version = schema_version(db) or 0
            for number, name, script in MIGRATIONS:
                if number <= version:
                    continue
                db.execute(script.replace("{schema}", schema_row[0]).encode())
                db.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (number, name)
                )
        self._check_version(db)

    # -- Store ---------------------------------------------------------------------------------

    def create_stream(self, info: StreamInfo) -> None:
        self._run(
            f"creating stream {info.stream}",
            lambda db: db.execute(
                "INSERT INTO streams VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    info.stream,
                    info.created_at,
                    info.host,
                    info.pid,
                    info.process_start,
                    info.server_name,
                ),
            ),
        )

    def streams(self) -> list[StreamInfo]:
        rows = self._query(
            "SELECT stream, created_at, host, pid, process_start, server_name FROM streams "
            "ORDER BY created_at, stream"
        )
        return [StreamInfo(*r) for r in rows]

    def head(self, stream: str) -> StreamHead:
        rows = self._query(
            "(SELECT seq, chain_hash FROM events WHERE stream = %s ORDER BY seq DESC LIMIT 1) "
            "UNION ALL (SELECT seq, chain_hash FROM pruned_events WHERE stream = %s "
            "ORDER BY seq DESC LIMIT 1) ORDER BY seq DESC LIMIT 1",
            (stream, stream),
        )
        return StreamHead(rows[0][0], bytes(rows[0][1])) if rows else StreamHead()

    def append_batch(self, rows: Sequence[EventRow]) -> None:
        if not rows:
            return

        months = [month_of(r.timestamp) for r in rows]

        def run(db: psycopg.Connection[Any]) -> None:
            # Each in its own transaction, so the table lock is held briefly.
            for month in sorted(set(months) - self._months):
                if month:
                    create_partition(db, month)
                self._months.add(month)
            for month in sorted(set(months) - self._looked_ahead):
                self._looked_ahead.add(month)  # once: a failed try is not retried per batch
                ahead = next_month(month) if month else ""
                if ahead and ahead not in self._months and create_partition_ahead(db, ahead):
                    self._months.add(ahead)
            # COPY is several times faster than INSERT for a batch; a duplicate (stream, seq)
            # still fails the whole statement, and so the whole batch.
            with (
                db.transaction(),
                db.cursor() as cur,
                cur.copy(f"COPY events ({EVENT_COLUMNS}, month) FROM STDIN") as copy,
            ):
                for r, month in zip(rows, months, strict=True):
                    copy.write_row(
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
                            month,
                        )
                    )

        self._run("append", run)

    def scan(self, stream: str, from_seq: int = 1) -> Iterator[EventRow]:
        return paged_scan(self._query, "%s", stream, from_seq)

    def find(self, where: EventFilter, limit: int | None = None) -> list[EventRow]:
        sql, params = find_query(where, limit, EVENT_COLUMNS, "%s")
        return found_rows(map(event_row, self._query(sql, params)), where, limit)

    def get(self, event_id: str) -> EventRow | None:
        rows = self._query(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = %s LIMIT 1", (event_id,)
        )
        return event_row(rows[0]) if rows else None

    def count(self, stream: str | None = None) -> int:
        if stream is None:
            return int(self._query("SELECT count(*) FROM events")[0][0])
        return int(self._query("SELECT count(*) FROM events WHERE stream = %s", (stream,))[0][0])

    def stream_names(self) -> list[str]:
        # A loose index scan over the primary key: one probe per stream, not a full scan.
        def loose_scan(table: str) -> str:
            return (
                f"WITH RECURSIVE s(stream) AS (SELECT min(stream) FROM {table} UNION ALL "
                f"SELECT (SELECT min(e.stream) FROM {table} e WHERE e.stream > s.stream) "
                "FROM s WHERE s.stream IS NOT NULL) SELECT stream FROM s WHERE stream IS NOT NULL"
            )

        rows = self._query(
            f"({loose_scan('events')}) UNION ({loose_scan('pruned_events')}) "
            "UNION SELECT stream FROM streams ORDER BY 1"
        )
        return [r[0] for r in rows]

    def scan_leaves(
        self, stream: str, from_seq: int = 1, to_seq: int | None = None, *, bodies: bool = True
    ) -> Iterator[list[LeafRecord]]:
        page = 20_000
        query = leaf_scan_query(
            "%s", "seq, timestamp, body, leaf_hash, chain_hash", "body" if bodies else "''::bytea"
        )
        last = to_seq if to_seq is not None else 2**63 - 1
        next_seq = from_seq
        while next_seq <= last:
            rows: list[LeafRecord] = self._query(
                query, (stream, next_seq, last, stream, next_seq, last, page)
            )
            if rows:
                yield rows
            if len(rows) < page:
                return
            next_seq = rows[-1][0] + 1

    def leaf_hashes(self, stream: str, from_seq: int, to_seq: int) -> list[tuple[int, bytes]]:
        rows = self._query(
            "SELECT seq, leaf_hash FROM events WHERE stream = %s AND seq >= %s AND seq <= %s "
            "UNION ALL SELECT seq, leaf_hash FROM pruned_events WHERE stream = %s AND seq >= %s "
            "AND seq <= %s ORDER BY seq",
            (stream, from_seq, to_seq, stream, from_seq, to_seq),
        )
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def append_checkpoint(self, row: CheckpointRow) -> None:
        self._run(
            f"appending a checkpoint of {row.stream}",
            lambda db: db.execute(
                f"INSERT INTO checkpoints ({CHECKPOINT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",
                (row.stream, row.origin, row.size, row.root, row.note, row.created_at),
            ),
        )

    def checkpoints(self, stream: str | None = None, min_size: int = 0) -> list[CheckpointRow]:
        query = f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE size >= %s"
        params: tuple[int | str, ...] = (min_size,)
        if stream is not None:
            query += " AND stream = %s"
            params = (min_size, stream)
        query += " ORDER BY stream, size, created_at, id"
        return [checkpoint_row(r) for r in self._query(query, params)]

    def latest_checkpoint(self, stream: str) -> CheckpointRow | None:
        rows = self._query(
            f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE stream = %s "
            "ORDER BY size DESC, created_at DESC, id DESC LIMIT 1",
            (stream,),
        )
        return checkpoint_row(rows[0]) if rows else None

    def prune(self, ranges: Mapping[str, Sequence[tuple[int, int]]], run_id: str) -> int:
        def run(db: psycopg.Connection[Any]) -> int:
            pruned: Counter[str] = Counter()  # per month
            with db.transaction():  # all or nothing: never half-pruned
                for stream, stream_ranges in ranges.items():
                    for first, last in stream_ranges:
                        rows = db.execute(PRUNE_COPY_BY_MONTH, (stream, first, last, run_id))
                        for month, n in rows:
                            pruned[month] += n
                return remove_pruned(db, ranges, pruned)

        return self._run("pruning", run)

    def pruned_ranges(self, stream: str | None = None) -> list[PrunedRange]:
        # Gaps-and-islands: consecutive seqs of one run share seq - row_number().
        where = "WHERE stream = %s" if stream is not None else ""
        rows = self._query(
            "SELECT stream, min(seq), max(seq), run_id FROM (SELECT stream, seq, run_id, "
            "seq - row_number() OVER (PARTITION BY stream, run_id ORDER BY seq) AS island "
            f"FROM pruned_events {where}) AS runs GROUP BY stream, run_id, island "
            "ORDER BY stream, min(seq)",
            (stream,) if stream is not None else (),
        )
        return [PrunedRange(r[0], int(r[1]), int(r[2]), r[3]) for r in rows]

    def put_subject_key(self, key_id: str, wrapped: bytes, created_at: str) -> bytes:
        rows = self._query(
            "WITH added AS (INSERT INTO subject_keys (key_id, wrapped, created_at) "
            "VALUES (%s, %s, %s) ON CONFLICT (key_id) DO NOTHING RETURNING wrapped) "
            "SELECT wrapped FROM added UNION ALL "
            "SELECT wrapped FROM subject_keys WHERE key_id = %s",
            (key_id, wrapped, created_at, key_id),
        )
        return bytes(rows[0][0])

    def subject_key(self, key_id: str) -> bytes | None:
        rows = self._query("SELECT wrapped FROM subject_keys WHERE key_id = %s", (key_id,))
        return bytes(rows[0][0]) if rows else None

    def subject_key_ids(self, prefix: str) -> list[str]:
        rows = self._query(
            "SELECT key_id FROM subject_keys WHERE left(key_id, %s) = %s ORDER BY key_id",
            (len(prefix), prefix),
        )
        return [r[0] for r in rows]

    def delete_subject_key(self, key_id: str) -> bool:
        def run(db: psycopg.Connection[Any]) -> bool:
            deleted = db.execute("DELETE FROM subject_keys WHERE key_id = %s", (key_id,)).rowcount
            # Rewrite the table so the deleted tuple is not left in its data file.
            db.execute("VACUUM FULL subject_keys")
            return deleted > 0

        return self._run("deleting a subject key", run)

    def close(self) -> None:
        with self._lock:
            self._drop()


# -- opening from a store URL ----------------------------------------------------------------------

SPOOL_OPTIONS = ("spool", "spool_dir", "spool_max_bytes")


def split_options(url: str) -> tuple[str, dict[str, str]]:
    """Take mcp-notary's own query parameters (`spool=off`, `spool_dir=`, `spool_max_bytes=`)
    out of `url`, leaving a URL libpq accepts."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in SPOOL_OPTIONS:
            ours[key] = value
        else:
            theirs.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(theirs, quote_via=quote))), ours


def default_spool_dir(url: str) -> Path:
    """A spool directory per target database (and schema), so a spool is only ever drained
    into the store its rows were meant for."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    target = "|".join(str(info.get(k, "")) for k in ("host", "port", "dbname", "options"))
    digest = hashlib.sha256(target.encode()).hexdigest()[:16]
    return Path(platformdirs.user_state_dir("mcp-notary")) / "spool" / digest


def open_postgres(url: str, *, readonly: bool = False) -> Store:
    """A `PostgresStore` for `url`; a writable one spools locally through outages unless the
    URL says `spool=off`."""
    libpq_url, options = split_options(url)
    store = PostgresStore(libpq_url, readonly=readonly)
    if readonly or options.get("spool", "on") == "off":
        return store
    max_bytes = options.get("spool_max_bytes", str(DEFAULT_MAX_BYTES))
    if not max_bytes.isdigit():
        store.close()
        raise ConfigError(f"spool_max_bytes must be a number of bytes, not {max_bytes!r}")
    directory = Path(options["spool_dir"]) if "spool_dir" in options else None
    try:
        return SpoolingStore(
            store,
            (directory or default_spool_dir(libpq_url)).expanduser(),
            max_bytes=int(max_bytes),
        )
    except OSError as exc:
        store.close()
        raise StoreError(f"cannot open the audit spool: {exc}") from exc
