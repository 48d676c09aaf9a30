"""What every query engine offers (SQLite and PostgreSQL: one interface, one test suite), the
SQL they share (filters, keyset order, activity counts), and the one function that picks an
engine from a store URL."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from mcp_notary.errors import ConfigError
from mcp_notary.ledger.store import (
    EventRow,
    as_hashed,
    column_disagreements,
    column_path,
    event_row,
)
from mcp_notary.query.index import Progress
from mcp_notary.query.model import Cursor, Page, Query

__all__ = [
    "Activity",
    "QueryEngine",
    "SqlQueryEngine",
    "activity_counts",
    "column_filters",
    "iterate_pages",
    "keyset",
    "open_query_engine",
    "page_of",
]

EVENT_SELECT = (
    "e.stream, e.seq, e.event_id, e.timestamp, e.kind, e.method, e.tool, e.principal_id, "
    "e.outcome, e.body, e.leaf_hash, e.chain_hash"
)


@dataclass(frozen=True)
class Activity:
    """Counts of traffic (everything but reads of the trail) in a time window."""

    since: str | None
    until: str | None
    total: int
    bucket: str  # "hour" or "day"
    by_time: list[tuple[str, int]]
    by_tool: list[tuple[str, int]]
    by_principal: list[tuple[str, int]]
    by_outcome: list[tuple[str, int]]
    by_kind: list[tuple[str, int]]


class QueryEngine(Protocol):
    """Read-side queries over one store. Blocking; safe to share between threads."""

    mismatched: int
    """Rows read whose stored columns disagreed with their hashed body (read as hashed)."""

    @property
    def indexed(self) -> bool:
        """Whether full-text search is available now."""
        ...

    def ensure_index(self, progress: Progress | None = None) -> int:
        """Make the search index available; returns rows indexed now."""
        ...

    def search(self, query: Query) -> Page: ...

    def iterate(self, query: Query, page_size: int = 1000) -> Iterator[EventRow]: ...

    def get(self, event_id: str) -> EventRow | None: ...

    def activity(
        self, since: str | None, until: str | None, principal: str | None = None
    ) -> Activity: ...

    def close(self) -> None: ...


class SqlQueryEngine:
    """The reads both engines make alike, once a subclass says how to fetch rows, how to phrase
    a search, and which placeholder its driver takes."""

    placeholder: str
    mismatched = 0
    """Rows read so far whose stored columns disagreed with their hashed body (returned with
    the body's values): a sign of tampering that `mcp-notary verify` names."""

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        raise NotImplementedError

    def _search_sql(self, query: Query) -> tuple[str, list[Any]]:
        raise NotImplementedError

    def search(self, query: Query) -> Page:
        """One page of matches in `query.sort` order."""
        sql, params = self._search_sql(query)
        return page_of(self._as_hashed(self._fetch(sql, params)), query.limit)

    def _as_hashed(self, raw: Sequence[Any]) -> list[EventRow]:
        """Rows as their hashed bodies state them: every decision a reader's result depends
        on (scope, filters, what is shown) is then made on the body, never on a column."""
        rows = [event_row(r) for r in raw]
        wrong = sum(1 for r in rows if column_disagreements(r))
        if not wrong:
            return rows
        self.mismatched += wrong
        return [as_hashed(r) for r in rows]

    def iterate(self, query: Query, page_size: int = 1000) -> Iterator[EventRow]:
        """Every match in `query.sort` order, a page at a time (for exports and the CLI)."""
        return iterate_pages(self.search, query, page_size)

    def get(self, event_id: str) -> EventRow | None:
        p = self.placeholder
        rows = self._fetch(
            f"SELECT {EVENT_SELECT} FROM events AS e WHERE e.event_id = {p} LIMIT 2",
            (event_id,),
        )
        # The column finds the row; the body must say it is that event (an edited event_id
        # column must not make another event answer for this id).
        found = [r for r in self._as_hashed(rows) if r.event_id == event_id]
        return found[0] if found else None

    def activity(
        self, since: str | None, until: str | None, principal: str | None = None
    ) -> Activity:
        return activity_counts(self._fetch, self.placeholder, since, until, principal)


def page_of(rows: list[EventRow], limit: int | None) -> Page:
    """A page from up to `limit` + 1 rows fetched: the extra row only says there is a next."""
    if limit is not None and len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, Cursor.after(rows[-1]).encode())
    return Page(rows, None)


def iterate_pages(
    search: Callable[[Query], Page], query: Query, page_size: int
) -> Iterator[EventRow]:
    """Every match of `query` in its order, fetched a page of `page_size` at a time."""
    current = replace(query, limit=page_size)
    while True:
        page = search(current)
        yield from page.rows
        if page.next_cursor is None:
            return
        current = replace(current, cursor=Cursor.decode(page.next_cursor))


BodyField = Callable[[tuple[str, ...]], str]
"""The backend's SQL for a field of the hashed body at a path: ``("principal", "id")``."""

