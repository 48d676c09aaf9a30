"""Queries over the embedded store: filters, full-text search, keyset pages, activity counts.

Reads use their own read-only connection (`mode=ro`), never the writer's; the search index is
built (once) through a separate writable connection by `ensure_index`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mcp_notary.errors import StoreError
from mcp_notary.query.engine import (
    EVENT_SELECT,
    Activity,
    SqlQueryEngine,
    column_filters,
    keyset,
)
from mcp_notary.query.index import FTS_TABLE, Progress, SearchIndex, index_ready
from mcp_notary.query.model import Query, QueryError, fts_expression

__all__ = [
    "Activity",
    "SQLiteQueryEngine",
    "build_search_sql",
    "match_expression",
    "readonly_connection",
]

_BODY = "CAST(e.body AS TEXT)"
DEFAULT_DEADLINE_S = 10.0
# Above this many index matches, walking the time index beats sorting the matches (measured
# on a million events: about where the two plans cost the same).
DENSE_MATCHES = 1000


def readonly_connection(path: Path) -> sqlite3.Connection:
    """A connection that cannot write: SQLite opens the file read-only (`mode=ro`)."""
    if not path.exists():
        raise StoreError(f"no audit store at {path}")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        db.execute("PRAGMA query_only = ON")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open audit store {path}: {exc}") from exc
    return db


def body_field(path: tuple[str, ...]) -> str:
    """A field of the hashed body; NULL for a body that is not JSON (which `verify` reports),
    so one damaged row cannot make every read fail."""
    return f"CASE WHEN json_valid({_BODY}) THEN json_extract({_BODY}, '$.{'.'.join(path)}') END"


def _phrase(value: str) -> str:
    """An FTS5 phrase of the words in `value`, for a column prefilter (exactness is checked
    on the body afterwards)."""
    return fts_expression(f'"{value}"') if any(c.isalnum() for c in value) else ""


def match_expression(query: Query, indexed: bool) -> str | None:
    """The FTS5 expression narrowing `query`'s candidates: the search text, and the body
    fields filtered on, as column phrases (pure)."""
    match: list[str] = []
    if query.text is not None:
        if not indexed:
            raise QueryError("search: the search index is not built yet")
        match.append(f"({fts_expression(query.text)})")
    if indexed:
        for column, value in (
            ("server", query.server),
            ("trace", query.trace_id),
            ("redactions", query.redaction_kind),
        ):
            phrase = _phrase(value) if value is not None else ""
            if phrase:
                match.append(f"{column} : {phrase}")
    return " AND ".join(match) if match else None


def build_search_sql(query: Query, indexed: bool, *, dense: bool = False) -> tuple[str, list[Any]]:
    """SQL and parameters for one page of `query` (pure). Without the index, filters on
    fields inside the body fall back to reading every candidate body.

    `dense` says the search matches many events: then the page is found by walking the
    time-ordered index and probing the matches (stops after `limit` hits), instead of
    fetching and sorting every match (the unary `+` keeps SQLite from driving the query
    from the match list). For a million events, a word in 7% of them: 430 ms -> 15 ms."""
    where, params = column_filters(query, "?", body_field)
    # Exact checks on fields inside the body.
    if query.server is not None:
        where.append(f"json_extract({_BODY}, '$.server.name') = ?")
        params.append(query.server)
    if query.trace_id is not None:
        where.append(f"json_extract({_BODY}, '$.trace_id') = ?")
        params.append(query.trace_id)
    if query.redaction_kind is not None:
        where.append(
            f"EXISTS (SELECT 1 FROM json_each({_BODY}, '$.sensitive_fields') AS f "
            "WHERE json_extract(f.value, '$.kind') = ?)"
        )
        params.append(query.redaction_kind)
    expression = match_expression(query, indexed)
    if expression is not None:
        probe = "+e.rowid" if dense else "e.rowid"
        where.append(f"{probe} IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ?)")
        params.append(expression)
    cursor_where, cursor_params, order_by = keyset(query, "?")
    where += cursor_where
    params += cursor_params
    sql = f"SELECT {EVENT_SELECT} FROM events AS e"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += order_by
    if query.limit is not None:
        sql += " LIMIT ?"
        params.append(query.limit + 1)  # one more tells whether there is a next page
    return sql, params


class SQLiteQueryEngine(SqlQueryEngine):
    """Read-side queries over one SQLite store file."""

    placeholder = "?"

    def __init__(self, path: str | Path, *, deadline_s: float = DEFAULT_DEADLINE_S) -> None:
        self.path = Path(path)
        self.deadline_s = deadline_s
        self._db = readonly_connection(self.path)
        self._lock = threading.Lock()
        self._indexed = False

    # -- index -------------------------------------------------------------------------------------

    @property
    def indexed(self) -> bool:
        if not self._indexed:
            with self._lock:
                self._indexed = index_ready(self._db)
        return self._indexed

    def ensure_index(self, progress: Progress | None = None) -> int:
        """Build the search index if needed (needs write access to the file)."""
        try:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path} to build the search index: {exc}") from exc
        try:
            return SearchIndex(db).ensure(progress)
        finally:
            db.close()
            self._indexed = False

    # -- reads -------------------------------------------------------------------------------------

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        deadline = time.monotonic() + self.deadline_s
        with self._lock:
            # Abort a runaway query (a prefix matching everything, a huge scan) instead of
            # holding the connection: a reader gets an error asking to narrow the search.
            self._db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc):
                    raise QueryError(
                        f"the query took longer than {self.deadline_s:g} s: narrow it"
                    ) from exc
                if "fts5" in str(exc):
                    raise QueryError(f"search: {exc}") from exc
                raise StoreError(f"audit store query failed: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"audit store query failed: {exc}") from exc
            finally:
                self._db.set_progress_handler(None, 0)

    def _dense(self, query: Query) -> bool:
        """Whether the index matches at least DENSE_MATCHES events (counting stops there)."""
        expression = match_expression(query, self.indexed)
        if expression is None or query.limit is None:
            return False
        found = self._fetch(
            f"SELECT count(*) FROM (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ? "
            f"LIMIT {DENSE_MATCHES})",
            (expression,),
        )
        return int(found[0][0]) >= DENSE_MATCHES

    def _search_sql(self, query: Query) -> tuple[str, list[Any]]:
        return build_search_sql(query, self.indexed, dense=self._dense(query))

    def close(self) -> None:
        with self._lock:
            self._db.close()
