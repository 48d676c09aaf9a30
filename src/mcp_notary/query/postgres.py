"""Queries over the PostgreSQL store: the same filters, keyset pages, search and activity as
the embedded store's engine, through PostgreSQL's own text search.

The search index is an expression index (migration 3): `mcp_notary_search_vector(body)`, a
`tsvector` of the same fields the FTS5 index holds, split into words of letters and digits
and case-folded. It is maintained by PostgreSQL on every insert, so it is always ready.
Reads use their own session with `default_transaction_read_only` on, and a deadline
(`statement_timeout`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp_notary.ledger.stores.pg_session import PgSession, QueryCanceled
from mcp_notary.query.engine import (
    EVENT_SELECT,
    SqlQueryEngine,
    column_filters,
    keyset,
)
from mcp_notary.query.index import Progress
from mcp_notary.query.model import Query, QueryError, tsquery_expression

__all__ = ["PostgresQueryEngine", "build_pg_search_sql"]

DEFAULT_DEADLINE_S = 10.0
VECTOR = "mcp_notary_search_vector(e.body)"
_DOC = "convert_from(e.body, 'UTF8')::jsonb"


def body_field(path: tuple[str, ...]) -> str:
    """A field of the hashed body, as text (NULL if the body is not UTF-8 JSON: migration 5)."""
    return f"mcp_notary_body_field(e.body, '{{{','.join(path)}}}')"


def _phrase(value: str) -> str | None:
    """A tsquery phrase of the words in `value`, to narrow candidates through the index
    (exactness is checked on the body afterwards)."""
    return tsquery_expression(f'"{value}"') if any(c.isalnum() for c in value) else None


def build_pg_search_sql(query: Query) -> tuple[str, list[Any]]:
    """SQL and parameters for one page of `query` (pure)."""
    where, params = column_filters(query, "%s", body_field)
    narrow: list[str] = []
    # Exact checks on fields inside the body, each narrowed through the search index.
    if query.server is not None:
        where.append(f"{_DOC} #>> '{{server,name}}' = %s")
        params.append(query.server)
    if query.trace_id is not None:
        where.append(f"{_DOC} ->> 'trace_id' = %s")
        params.append(query.trace_id)
    if query.redaction_kind is not None:
        where.append(
            "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN "
            f"jsonb_typeof({_DOC} -> 'sensitive_fields') = 'array' THEN "
            f"{_DOC} -> 'sensitive_fields' ELSE '[]'::jsonb END) AS f WHERE f ->> 'kind' = %s)"
        )
        params.append(query.redaction_kind)
    if query.text is not None:
        narrow.append(f"({tsquery_expression(query.text)})")
    for value in (query.server, query.trace_id, query.redaction_kind):
        phrase = _phrase(value) if value is not None else None
        if phrase:
            narrow.append(f"({phrase})")
    if narrow:
        where.append(f"{VECTOR} @@ %s::tsquery")
        params.append(" & ".join(narrow))
    cursor_where, cursor_params, order_by = keyset(query, "%s")
    where += cursor_where
    params += cursor_params
    sql = f"SELECT {EVENT_SELECT} FROM events AS e WHERE " + " AND ".join(where) + order_by
    if query.limit is not None:
        sql += " LIMIT %s"
        params.append(query.limit + 1)  # one more tells whether there is a next page
    return sql, params


class PostgresQueryEngine(SqlQueryEngine):
    """Read-side queries over one PostgreSQL store (the URL's `search_path`)."""

    placeholder = "%s"

    def __init__(self, url: str, *, deadline_s: float = DEFAULT_DEADLINE_S) -> None:
        self.deadline_s = deadline_s
        self._session = PgSession(
            url, readonly=True, statement_timeout_ms=max(int(deadline_s * 1000), 1)
        )
        self.name = self._session.name

    # -- index -------------------------------------------------------------------------------------

    @property
    def indexed(self) -> bool:
        """Always: the index is part of the schema (migration 3), kept by PostgreSQL."""
        return True

    def ensure_index(self, progress: Progress | None = None) -> int:
        return 0

    # -- reads -------------------------------------------------------------------------------------

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        try:
            return self._session.fetch(sql, params)
        except QueryCanceled as exc:
            raise QueryError(
                f"the query took longer than {self.deadline_s:g} s: narrow it"
            ) from exc

    def _search_sql(self, query: Query) -> tuple[str, list[Any]]:
        return build_pg_search_sql(query)

    def close(self) -> None:
        self._session.close()
