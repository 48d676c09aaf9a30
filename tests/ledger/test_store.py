"""The store contract. Parametrised by backend so every backend passes the same suite."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import append, event
from factories import stream_info as info
from pgtest import pg_schema

from mcp_notary.errors import StoreError, StoreVersionError
from mcp_notary.ids import utc_timestamp
from mcp_notary.ledger.store import EventFilter, Store, StreamHead, prepare_row
from mcp_notary.ledger.stores import open_store
from mcp_notary.ledger.stores.sqlite import SQLiteStore


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgres":
        with pg_schema("contract") as url:
            s = open_store(url)
            yield s
            s.close()
        return
    s = open_store(str(tmp_path / "audit.db"))
    yield s
    s.close()


def test_append_scan_and_head(store: Store) -> None:
    store.create_stream(info("s1"))
    append(store, "s1", [event() for _ in range(3)])
    append(store, "s1", [event() for _ in range(2)])
    rows = list(store.scan("s1"))
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert store.head("s1") == StreamHead(5, rows[-1].chain_hash)
    assert store.count() == 5 and store.count("s1") == 5
    assert [s.stream for s in store.streams()] == ["s1"]


def test_duplicate_seq_is_refused_atomically(store: Store) -> None:
    store.create_stream(info("s1"))
    append(store, "s1", [event()])
    stale = prepare_row(event(), "s1", StreamHead())  # seq 1 again
    fresh = prepare_row(event(), "s1", store.head("s1"))
    with pytest.raises(StoreError):
        store.append_batch([fresh, stale])
    assert store.count("s1") == 1  # the good row did not land either


def test_find_filters_and_limit(store: Store) -> None:
    store.create_stream(info("s1"))
    append(
        store,
        "s1",
        [event("a", "alice", 1000.0), event("b", "bob", 2000.0), event("a", "bob", 3000.0)],
    )
    assert [r.tool for r in store.find(EventFilter(principal="bob"))] == ["b", "a"]
    assert [r.principal_id for r in store.find(EventFilter(tool="a"))] == ["alice", "bob"]
    assert [r.seq for r in store.find(EventFilter(), limit=2)] == [2, 3]
    since = utc_timestamp(1500.0)
    assert [r.seq for r in store.find(EventFilter(since=since, until=utc_timestamp(3000.0)))] == [2]
    row = store.find(EventFilter(tool="b"))[0]
    assert store.get(row.event_id) == row
    assert store.get("nope") is None


def test_sqlite_rejects_update_and_delete(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    s = SQLiteStore(path)
    s.create_stream(info("s1"))
    append(s, "s1", [event()])
    s.close()
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE events SET body = x'00'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM events")


def test_sqlite_refuses_a_store_of_another_version(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreVersionError, match="version 99"):
        SQLiteStore(path)


def test_readonly_open_of_a_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no audit store"):
        open_store(str(tmp_path / "missing.db"), readonly=True)
