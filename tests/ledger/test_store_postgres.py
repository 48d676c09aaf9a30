"""The PostgreSQL store: the contract parts the shared suite does not cover yet (leaf scans,
stream names, checkpoints; run on both backends), then what only PostgreSQL has: versioned
migrations, least-privilege roles, append-only triggers and reconnection."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from factories import append, event
from factories import stream_info as info
from pgtest import pg_schema

from mcp_notary.errors import ConfigError, StoreError, StoreVersionError
from mcp_notary.ledger.spool import SpoolingStore
from mcp_notary.ledger.store import CheckpointRow, Store
from mcp_notary.ledger.stores import open_store
from mcp_notary.ledger.stores.pg_migrations import LATEST_VERSION, READER_ROLE, WRITER_ROLE
from mcp_notary.ledger.stores.postgres import PostgresStore, redact_url, split_options


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgres":
        with pg_schema("store") as url:
            s = open_store(url)
            yield s
            s.close()
        return
    s = open_store(str(tmp_path / "audit.db"))
    yield s
    s.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_schema("pg") as url:
        yield url


def checkpoint(stream: str, size: int, at: str) -> CheckpointRow:
    return CheckpointRow(stream, "origin", size, bytes([size]) * 32, b"note %d" % size, at)


def test_scan_leaves_pages_ranges_and_bodies(store: Store) -> None:
    store.create_stream(info("s1"))
    append(store, "s1", [event() for _ in range(5)])
    rows = list(store.scan("s1"))
    (page,) = list(store.scan_leaves("s1"))
    assert page == [(r.seq, r.timestamp, r.body, r.leaf_hash, r.chain_hash) for r in rows]
    (middle,) = list(store.scan_leaves("s1", 2, 4, bodies=False))
    assert [(seq, body) for seq, _, body, _, _ in middle] == [(2, b""), (3, b""), (4, b"")]
    assert all(isinstance(v, bytes) for rec in middle for v in rec[2:])
    assert list(store.scan_leaves("nope")) == []


def test_leaf_hashes_of_a_range(store: Store) -> None:
    append(store, "s1", [event() for _ in range(4)])
    rows = list(store.scan("s1"))
    assert store.leaf_hashes("s1", 2, 3) == [(r.seq, r.leaf_hash) for r in rows[1:3]]
    assert store.leaf_hashes("s1", 5, 9) == []


def test_stream_names_include_streams_without_a_registration(store: Store) -> None:
    store.create_stream(info("b"))
    append(store, "a", [event()])  # events of an unregistered stream still count
    append(store, "c", [event(), event()])
    assert store.stream_names() == ["a", "b", "c"]
    assert [s.stream for s in store.streams()] == ["b"]
    with pytest.raises(StoreError):
        store.create_stream(info("b"))


def test_checkpoints_are_ordered_filtered_and_latest(store: Store) -> None:
    for row in (
        checkpoint("s2", 3, "2026-01-01T00:00:03.000000Z"),
        checkpoint("s1", 5, "2026-01-01T00:00:02.000000Z"),
        checkpoint("s1", 2, "2026-01-01T00:00:01.000000Z"),
        checkpoint("s1", 5, "2026-01-01T00:00:04.000000Z"),
    ):
        store.append_checkpoint(row)
    assert [(c.stream, c.size) for c in store.checkpoints()] == [
        ("s1", 2),
        ("s1", 5),
        ("s1", 5),
        ("s2", 3),
    ]
    assert [c.size for c in store.checkpoints("s1", min_size=3)] == [5, 5]
    latest = store.latest_checkpoint("s1")
    assert latest == checkpoint("s1", 5, "2026-01-01T00:00:04.000000Z")
    assert store.latest_checkpoint("none") is None


# -- PostgreSQL only ------------------------------------------------------------------------------


def admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True)


def test_migrations_are_recorded_and_idempotent(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    PostgresStore(pg_url).close()
    with admin(pg_url) as db:
        versions = db.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert versions == [(v,) for v in range(1, LATEST_VERSION + 1)]


def test_concurrent_first_starts_migrate_once(pg_url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            PostgresStore(pg_url).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []


def test_a_store_of_a_newer_version_is_refused(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with admin(pg_url) as db:
        db.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'future')")
    with pytest.raises(StoreVersionError, match="version 99"):
        PostgresStore(pg_url)
    with pytest.raises(StoreVersionError):
        PostgresStore(pg_url, readonly=True)


def test_readonly_open_of_an_empty_schema_is_a_clear_error(pg_url: str) -> None:
    with pytest.raises(StoreError, match="no audit store"):
        open_store(pg_url, readonly=True)


def test_readonly_store_cannot_write(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    ro = open_store(pg_url, readonly=True)
    try:
        with pytest.raises(StoreError, match="read-only"):
            ro.create_stream(info("s1"))
    finally:
        ro.close()


def test_owner_cannot_update_delete_or_truncate(pg_url: str) -> None:
    s = PostgresStore(pg_url)
    append(s, "s1", [event()])
    s.append_checkpoint(checkpoint("s1", 1, "2026-01-01T00:00:00.000000Z"))
    s.close()
    with admin(pg_url) as db:
        for statement in (
            "UPDATE events SET body = '\\x00'",
            "DELETE FROM events",
            "TRUNCATE events",
            "DELETE FROM checkpoints",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                db.execute(statement)


def as_role(url: str, role: str) -> str:
    """`url` with the session running as `role` (as a login granted that role would)."""
    return url + quote(f" -crole={role}")


def test_writer_role_can_only_insert_and_reader_only_select(pg_url: str) -> None:
    s = PostgresStore(pg_url)
    append(s, "s1", [event()])
    s.close()
    writer = PostgresStore(as_role(pg_url, WRITER_ROLE))  # already migrated: it can open it
    try:
        append(writer, "s1", [event()])
        writer.create_stream(info("w"))
        writer.append_checkpoint(checkpoint("s1", 2, "2026-01-01T00:00:00.000000Z"))
        assert writer.count() == 2
    finally:
        writer.close()
    with admin(as_role(pg_url, WRITER_ROLE)) as db:
        assert db.execute("SELECT current_user").fetchone() == (WRITER_ROLE,)
        for statement in (
            "UPDATE events SET kind = 'x'",
            "DELETE FROM events",
            "TRUNCATE events",
            "DELETE FROM streams",
            "UPDATE checkpoints SET size = 0",
            "DROP TABLE events",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(statement)
    with admin(as_role(pg_url, READER_ROLE)) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone() == (2,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("INSERT INTO streams VALUES ('r', 'x', 'h', 1, '0', NULL)")
    reader = open_store(as_role(pg_url, READER_ROLE), readonly=True)
    try:
        assert reader.count() == 2 and reader.stream_names() == ["s1", "w"]
    finally:
        reader.close()


def test_a_writer_role_cannot_create_the_schema(pg_url: str) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        PostgresStore(as_role(pg_url, WRITER_ROLE))


def test_a_dropped_connection_is_reopened(pg_url: str) -> None:
    s = PostgresStore(pg_url)
    try:
        append(s, "s1", [event()])
        assert s._db is not None
        pid = s._db.info.backend_pid
        with admin(pg_url) as db:
            db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreError):
            s.count()  # the failure is reported once...
        append(s, "s1", [event()])  # ...and the next call reconnects
        assert s.count("s1") == 2
    finally:
        s.close()


def test_unreachable_database_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot open"):
        PostgresStore("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2")


def test_messages_never_carry_the_password() -> None:
    assert redact_url("postgresql://u:secret@db.example:5433/audit") == (
        "postgresql://u@db.example:5433/audit"
    )


def test_spool_options_are_taken_out_of_the_url(pg_url: str, tmp_path: Path) -> None:
    url, ours = split_options(f"{pg_url}&spool_dir=/x&spool_max_bytes=10&connect_timeout=3")
    assert ours == {"spool_dir": "/x", "spool_max_bytes": "10"}
    assert "spool" not in url and "connect_timeout=3" in url and "search_path" in url
    spooled = open_store(f"{pg_url}&spool_dir={tmp_path}")
    assert isinstance(spooled, SpoolingStore) and spooled.directory == tmp_path
    spooled.close()
    plain = open_store(f"{pg_url}&spool=off")
    assert isinstance(plain, PostgresStore)
    plain.close()
    with pytest.raises(ConfigError, match="spool_max_bytes"):
        open_store(f"{pg_url}&spool_max_bytes=lots")
