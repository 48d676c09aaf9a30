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


def leaves(store: Store, stream: str) -> list[tuple[int, bool, bytes, bytes]]:
    """(seq, has body, leaf hash, chain hash) of every stored or pruned event."""
    return [
        (seq, body is not None, leaf, chain)
        for page in store.scan_leaves(stream)
        for seq, _ts, body, leaf, chain in page
    ]


def test_prune_keeps_position_and_hashes(store: Store) -> None:
    store.create_stream(info("s1"))
    append(store, "s1", [event() for _ in range(10)])
    before = leaves(store, "s1")
    assert store.prune({"s1": [(2, 4), (7, 7), (20, 30)]}, "run-1") == 4
    after = leaves(store, "s1")
    assert [(s, leaf, chain) for s, _b, leaf, chain in after] == [
        (s, leaf, chain) for s, _b, leaf, chain in before
    ]
    assert [s for s, has_body, _l, _c in after if not has_body] == [2, 3, 4, 7]
    assert [r.seq for r in store.scan("s1")] == [1, 5, 6, 8, 9, 10]  # readers see no pruned rows
    assert store.count("s1") == 6
    assert [(r.first, r.last, r.run_id) for r in store.pruned_ranges("s1")] == [
        (2, 4, "run-1"),
        (7, 7, "run-1"),
    ]
    assert store.prune({"s1": [(1, 4)]}, "run-2") == 1  # already pruned seqs are skipped
    assert store.head("s1").seq == 10
    assert store.leaf_hashes("s1", 1, 4) == [(s, leaf) for s, _b, leaf, _c in before[:4]]
    # A stream pruned to its last event still has its head (a new writer must not restart it).
    assert store.prune({"s1": [(5, 10)]}, "run-3") == 5
    assert store.head("s1") == StreamHead(10, before[-1][3])
    assert "s1" in store.stream_names()


def test_subject_keys_are_stored_once_and_deleted(store: Store) -> None:
    assert store.put_subject_key("subj_a", b"first", "t") == b"first"
    assert store.put_subject_key("subj_a", b"second", "t") == b"first"  # first writer wins
    assert store.subject_key("subj_a") == b"first"
    assert store.delete_subject_key("subj_a") is True
    assert store.subject_key("subj_a") is None
    assert store.delete_subject_key("subj_a") is False


def test_sqlite_delete_guard_needs_the_kept_hashes(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    s = SQLiteStore(path)
    s.create_stream(info("s1"))
    append(s, "s1", [event(), event()])
    s.close()
    db = sqlite3.connect(path, isolation_level=None)
    # A pruned_events row with the wrong hashes does not unlock the delete.
    db.execute(
        "INSERT INTO pruned_events SELECT stream, seq, event_id, timestamp, kind, x'00', "
        "chain_hash, 'r' FROM events WHERE seq = 1"
    )
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM events WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM pruned_events")
    db.close()


def test_a_schema_1_store_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    s = SQLiteStore(path)
    s.create_stream(info("s1"))
    append(s, "s1", [event(), event()])
    s.close()
    db = sqlite3.connect(path, isolation_level=None)  # make it look like a release-1 store
    db.execute("DROP TABLE pruned_events")
    db.execute("DROP TABLE subject_keys")
    db.execute("DROP TRIGGER events_delete_only_pruned")
    db.execute(
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
        "BEGIN SELECT RAISE(ABORT, 'mcp-notary events are append-only'); END"
    )
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.close()
    old = SQLiteStore(path, readonly=True)  # read as it is, nothing pruned
    assert [len(p) for p in old.scan_leaves("s1")] == [2] and old.pruned_ranges() == []
    old.close()
    s = SQLiteStore(path)
    assert s.prune({"s1": [(1, 1)]}, "r") == 1
    assert [seq for seq, has_body, _l, _c in leaves(s, "s1") if not has_body] == [1]
    s.close()
    db = sqlite3.connect(path)
    triggers = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    assert "events_no_delete" not in triggers and "events_delete_only_pruned" in triggers
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("2",)
