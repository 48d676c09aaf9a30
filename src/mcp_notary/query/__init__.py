"""The read side's queries: filters, full-text search, read-only SQL, inclusion proofs."""

from mcp_notary.query.model import Cursor, Page, Query, QueryError
from mcp_notary.query.sqlite import SQLiteQueryEngine

__all__ = ["Cursor", "Page", "Query", "QueryError", "SQLiteQueryEngine"]
