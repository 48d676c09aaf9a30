"""Access records in the PostgreSQL store's schema, beside (never inside) the events.

The same records and rules as `SQLiteAccessStore`: insert-only tables (migration 3, with
triggers refusing UPDATE, DELETE and TRUNCATE), not covered by the hash chain (the ledger
holds the evidence: every change is an `audit_access` event). The reader role may SELECT them
(it checks API tokens against their Argon2id hashes); only the schema owner, or a login
granted INSERT on them, may add records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp_notary.access.records import SQLAccessRecords
from mcp_notary.errors import StoreError
from mcp_notary.ledger.stores.pg_session import PgSession

__all__ = ["PostgresAccessStore"]


class PostgresAccessStore(SQLAccessRecords):
    """`AccessStore` over the tables of the PostgreSQL store (the URL's `search_path`)."""

    placeholder = "%s"

    def __init__(self, url: str) -> None:
        self._session = PgSession(url, readonly=False)
        self.name = self._session.name

    def _rows(self, sql: str) -> list[Any]:
        try:
            return self._session.fetch(sql, what="read of access records")
        except StoreError:
            raise
        except Exception as exc:  # the deadline (none is set here) or a driver surprise
            raise StoreError(f"cannot read access records: {exc}") from exc

    def _insert(self, sql: str, values: Sequence[Any]) -> None:
        self._session.fetch(sql, values, what="write of an access record")

    def close(self) -> None:
        self._session.close()
