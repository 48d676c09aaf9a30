"""Who holds which role, and which API tokens exist: the records, the store interface, and the
pure replay that turns the records into the current state.

Records are insert-only, like events: a revocation is a new record, never an edit, so the
history of who could read the log is itself kept. Each record names the ledger event that
announced it (`event_id`), so the access tables and the tamper-evident trail can be compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from mcp_notary.access.roles import ROLES, Role

__all__ = ["AccessState", "AccessStore", "GrantChange", "TokenRecord", "TokenRevocation"]


@dataclass(frozen=True)
class GrantChange:
    """`action` of `role` to `principal`, done by `actor` at `at`."""

    principal: str
    role: Role
    action: Literal["grant", "revoke"]
    at: str
    actor: str
    event_id: str


@dataclass(frozen=True)
class TokenRecord:
    """An issued API token. Only the Argon2id hash of its value is kept; `repr` hides it too."""

    token_id: str
    principal: str
    name: str
    secret_hash: str = field(repr=False)
    created_at: str
    expires_at: str | None
    actor: str
    event_id: str


@dataclass(frozen=True)
class TokenRevocation:
    token_id: str
    at: str
    actor: str
    event_id: str


class AccessStore(Protocol):
    """Insert-only storage of access records (SQLite now, PostgreSQL with the shared store)."""

    def grant_changes(self) -> list[GrantChange]:
        """Every grant and revocation, oldest first."""
        ...

    def append_grant_change(self, change: GrantChange) -> None: ...

    def tokens(self) -> list[TokenRecord]: ...

    def add_token(self, record: TokenRecord) -> None:
        """Raises `StoreError` if the token id exists."""
        ...

    def revocations(self) -> list[TokenRevocation]: ...

    def add_revocation(self, revocation: TokenRevocation) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class AccessState:
    """The current grants and tokens, replayed from the records."""

    roles: dict[str, frozenset[Role]]
    tokens: dict[str, TokenRecord]
    revoked: dict[str, TokenRevocation]

    @classmethod
    def replay(
        cls,
        changes: Iterable[GrantChange],
        tokens: Iterable[TokenRecord] = (),
        revocations: Iterable[TokenRevocation] = (),
    ) -> AccessState:
        held: dict[str, set[Role]] = {}
        for change in changes:
            if change.role not in ROLES:
                continue  # a role this release does not know grants nothing
            roles = held.setdefault(change.principal, set())
            if change.action == "grant":
                roles.add(change.role)
            else:
                roles.discard(change.role)
        return cls(
            roles={p: frozenset(r) for p, r in held.items() if r},
            tokens={t.token_id: t for t in tokens},
            revoked={r.token_id: r for r in revocations},
        )

    def roles_of(self, principal: str) -> frozenset[Role]:
        return self.roles.get(principal, frozenset())

    @property
    def has_grants(self) -> bool:
        return bool(self.roles)

    @property
    def has_admin(self) -> bool:
        return any("admin" in roles for roles in self.roles.values())

    def active_token(self, token_id: str, now: str) -> TokenRecord | None:
        """The token if it exists, is not revoked and has not expired at `now` (RFC 3339)."""
        record = self.tokens.get(token_id)
        if record is None or token_id in self.revoked:
            return None
        if record.expires_at is not None and now >= record.expires_at:
            return None
        return record
