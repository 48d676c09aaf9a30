"""A throw-away PostgreSQL schema per test, on the local server (127.0.0.1:5432, database
`test`). Skips when the server is down, except in CI (where .ci/run starts it): there it fails."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest

ADMIN_URL = os.environ.get("MCP_NOTARY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _admin() -> object:
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed")
    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {ADMIN_URL}: {exc}")
        pytest.skip(f"PostgreSQL is not reachable at {ADMIN_URL}: {exc}")


def schema_url(schema: str) -> str:
    """A store URL whose search_path is `schema` alone."""
    return f"{ADMIN_URL}?options={quote(f'-csearch_path={schema}')}"


@contextmanager
def pg_schema(prefix: str = "t") -> Iterator[str]:
    """Create a fresh schema, yield a store URL that uses it, drop it afterwards."""
    import psycopg

    schema = f"mcpn_{prefix}_{secrets.token_hex(6)}"
    admin = _admin()
    assert isinstance(admin, psycopg.Connection)
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema_url(schema)
    finally:
        # A fresh connection: the test may have restarted the server meanwhile. The store's
        # triggers forbid TRUNCATE, not DROP: dropping is the administrator's tool.
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


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
