"""Opening the read side of a store (SQLite or PostgreSQL): the store (writable, only for the
reader's own `audit_access` events), the reader stream, access control, and the query engine.
Used by the CLI read commands and by `mcp-notary serve`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mcp_notary.access.audit import Interface, ReadAuditor
from mcp_notary.access.control import AccessControl
from mcp_notary.access.registry import AccessState, AccessStore
from mcp_notary.access.sqlite import SQLiteAccessStore
from mcp_notary.errors import ConfigError, StoreError
from mcp_notary.events.model import Principal
from mcp_notary.identity.tokens import TokenVerifier
from mcp_notary.ledger.checkpointer import CheckpointSettings, KeySigner
from mcp_notary.ledger.keys import load_or_create_signing_key
from mcp_notary.ledger.store import Store
from mcp_notary.ledger.stores import default_store_url, open_store, sqlite_path
from mcp_notary.ledger.stores.sqlite import exposed_store
from mcp_notary.query.engine import QueryEngine, open_query_engine
from mcp_notary.query.rows import ReadOnlyRows, open_readonly_rows

__all__ = ["ReadSide", "open_read_side"]


_POSTGRES_SCHEMES = ("postgresql", "postgres")


def _is_postgres(url: str) -> bool:
    return "://" in url and url.split("://", 1)[0] in _POSTGRES_SCHEMES


@dataclass
class ReadSide:
    url: str
    path: Path | None  # the SQLite file; None for PostgreSQL
    store: Store
    control: AccessControl

    @property
    def auditor(self) -> ReadAuditor:
        return self.control.auditor

    @property
    def location(self) -> str:
        """The store for people: the file, or the PostgreSQL URL without its password."""
        if self.path is not None:
            return str(self.path)
        from mcp_notary.ledger.stores.postgres import redact_url

        return redact_url(self.url)

    def query_engine(self) -> QueryEngine:
        """A new query engine over this store (the caller closes it)."""
        return open_query_engine(self.url if self.path is None else str(self.path))

    def readonly_rows(self) -> ReadOnlyRows:
        """New read-only statements over this store, for SQL written once for both backends
        (the caller closes them)."""
        return open_readonly_rows(self.url if self.path is None else str(self.path))

    def close(self) -> None:
        """Seal the reader stream, then close. Idempotent."""
        try:
            self.control.auditor.close()
        finally:
            self.control.store.close()
            self.store.close()


def open_read_side(
    url: str | None,
    *,
    process_principal: Principal,
    interface: Interface,
    label: str,
    signing_key: Path | None = None,
    oidc: TokenVerifier | None = None,
    shared: bool = False,
) -> ReadSide:
    """Open an existing store for reading and start this process's reader stream, checkpointed
    with the same signing key as capture processes use (default: the per-user key file).
    With `shared` (short-lived readers), reads are recorded on the store's shared reader
    stream instead of a stream of this process's own."""
    url = url or default_store_url()
    path = sqlite_path(url)
    if path is None and not _is_postgres(url):
        raise ConfigError(
            f"the read side needs a SQLite or PostgreSQL store, not {url.split('://', 1)[0]}://"
        )
    if path is not None:
        path = path.expanduser()
        if not path.exists():
            raise StoreError(f"no audit store at {path}")
    store = open_store(url)
    try:
        checkpointing = CheckpointSettings(KeySigner(load_or_create_signing_key(signing_key)))
        auditor = ReadAuditor.for_store(
            store,
            process_principal=process_principal,
            interface=interface,
            label=label,
            checkpointing=checkpointing,
            shared=shared,
        )
    except Exception:
        store.close()
        raise
    try:
        access: AccessStore = SQLiteAccessStore(path) if path is not None else _postgres_access(url)
    except Exception:
        auditor.close()
        store.close()
        raise
    exposed = exposed_store(path) if path is not None else None
    if exposed is not None and AccessState.replay(access.grant_changes()).has_grants:
        # Roles are a promise that only their holders read, each read on record; a file any
        # local account can copy breaks it, so the read side refuses until it is fixed.
        access.close()
        auditor.close()
        store.close()
        raise StoreError(f"refusing to read: roles are configured, but the {exposed}")
    return ReadSide(url, path, store, AccessControl(access, auditor, oidc=oidc))


def _postgres_access(url: str) -> AccessStore:
    # Imported here so the embedded store works without the PostgreSQL driver loaded.
    from mcp_notary.access.postgres import PostgresAccessStore

    return PostgresAccessStore(url)
