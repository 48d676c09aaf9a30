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

from mcp_notary.access.registry import GrantChange, TokenRecord, TokenRevocation
from mcp_notary.errors import StoreError
from mcp_notary.ledger.stores.pg_session import PgSession

__all__ = ["PostgresAccessStore"]


class PostgresAccessStore:
    """`AccessStore` over the tables of the PostgreSQL store (the URL's `search_path`)."""

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

    def grant_changes(self) -> list[GrantChange]:
        rows = self._rows(
            "SELECT principal, role, action, at, actor, event_id FROM access_grants ORDER BY id"
        )
        return [GrantChange(*r) for r in rows]

    def append_grant_change(self, change: GrantChange) -> None:
        self._insert(
            "INSERT INTO access_grants (principal, role, action, at, actor, event_id) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
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
            "INSERT INTO access_tokens (token_id, principal, name, secret_hash, created_at, "
            "expires_at, actor, event_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (record.token_id, record.principal, record.name, record.secret_hash,
             record.created_at, record.expires_at, record.actor, record.event_id),
        )  # fmt: skip

    def revocations(self) -> list[TokenRevocation]:
        rows = self._rows(
            "SELECT token_id, at, actor, event_id FROM access_token_revocations ORDER BY token_id"
        )
        return [TokenRevocation(*r) for r in rows]

    def add_revocation(self, revocation: TokenRevocation) -> None:
        self._insert(
            "INSERT INTO access_token_revocations (token_id, at, actor, event_id) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (token_id) DO NOTHING",
            (revocation.token_id, revocation.at, revocation.actor, revocation.event_id),
        )

    def close(self) -> None:
        self._session.close()
