"""Access records in the embedded store's SQLite file, beside (never inside) the events.

The tables are not covered by the hash chain: the ledger holds the evidence (every grant,
revocation and token issue is an `audit_access` event), these tables hold the working state,
including token hashes, which the read-only SQL path refuses to read.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mcp_notary.access.records import SQLAccessRecords
from mcp_notary.errors import StoreError

__all__ = ["ACCESS_TABLES", "SQLiteAccessStore"]

ACCESS_TABLES = ("access_grants", "access_tokens", "access_token_revocations")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS access_grants (
    id INTEGER PRIMARY KEY,
    principal TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('grant', 'revoke')),
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    event_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS access_tokens (
    token_id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    actor TEXT NOT NULL,
    event_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS access_token_revocations (
    token_id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    event_id TEXT NOT NULL
);
"""
# Insert-only, like the events: a change of mind is a new record.
_GUARDS = "".join(
    f"CREATE TRIGGER IF NOT EXISTS {t}_no_{op} BEFORE {op.upper()} ON {t} "
    f"BEGIN SELECT RAISE(ABORT, 'mcp-notary access records are insert-only'); END;"
    for t in ACCESS_TABLES
    for op in ("update", "delete")
)


class SQLiteAccessStore(SQLAccessRecords):
    """`AccessStore` over the audit store's SQLite file."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 30_000) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        if not self.path.exists():
            raise StoreError(f"no audit store at {self.path}")
        try:
            self._db = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=busy_timeout_ms / 1000,
            )
            self._db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + _GUARDS + "COMMIT;")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open access records in {self.path}: {exc}") from exc

    def _rows(self, sql: str) -> list[Any]:
        try:
            with self._lock:
                return self._db.execute(sql).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read access records: {exc}") from exc

    def _insert(self, sql: str, values: Sequence[Any]) -> None:
        try:
            with self._lock:
                self._db.execute(sql, values)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write access record: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
