"""Monthly partitions of the PostgreSQL store: where rows land, who may create partitions, and
how retention drops, compacts or deletes from them while the trail keeps every hash."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from urllib.parse import quote

import psycopg
import pytest
from factories import append, event
from factories import stream_info as info
from pgtest import make_old_store, partition_sizes, pg_schema

from mcp_notary.errors import StoreError
from mcp_notary.ledger.store import StreamHead, prepare_row
from mcp_notary.ledger.stores.pg_migrations import (
    LATEST_VERSION,
    READER_ROLE,
    WRITER_ROLE,
)
from mcp_notary.ledger.stores.pg_partitions import (
    PRUNE_COPY_BY_MONTH,
    drop_partition,
    month_of,
    next_month,
    partition_month,
    plan_partitions,
    remove_pruned,
)
from mcp_notary.ledger.stores.postgres import PostgresStore


def at(month: str, n: int) -> float:
    """A moment `n` seconds into `month` ('YYYY-MM')."""
    return datetime.fromisoformat(f"{month}-01T00:00:00+00:00").timestamp() + n


def test_month_of_and_partition_names() -> None:
    assert next_month("2026-12") == "2027-01" and next_month("2026-01") == "2026-02"
    assert month_of("2026-11-25T02:00:00.000000Z") == "2026-11"
    assert month_of("2026-13-01T00:00:00Z") == "" and month_of("garbage") == ""
    assert partition_month("events_2026_02") == "2026-02"
    assert partition_month("events_legacy") == ""
    assert partition_month("events_default") is None


def test_plan_partitions_drops_compacts_or_deletes_rows() -> None:
    sizes = {"2026-01": 10, "2026-02": 20, "2026-03": 20, "": 5}
    pruned = {"2026-01": 10, "2026-02": 18, "2026-03": 10, "": 4, "2026-04": 3}
    assert plan_partitions(sizes, pruned) == {
        "2026-01": "drop",  # every row pruned
        "2026-02": "compact",  # 2 of 20 kept
        "2026-03": "rows",  # half kept
        "": "rows",  # the legacy partition is never recreated
    }  # 2026-04 has no partition: its rows are in the default one, deleted row by row


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_schema("part") as url:
        yield url


def admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True)


def hashes(store: PostgresStore, stream: str) -> list[tuple[int, bytes, bytes]]:
    return [(seq, leaf, chain) for p in store.scan_leaves(stream) for seq, _t, _b, leaf, chain in p]


def test_writers_create_their_months_partitions_through_the_function(pg_url: str) -> None:
    PostgresStore(pg_url).close()  # the owner migrates
    writer = PostgresStore(pg_url + quote(f" -crole={WRITER_ROLE}"))
    try:
        append(writer, "s1", [event(ts=at("2026-01", i)) for i in range(3)])
        append(writer, "s1", [event(ts=at("2026-02", i)) for i in range(2)])
        assert writer.count() == 5
    finally:
        writer.close()
    assert partition_sizes(pg_url) == {
        "events_default": 0,
        "events_2026_01": 3,
        "events_2026_02": 2,
        "events_2026_03": 0,  # made ahead, before a row needs it
    }
    with admin(pg_url + quote(f" -crole={WRITER_ROLE}")) as db:
        for statement in ("DROP TABLE events_2026_01", "ALTER TABLE events DETACH PARTITION "
                          "events_2026_01", "DELETE FROM events_2026_01"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(statement)
        with pytest.raises(psycopg.errors.RaiseException, match="not a month"):
            db.execute("SELECT mcp_notary_event_partition('2026-01; DROP TABLE events')")
        for far in ("1999-12", "2999-01"):  # no partition explosion from a wrong clock
            assert db.execute("SELECT mcp_notary_event_partition(%s)", (far,)).fetchone() == (
                False,
            )
    assert len(partition_sizes(pg_url)) == 4  # the default and three months, as above
    with admin(pg_url + quote(f" -crole={READER_ROLE}")) as db:  # reads, by name too
        assert db.execute("SELECT count(*) FROM events_2026_01").fetchone() == (3,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("INSERT INTO events_2026_03 SELECT * FROM events_2026_01")
    with admin(pg_url) as db:  # even the owner: one partition's own triggers refuse
        for statement in ("TRUNCATE events_2026_01", "DELETE FROM events_2026_01",
                          "UPDATE events_2026_02 SET kind = 'x'"):  # fmt: skip
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                db.execute(statement)


def test_a_long_reader_does_not_stall_writers_for_next_months_partition(pg_url: str) -> None:
    """Creating a partition needs `events` to itself: made ahead, it gives up after a short
    lock timeout instead of queueing every writer behind a long query."""
    PostgresStore(pg_url).close()
    with admin(pg_url) as db:
        db.execute("SELECT mcp_notary_event_partition('2026-06')")
    with admin(pg_url) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM events")  # holds its lock until the end
        store = PostgresStore(pg_url)
        append(store, "s1", [event(ts=at("2026-06", i)) for i in range(3)])
        assert store.count() == 3
        reader.execute("COMMIT")
    assert "events_2026_07" not in partition_sizes(pg_url)
    append(store, "s1", [event(ts=at("2026-07", 0))])  # made when needed, unhurried
    assert partition_sizes(pg_url)["events_2026_07"] == 1
    store.close()


def test_a_retried_batch_is_still_refused(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    row = prepare_row(event(ts=at("2026-03", 0)), "s1", StreamHead())
    store.append_batch([row])
    with pytest.raises(StoreError):
        store.append_batch([row])
    assert store.count() == 1
    store.close()


def test_retention_drops_compacts_and_deletes_by_month(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    for stream in ("a", "b"):
        store.create_stream(info(stream))
        for month in ("2026-01", "2026-02", "2026-03"):
            append(store, stream, [event(ts=at(month, i)) for i in range(10)])
    before = {s: hashes(store, s) for s in ("a", "b")}
    kept_bodies = {(r.stream, r.seq): r.body for s in ("a", "b") for r in store.scan(s)}
    # January whole; February but one event of `b`; March: half of `a`.
    ranges = {"a": [(1, 20), (21, 25)], "b": [(1, 19)]}
    assert store.prune(ranges, "run-1") == 20 + 5 + 19
    assert partition_sizes(pg_url) == {
        "events_default": 0,
        "events_2026_02": 1,  # compacted: the one kept row copied into a fresh partition
        "events_2026_03": 15,  # rows deleted one by one
        "events_2026_04": 0,
    }
    for s in ("a", "b"):
        assert hashes(store, s) == before[s]  # every position and hash is still there
    kept = {(r.stream, r.seq): r.body for s in ("a", "b") for r in store.scan(s)}
    assert sorted(kept) == [("a", n) for n in range(26, 31)] + [("b", n) for n in range(20, 31)]
    assert all(kept[k] == kept_bodies[k] for k in kept)  # byte for byte
    assert [(r.stream, r.first, r.last) for r in store.pruned_ranges()] == [
        ("a", 1, 25),
        ("b", 1, 19),
    ]
    # The compacted month still takes late rows of its month (a drained spool, say).
    head = store.head("b")
    append(store, "b", [event(ts=at("2026-02", 50))])
    assert store.head("b").seq == head.seq + 1
    # A dropped month is not recreated under the rows that left it: late ones go to the
    # default partition, and are pruned from there row by row.
    append(store, "a", [event(ts=at("2026-01", 99))])
    assert partition_sizes(pg_url)["events_default"] == 1
    store.close()


def test_a_partition_with_unpruned_rows_is_not_dropped(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    append(store, "s1", [event(ts=at("2026-04", i)) for i in range(3)])
    store.close()
    with (
        admin(pg_url) as db,
        db.transaction(),
        pytest.raises(StoreError, match="holds 3 events, 2 pruned"),
    ):
        drop_partition(db, "events_2026_04", 2)
    assert partition_sizes(pg_url)["events_2026_04"] == 3


def test_existing_rows_become_the_legacy_partition_unrewritten(pg_url: str) -> None:
    """A store of schema 3 keeps its rows (now `month = ''`) in `events_legacy`; new rows go to
    monthly partitions; pruning every legacy row drops the legacy partition."""
    head = StreamHead()
    old_rows = []
    for i in range(4):
        row = prepare_row(event(ts=at("2026-05", i)), "old", head)
        head = StreamHead(row.seq, row.chain_hash)
        old_rows.append(row)
    make_old_store(pg_url, 3, old_rows)
    with admin(pg_url) as db:
        ((file_node,),) = db.execute("SELECT pg_relation_filenode('events')").fetchall()
    store = PostgresStore(pg_url)  # migrates to the latest version
    with admin(pg_url) as db:
        assert db.execute("SELECT max(version) FROM schema_migrations").fetchone() == (
            LATEST_VERSION,
        )
        # The same data file: attached, not copied.
        assert db.execute("SELECT pg_relation_filenode('events_legacy')").fetchone() == (file_node,)
    assert [r.body for r in store.scan("old")] == [r.body for r in old_rows]
    append(store, "old", [event(ts=at("2026-05", 10))])  # the stream goes on
    assert partition_sizes(pg_url) == {
        "events_default": 0,
        "events_legacy": 4,
        "events_2026_05": 1,
        "events_2026_06": 0,
    }
    assert store.prune({"old": [(1, 3)]}, "run-1") == 3
    assert partition_sizes(pg_url)["events_legacy"] == 1
    assert store.prune({"old": [(4, 4)]}, "run-2") == 1
    assert "events_legacy" not in partition_sizes(pg_url)
    assert [seq for seq, _l, _c in hashes(store, "old")] == [1, 2, 3, 4, 5]
    store.close()


def test_months_pruned_row_by_row_stay_open_to_writers(pg_url: str) -> None:
    """Under a short `hot` period retention deletes rows of the month being written: it must
    not lock writers out of it while its transaction runs."""
    store = PostgresStore(pg_url)
    append(store, "s1", [event(ts=at("2026-03", i)) for i in range(10)])
    store.close()
    with admin(pg_url) as owner, admin(pg_url) as writer, owner.transaction():
        (copied,) = owner.execute(PRUNE_COPY_BY_MONTH, ("s1", 1, 5, "run-1")).fetchall()
        assert copied == ("2026-03", 5)
        assert remove_pruned(owner, {"s1": [(1, 5)]}, {"2026-03": 5}) == 5
        with writer.transaction():  # before retention commits
            writer.execute("LOCK TABLE events_2026_03 IN ROW EXCLUSIVE MODE NOWAIT")
    assert partition_sizes(pg_url)["events_2026_03"] == 5
