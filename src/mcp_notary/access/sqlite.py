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

from mcp_notary.access.registry import GrantChange, TokenRecord, TokenRevocation
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


class SQLiteAccessStore:
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

    def grant_changes(self) -> list[GrantChange]:
        rows = self._rows(
            "SELECT principal, role, action, at, actor, event_id FROM access_grants ORDER BY id"
        )
        return [GrantChange(*r) for r in rows]

    def append_grant_change(self, change: GrantChange) -> None:
        self._insert(
            "INSERT INTO access_grants (principal, role, action, at, actor, event_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (change.principal, change.role, change.action, change.at, change.actor,
             change.event_id),
        )  # fmt: skip

    def tokens(self) -> list[TokenRecord]:
        rows = self._rows(
            "SELECT token_id, principal, name, secret_hash, created_at, expires_at, actor, "
            "event_id FROM access_tokens ORDER BY created_at, token_id"
        )
        return [TokenRecord(*r) for r in rows]

    def add_token(self, record: TokenRecord) -> None:
        self._insert(
            "INSERT INTO access_tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (record.token_id, record.principal, record.name, record.secret_hash,
             record.created_at, record.expires_at, record.actor, record.event_id),
        )  # fmt: skip

    def revocations(self) -> list[TokenRevocation]:
        rows = self._rows("SELECT token_id, at, actor, event_id FROM access_token_revocations")
        return [TokenRevocation(*r) for r in rows]

    def add_revocation(self, revocation: TokenRevocation) -> None:
        self._insert(
            "INSERT OR IGNORE INTO access_token_revocations VALUES (?, ?, ?, ?)",
            (revocation.token_id, revocation.at, revocation.actor, revocation.event_id),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()
