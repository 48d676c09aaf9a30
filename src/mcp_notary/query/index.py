"""The full-text search index of the embedded store: an FTS5 table fed by a trigger on `events`.

The index is derived data, outside what the hash chain covers: it holds the tokens of the
stored (already redacted) text, never anything the events do not. It is contentless
(`content=''`): the text stays in the event bodies and the index keeps only the postings,
so it adds no second copy of the payload tiers to the file.

Creating it installs an AFTER INSERT trigger, so from then on every append (by any process)
indexes its own event inside the same transaction; events stored before that are indexed
once by a backfill that resumes where it stopped if interrupted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from mcp_notary.errors import StoreError

__all__ = ["FTS_COLUMNS", "FTS_TABLE", "SearchIndex", "index_ready"]

FTS_TABLE = "events_fts"
STATE_TABLE = "events_fts_state"
INDEX_VERSION = "2"
"""1: insert trigger. 2: adds the delete trigger, so retention's pruning leaves no postings."""
BACKFILL_CHUNK = 20_000
FTS_COLUMNS = (
    "tool",
    "target",
    "arguments",
    "summary",
    "error",
    "details",
    "server",
    "trace",
    "redactions",
)

# `b` is the event body as text (SQLite >= 3.45 would read a BLOB as JSONB, so cast).
_EXTRACT = """
    json_extract(b, '$.tool'), json_extract(b, '$.target'), json_extract(b, '$.arguments'),
    json_extract(b, '$.response_summary'), json_extract(b, '$.error.message'),
    json_extract(b, '$.details'), json_extract(b, '$.server.name'), json_extract(b, '$.trace_id'),
    (SELECT group_concat(json_extract(f.value, '$.kind'), ' ')
       FROM json_each(b, '$.sensitive_fields') AS f)
"""
_COLUMNS = ", ".join(FTS_COLUMNS)

_CREATE = f"""
CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(
    {_COLUMNS}, content='', tokenize='unicode61 remove_diacritics 2'
);
CREATE TABLE IF NOT EXISTS {STATE_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- json_valid: a body that is not JSON (a damaged row) is left unindexed rather than failing
-- the append: the index must never be the reason an audit event is lost.
CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_insert AFTER INSERT ON events BEGIN
    INSERT INTO {FTS_TABLE} (rowid, {_COLUMNS})
    SELECT new.rowid, {_EXTRACT}
    FROM (SELECT CAST(new.body AS TEXT) AS b) WHERE json_valid(b);
END;
"""

# A contentless FTS5 table forgets a row only through its 'delete' command, given the very
# values that were indexed: the same extraction from the deleted body.
_DELETE_TRIGGER = f"""
CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_delete AFTER DELETE ON events BEGIN
    INSERT INTO {FTS_TABLE} ({FTS_TABLE}, rowid, {_COLUMNS})
    SELECT 'delete', old.rowid, {_EXTRACT}
    FROM (SELECT CAST(old.body AS TEXT) AS b) WHERE json_valid(b);
END;
"""

_BACKFILL = f"""
INSERT INTO {FTS_TABLE} (rowid, {_COLUMNS})
SELECT id, {_EXTRACT}
FROM (SELECT rowid AS id, CAST(body AS TEXT) AS b FROM events WHERE rowid > ? AND rowid <= ?)
WHERE json_valid(b)
"""

Progress = Callable[[int, int], None]
"""Called with (rows indexed so far, rows to index)."""


def _state(db: sqlite3.Connection) -> dict[str, str]:
    try:
        return dict(db.execute(f"SELECT key, value FROM {STATE_TABLE}").fetchall())
    except sqlite3.OperationalError:
        return {}


def index_ready(db: sqlite3.Connection) -> bool:
    """Whether the index exists and covers every stored event (read-only check)."""
    state = _state(db)
    return (
        state.get("version") == INDEX_VERSION
        and state.get("backfilled_to") is not None
        and state.get("backfilled_to") == state.get("backfill_to")
    )


class SearchIndex:
    """Creates and backfills the index over a writable connection to the store file."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def ensure(self, progress: Progress | None = None) -> int:
        """Create the index if missing and finish any backfill. Returns rows backfilled."""
        try:
            self._create()
            return self._backfill(progress)
        except sqlite3.Error as exc:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise StoreError(f"cannot build the search index: {exc}") from exc

    def _create(self) -> None:
        version = _state(self.db).get("version")
        if version == INDEX_VERSION:
            return
        if version == "1":
            self.db.executescript(
                "BEGIN IMMEDIATE;"
                + _DELETE_TRIGGER
                + f"UPDATE {STATE_TABLE} SET value = '{INDEX_VERSION}' WHERE key = 'version';"
                + "COMMIT;"
            )
            return
        # One script, one transaction: rows committed before the trigger exists are exactly
        # those up to `backfill_to`; every later row is indexed by the trigger.
        script = (
            "BEGIN IMMEDIATE;"
            + _CREATE
            + _DELETE_TRIGGER
            + f"INSERT OR IGNORE INTO {STATE_TABLE} (key, value) "
            + "SELECT 'backfill_to', CAST(coalesce(max(rowid), 0) AS TEXT) FROM events;"
            + f"INSERT OR IGNORE INTO {STATE_TABLE} (key, value) VALUES ('backfilled_to', '0');"
            + f"INSERT OR IGNORE INTO {STATE_TABLE} (key, value) "
            + f"VALUES ('version', '{INDEX_VERSION}');"
            + "COMMIT;"
        )
        self.db.executescript(script)

    def upgrade(self) -> None:
        """Bring an existing index to this version (no backfill); nothing if there is none."""
        try:
            if _state(self.db).get("version") is not None:
                self._create()
        except sqlite3.Error as exc:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise StoreError(f"cannot upgrade the search index: {exc}") from exc

    def _backfill(self, progress: Progress | None) -> int:
        state = _state(self.db)
        done, target = int(state["backfilled_to"]), int(state["backfill_to"])
        total = target - done
        indexed = 0
        while done < target:
            upto = min(done + BACKFILL_CHUNK, target)
            # Short transactions: writers (wrap processes) wait at most one chunk.
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(_BACKFILL, (done, upto))
            self.db.execute(
                f"UPDATE {STATE_TABLE} SET value = ? WHERE key = 'backfilled_to'", (str(upto),)
            )
            self.db.execute("COMMIT")
            indexed += upto - done
            done = upto
            if progress is not None:
                progress(indexed, total)
        return indexed
