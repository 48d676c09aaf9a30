"""The access records' SQL, once for every backend: subclasses supply how to run a SELECT and
an INSERT, and the driver's placeholder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp_notary.access.registry import GrantChange, TokenRecord, TokenRevocation

__all__ = ["SQLAccessRecords"]


class SQLAccessRecords:
    """The `AccessStore` reads and appends over the three access tables."""

    placeholder = "?"

    def _rows(self, sql: str) -> list[Any]:
        raise NotImplementedError

    def _insert(self, sql: str, values: Sequence[Any]) -> None:
        raise NotImplementedError

    def _values(self, n: int) -> str:
        return ", ".join([self.placeholder] * n)

    def grant_changes(self) -> list[GrantChange]:
        rows = self._rows(
            "SELECT principal, role, action, at, actor, event_id FROM access_grants ORDER BY id"
        )
        return [GrantChange(*r) for r in rows]

    def append_grant_change(self, change: GrantChange) -> None:
        self._insert(
            "INSERT INTO access_grants (principal, role, action, at, actor, event_id) "
            f"VALUES ({self._values(6)})",
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
            f"expires_at, actor, event_id) VALUES ({self._values(8)})",
            (record.token_id, record.principal, record.name, record.secret_hash,
             record.created_at, record.expires_at, record.actor, record.event_id),
        )  # fmt: skip

    def revocations(self) -> list[TokenRevocation]:
        rows = self._rows(
            "SELECT token_id, at, actor, event_id FROM access_token_revocations ORDER BY token_id"
        )
        return [TokenRevocation(*r) for r in rows]

    def add_revocation(self, revocation: TokenRevocation) -> None:
        # Revoking twice keeps the first record (both SQLite and PostgreSQL speak ON CONFLICT).
        self._insert(
            "INSERT INTO access_token_revocations (token_id, at, actor, event_id) "
            f"VALUES ({self._values(4)}) ON CONFLICT (token_id) DO NOTHING",
            (revocation.token_id, revocation.at, revocation.actor, revocation.event_id),
        )
