"""The read side's queries (SQLite and PostgreSQL engines): filters, full-text search,
read-only SQL, inclusion proofs."""

from mcp_notary.query.engine import QueryEngine, open_query_engine
from mcp_notary.query.model import Cursor, Page, Query, QueryError
from mcp_notary.query.sqlite import SQLiteQueryEngine

__all__ = [
    "Cursor",
    "Page",
    "Query",
    "QueryEngine",
    "QueryError",
    "SQLiteQueryEngine",
    "open_query_engine",
]
