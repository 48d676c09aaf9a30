"""A throw-away PostgreSQL schema per test, on the local server (127.0.0.1:5432, database
`test`). Skips when the server is down, except in CI (where .ci/run starts it): there it fails."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

if TYPE_CHECKING:
    from mcp_notary.ledger.store import EventRow

ADMIN_URL = os.environ.get("MCP_NOTARY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _admin(admin_url: str) -> object:
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed")
    try:
        return psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {admin_url}: {exc}")
        pytest.skip(f"PostgreSQL is not reachable at {admin_url}: {exc}")


def schema_url(schema: str, admin_url: str = ADMIN_URL) -> str:
    """A store URL whose search_path is `schema` alone."""
    return f"{admin_url}?options={quote(f'-csearch_path={schema}')}"


@contextmanager
def pg_schema(prefix: str = "t", admin_url: str = ADMIN_URL) -> Iterator[str]:
    """Create a fresh schema, yield a store URL that uses it, drop it afterwards."""
    import psycopg

    schema = f"mcpn_{prefix}_{secrets.token_hex(6)}"
    admin = _admin(admin_url)
    assert isinstance(admin, psycopg.Connection)
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema_url(schema, admin_url)
    finally:
        # A fresh connection: the test may have restarted the server meanwhile. The store's
        # triggers forbid TRUNCATE, not DROP: dropping is the administrator's tool.
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def make_old_store(url: str, version: int, rows: Sequence[EventRow]) -> None:
    """A store as a release of schema `version` left it (its migrations, as released),
    holding `rows`: for the tests of later migrations."""
    import psycopg

    from mcp_notary.ledger.store import EVENT_COLUMNS
    from mcp_notary.ledger.stores.pg_migrations import BOOTSTRAP, MIGRATIONS

    with psycopg.connect(url, autocommit=True) as db:
        ((schema,),) = db.execute("SELECT quote_ident(current_schema())").fetchall()
        db.execute(BOOTSTRAP)
        for number, name, script in MIGRATIONS[:version]:
            db.execute(script.replace("{schema}", schema).encode())
            db.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                       (number, name))  # fmt: skip
        for r in rows:
            db.execute(
                f"INSERT INTO events ({EVENT_COLUMNS}) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (r.stream, r.seq, r.event_id, r.timestamp, r.kind, r.method, r.tool,
                 r.principal_id, r.outcome, r.body, r.leaf_hash, r.chain_hash),
            )  # fmt: skip


def partition_sizes(url: str) -> dict[str, int]:
    """Rows in each partition of the store's `events` table."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        names = [
            r[0]
            for r in db.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'events'::regclass"
            )
        ]
        sizes = {}
        for name in names:
            row = db.execute(f'SELECT count(*) FROM "{name}"').fetchone()
            sizes[name] = int(row[0]) if row else 0
        return sizes
