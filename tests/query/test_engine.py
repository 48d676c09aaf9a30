"""The embedded store's query engine: filters, the search index (backfill and trigger),
keyset pages, and read-only SQL."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mcp_notary.events.model import AuditEvent, Principal, SensitiveField, ServerInfo
from mcp_notary.ids import new_event_id, utc_timestamp
from mcp_notary.ledger.store import StreamHead, StreamInfo, prepare_row
from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.query.model import Cursor, Query, QueryError
from mcp_notary.query.sql import run_readonly_sql
from mcp_notary.query.sqlite import SQLiteQueryEngine

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _event(i: int, **overrides: object) -> AuditEvent:
    fields: dict[str, object] = {
        "event_id": new_event_id(T0 + i),
        "timestamp": utc_timestamp(T0 + i),
        "kind": "call",
        "principal": Principal(f"user{i % 3}", "user", "os"),
        "method": "tools/call",
        "tool": ("lookup", "convert", "search")[i % 3],
        "arguments": {"city": ("Lisbon", "Oslo", "Quito")[i % 3], "n": i},
        "outcome": "success" if i % 5 else "tool_error",
        "response_summary": {"content": [{"type": "text", "text": f"answer {i}"}]},
        "server": ServerInfo(("alpha", "beta")[i % 2], "1", None),
        "trace_id": f"{i:032x}" if i % 4 == 0 else None,
        "jsonrpc_id": i,
    }
    fields.update(overrides)
    return AuditEvent(**fields)  # type: ignore[arg-type]


def _append(store: SQLiteStore, stream: str, events: list[AuditEvent]) -> None:
    head = store.head(stream)
    rows = []
    for event in events:
        row = prepare_row(event, stream, head)
        head = StreamHead(row.seq, row.chain_hash)
        rows.append(row)
    store.append_batch(rows)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "audit.db")
    for name in ("s1", "s2"):
        store.create_stream(StreamInfo(name, utc_timestamp(), "h", 1, "0", "srv"))
    _append(store, "s1", [_event(i) for i in range(0, 60, 2)])
    _append(store, "s2", [_event(i) for i in range(1, 60, 2)])
    secret = SensitiveField("/arguments/key", "aws_access_key", "detector.aws", "1")
    _append(store, "s1", [_event(60, arguments={"key": "[REDACTED:aws_access_key:abc123def456]"},
                                 sensitive_fields=(secret,))])  # fmt: skip
    read = _event(61, kind="audit_access", tool=None, method="audit/search", arguments=None,
                  details={"query": {"text": "Lisbon"}})  # fmt: skip
    _append(store, "s2", [read])
    return store


def _ids(rows: list) -> list[int]:  # type: ignore[type-arg]
    return [json.loads(r.body)["jsonrpc_id"] for r in rows]


def test_filters_without_the_index(store: SQLiteStore) -> None:
    engine = SQLiteQueryEngine(store.path)
    assert not engine.indexed
    everything = engine.search(Query(limit=None)).rows
    assert len(everything) == 61, "audit_access events are left out by default"
    assert engine.search(Query(kind="audit_access", limit=None)).rows[0].kind == "audit_access"
    lookup = engine.search(Query(tool="lookup", sort="oldest", limit=None)).rows
    assert _ids(lookup) == list(range(0, 61, 3))
    beta = engine.search(Query(server="beta", limit=None)).rows  # json fallback
    assert sorted(_ids(beta)) == list(range(1, 60, 2))
    errors = engine.search(Query(outcome="tool_error", principal="user0", limit=None)).rows
    assert sorted(_ids(errors)) == [0, 15, 30, 45, 60]
    window = engine.search(
        Query(since=utc_timestamp(T0 + 10), until=utc_timestamp(T0 + 20), limit=None)
    ).rows
    assert sorted(_ids(window)) == list(range(10, 20))
    with pytest.raises(QueryError):
        engine.search(Query(text="Lisbon"))  # search needs the index


def test_index_backfills_then_follows_appends(store: SQLiteStore) -> None:
    engine = SQLiteQueryEngine(store.path)
    progress: list[tuple[int, int]] = []
    assert engine.ensure_index(lambda done, total: progress.append((done, total))) == 62
    assert progress[-1] == (62, 62)
    assert engine.indexed and engine.ensure_index() == 0  # idempotent
    lisbon = engine.search(Query(text="lisbon", limit=None)).rows
    assert sorted(_ids(lisbon)) == list(range(0, 60, 3))  # 60 carries a key, not a city
    # Appended after the index exists: the trigger indexes it in the same transaction.
    _append(store, "s1", [_event(100, arguments={"city": "Reykjavik", "n": 100})])
    assert _ids(engine.search(Query(text="reykjavik")).rows) == [100]
    assert _ids(engine.search(Query(text="reyk*")).rows) == [100]
    assert _ids(engine.search(Query(redaction_kind="aws_access_key")).rows) == [60]
    assert _ids(engine.search(Query(text="abc123def456")).rows) == [60]  # the keyed token
    assert _ids(engine.search(Query(trace_id=f"{8:032x}")).rows) == [8]
    assert engine.search(Query(server="alp")).rows == []  # exact, not a prefix
    assert _ids(engine.search(Query(text="lisbon -oslo", tool="lookup", limit=3)).rows) == [
        57, 54, 51,
    ]  # fmt: skip
    # The search text of an audit_access event is searchable when reads are asked for.
    reads = engine.search(Query(text="lisbon", kind="audit_access")).rows
    assert [r.kind for r in reads] == ["audit_access"]


def test_cursor_pages_cover_every_match_once(store: SQLiteStore) -> None:
    engine = SQLiteQueryEngine(store.path)
    engine.ensure_index()
    for sort in ("newest", "oldest"):
        seen: list[int] = []
        query = Query(text="answer", sort=sort, limit=7)  # type: ignore[arg-type]
        while True:
            page = engine.search(query)
            seen += _ids(page.rows)
            if page.next_cursor is None:
                break
            query = Query(text="answer", sort=sort, limit=7,  # type: ignore[arg-type]
                          cursor=Cursor.decode(page.next_cursor))  # fmt: skip
        expected = list(range(61))
        assert seen == (expected if sort == "oldest" else expected[::-1])


def test_activity_counts(store: SQLiteStore) -> None:
    activity = SQLiteQueryEngine(store.path).activity(None, None)
    assert activity.total == 61
    assert dict(activity.by_tool) == {"lookup": 21, "convert": 20, "search": 20}
    assert dict(activity.by_outcome)["tool_error"] == 13
    assert sum(n for _, n in activity.by_time) == 61


def test_read_connection_cannot_write(store: SQLiteStore) -> None:
    engine = SQLiteQueryEngine(store.path)
    with pytest.raises(sqlite3.OperationalError):
        engine._db.execute("CREATE TABLE x (a)")


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM events",
        "UPDATE events SET tool = 'x'",
        "INSERT INTO events SELECT * FROM events",
        "DROP TABLE events",
        "SELECT 1; DELETE FROM events",
        "PRAGMA writable_schema = 1",
        "ATTACH DATABASE '/tmp/other.db' AS other",
        "SELECT * FROM access_tokens",
        "CREATE TEMP TABLE t AS SELECT 1",
        "VACUUM",
    ],
)
def test_readonly_sql_refuses_everything_but_reading(store: SQLiteStore, statement: str) -> None:
    before = store.count()
    with pytest.raises(QueryError):
        run_readonly_sql(store.path, statement)
    assert store.count() == before


def test_readonly_sql_reads_events_and_the_index(store: SQLiteStore) -> None:
    SQLiteQueryEngine(store.path).ensure_index()
    result = run_readonly_sql(
        store.path, "SELECT tool, count(*) AS n FROM events GROUP BY tool ORDER BY tool;", limit=2
    )
    assert result.columns == ["tool", "n"] and result.truncated
    assert result.rows == [(None, 1), ("convert", 20)]
    fts = run_readonly_sql(
        store.path,
        "SELECT count(*) FROM events WHERE rowid IN "
        "(SELECT rowid FROM events_fts WHERE events_fts MATCH 'quito')",
    )
    assert fts.rows == [(20,)]
    assert run_readonly_sql(store.path, "SELECT ';' AS semi").rows == [(";",)]
