"""Opening the read side of an embedded store: the store (writable, only for the reader's own
`audit_access` events), the reader stream, and access control. Used by the CLI read commands
and by `mcp-notary serve`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mcp_notary.access.audit import Interface, ReadAuditor
from mcp_notary.access.control import AccessControl
from mcp_notary.access.sqlite import SQLiteAccessStore
from mcp_notary.errors import ConfigError, StoreError
from mcp_notary.events.model import Principal
from mcp_notary.identity.tokens import TokenVerifier
from mcp_notary.ledger.checkpointer import CheckpointSettings, KeySigner
from mcp_notary.ledger.keys import load_or_create_signing_key
from mcp_notary.ledger.store import Store
from mcp_notary.ledger.stores import default_store_url, open_store, sqlite_path

__all__ = ["ReadSide", "open_read_side"]


@dataclass
class ReadSide:
    url: str
    path: Path
    store: Store
    control: AccessControl

    @property
    def auditor(self) -> ReadAuditor:
        return self.control.auditor

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
) -> ReadSide:
    """Open an existing store for reading and start this process's reader stream, checkpointed
    with the same signing key as capture processes use (default: the per-user key file)."""
    url = url or default_store_url()
    path = sqlite_path(url)
    if path is None:
        raise ConfigError(f"the read side needs an embedded (SQLite) store, not {url}")
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
        )
    except Exception:
        store.close()
        raise
    try:
        access = SQLiteAccessStore(path)
    except Exception:
        auditor.close()
        store.close()
        raise
    return ReadSide(url, path, store, AccessControl(access, auditor, oidc=oidc))
