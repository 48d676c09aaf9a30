"""The same trail in another store: every stream, event, checkpoint and access record copied
through the stores' own interfaces (the same bytes, hashes, ids and times), so a read over
the copy reads exactly the trail the original holds, on either backend."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from mcp_notary.access.postgres import PostgresAccessStore
from mcp_notary.access.registry import AccessStore
from mcp_notary.access.sqlite import SQLiteAccessStore
from mcp_notary.ledger.stores import open_store, sqlite_path


def _access(url: str) -> AccessStore:
    path = sqlite_path(url)
    return SQLiteAccessStore(path) if path is not None else PostgresAccessStore(url)


def copy_sqlite_file(source: Path, dest: Path) -> None:
    """A byte-for-byte copy of the SQLite store at `source` in a new file at `dest`, made
    0600 first as mcp-notary makes a store (the read side refuses one others can read)."""
    os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    src, dst = sqlite3.connect(source), sqlite3.connect(dest)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def copy_trail(source: str, dest: str) -> None:
    """Copy the store at `source` into the empty store at `dest` (a SQLite file or a
    PostgreSQL URL). Retention's records (pruned events) and subject keys are not copied:
    the source must have none."""
    src, dst = open_store(source), open_store(dest)
    try:
        assert src.pruned_ranges() == [] and src.subject_key_ids("") == [], "not copied"
        for info in src.streams():
            dst.create_stream(info)
        for name in src.stream_names():
            rows = list(src.scan(name))
            for start in range(0, len(rows), 1000):
                dst.append_batch(rows[start : start + 1000])
        for checkpoint in src.checkpoints():
            dst.append_checkpoint(checkpoint)
    finally:
        src.close()
        dst.close()
    src_access, dst_access = _access(source), _access(dest)
    try:
        for change in src_access.grant_changes():
            dst_access.append_grant_change(change)
        for token in src_access.tokens():
            dst_access.add_token(token)
        for revocation in src_access.revocations():
            dst_access.add_revocation(revocation)
    finally:
        src_access.close()
        dst_access.close()