INDEXED_COLUMNS = frozenset({"principal_id", "tool", "event_id"})
"""Derived columns with an index, kept as a prefilter beside the body's own value."""


def column_filters(query: Query, p: str, field: BodyField) -> tuple[list[str], list[Any]]:
    """WHERE clauses (and their parameters) for the filters; `p` is the driver's placeholder.
    `audit_access` events are left out unless asked for.

    Filters on a derived column (kind, principal, tool...) compare the hashed body's own
    field, so an edited column can neither hide an event (kind, method, outcome are read
    from the body alone) nor show one to a reader it does not concern (an indexed column only
    narrows the candidates, the body decides)."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("principal_id", query.principal),
        ("tool", query.tool),
        ("method", query.method),
        ("outcome", query.outcome),
        ("event_id", query.event_id),
        ("kind", query.kind),
    ):
        if value is None:
            continue
        if column in INDEXED_COLUMNS:
            where.append(f"e.{column} = {p}")
            params.append(value)
        where.append(f"{field(column_path(column))} = {p}")
        params.append(value)
    if query.stream is not None:
        where.append(f"e.stream = {p}")
        params.append(query.stream)
    if query.kind is None:
        where.append(f"COALESCE({field(column_path('kind'))}, '') != 'audit_access'")
    if query.since is not None:
        where.append(f"e.timestamp >= {p}")
        params.append(query.since)
    if query.until is not None:
        where.append(f"e.timestamp < {p}")
        params.append(query.until)
    return where, params


def keyset(query: Query, p: str) -> tuple[list[str], list[Any], str]:
    """The cursor's WHERE clause and parameters, and the ORDER BY of `query.sort`: the key is
    (timestamp, stream, seq), unique, compared bytewise on both backends."""
    descending = query.sort == "newest"
    where: list[str] = []
    params: list[Any] = []
    if query.cursor is not None:
        where.append(f"(e.timestamp, e.stream, e.seq) {'<' if descending else '>'} ({p}, {p}, {p})")
        params += [query.cursor.timestamp, query.cursor.stream, query.cursor.seq]
    order = "DESC" if descending else "ASC"
    return where, params, f" ORDER BY e.timestamp {order}, e.stream {order}, e.seq {order}"


def activity_counts(
    fetch: Callable[[str, Sequence[Any]], list[Any]],
    p: str,
    since: str | None,
    until: str | None,
    principal: str | None = None,
) -> Activity:
    """`Activity` through `fetch(sql, params)`; the SQL is the same on both backends."""
    where = ["kind != 'audit_access'"]
    params: list[Any] = []
    if since is not None:
        where.append(f"timestamp >= {p}")
        params.append(since)
    if until is not None:
        where.append(f"timestamp < {p}")
        params.append(until)
    if principal is not None:
        where.append(f"principal_id = {p}")
        params.append(principal)
    clause = " WHERE " + " AND ".join(where)
    # An hour per bar up to two days, else a day per bar.
    span = fetch(f"SELECT min(timestamp), max(timestamp) FROM events{clause}", params)
    first, last = span[0] if span else (None, None)
    bucket = "day" if first and last and first[:10] < _days_before(last, 2) else "hour"
    width = 10 if bucket == "day" else 13

    def grouped(expr: str, limit: int = 12) -> list[tuple[str, int]]:
        rows = fetch(
            f"SELECT {expr} AS k, count(*) AS n FROM events{clause} GROUP BY k "
            f"ORDER BY n DESC, k LIMIT {limit}",
            params,
        )
        return [(str(k) if k is not None else "", int(n)) for k, n in rows]

    by_time = fetch(
        f"SELECT substr(timestamp, 1, {width}) AS k, count(*) FROM events{clause} "
        "GROUP BY k ORDER BY k",
        params,
    )
    by_kind = grouped("kind")
    return Activity(
        since=since,
        until=until,
        total=sum(n for _, n in by_kind),
        bucket=bucket,
        by_time=[(str(k), int(n)) for k, n in by_time],
        by_tool=[(k, n) for k, n in grouped("tool", 13) if k][:12],
        by_principal=grouped("principal_id"),
        by_outcome=[(k, n) for k, n in grouped("outcome") if k],
        by_kind=by_kind,
    )


def _days_before(timestamp: str, days: int) -> str:
    moment = datetime.fromisoformat(timestamp[:19])
    return (moment - timedelta(days=days)).strftime("%Y-%m-%d")


def open_query_engine(url: str) -> QueryEngine:
    """The engine for a store URL: SQLite for a file, PostgreSQL for postgresql://."""
    from mcp_notary.ledger.stores import sqlite_path

    path = sqlite_path(url)
    if path is not None:
        from mcp_notary.query.sqlite import SQLiteQueryEngine

        return SQLiteQueryEngine(path.expanduser())
    if url.split("://", 1)[0] in ("postgresql", "postgres"):
        from mcp_notary.query.postgres import PostgresQueryEngine

        return PostgresQueryEngine(url)
    raise ConfigError(f"no query engine for store URL {url.split('://', 1)[0]!r}")
