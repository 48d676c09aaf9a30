"""Read-only statements over either store, for read-side code that writes its SQL once (the
compliance evidence reader): rows of one statement, the driver's placeholder, and nothing that
could write.

SQLite: the file opened read-only (`mode=ro`, `query_only`). PostgreSQL: a session with
`default_transaction_read_only` on. Neither sets a deadline: the caller's statements are its
own, not a reader's free-form query. Driver errors become `StoreError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from mcp_notary.errors import ConfigError, StoreError
from mcp_notary.query.sqlite import readonly_connection

__all__ = ["ReadOnlyRows", "SQLiteRows", "open_readonly_rows"]


class ReadOnlyRows(Protocol):
    """Rows of one statement at a time; `placeholder` is the driver's (`?` or `%s`)."""

    placeholder: str

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def close(self) -> None: ...


class SQLiteRows:
    """Statements over a SQLite store file, through a read-only connection."""

    placeholder = "?"

    def __init__(self, path: Path) -> None:
        self._db = readonly_connection(path)

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"audit store query failed: {exc}") from exc

    def close(self) -> None:
        self._db.close()


class _PostgresRows:
    placeholder = "%s"

    def __init__(self, url: str) -> None:
        # Imported here so the embedded store works without the PostgreSQL driver loaded.
        from mcp_notary.ledger.stores.pg_session import PgSession

        self._session = PgSession(url, readonly=True)

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._session.fetch(sql, params)

    def close(self) -> None:
        self._session.close()


def open_readonly_rows(url: str) -> ReadOnlyRows:
    """Read-only statements over the store at `url` (a SQLite file or postgresql://)."""
    from mcp_notary.ledger.stores import sqlite_path

    path = sqlite_path(url)
    if path is not None:
        return SQLiteRows(path.expanduser())
    if url.split("://", 1)[0] in ("postgresql", "postgres"):
        return _PostgresRows(url)
    raise ConfigError(f"no read-only reader for store URL {url.split('://', 1)[0]!r}")
