"""The query engines, SQLite and PostgreSQL, on the same events and the same assertions:
filters, the search index (SQLite: backfill and trigger; PostgreSQL: the expression index),
keyset pages, activity; and read-only SQL (`mcp-notary sql`), the same rows from either store."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from pgtest import make_old_store, pg_schema
from store_copy import copy_trail

from mcp_notary.access.sqlite import SQLiteAccessStore
from mcp_notary.errors import StoreError
from mcp_notary.events.model import AuditEvent, Principal, SensitiveField, ServerInfo
from mcp_notary.ids import new_event_id, utc_timestamp
from mcp_notary.ledger.store import CheckpointRow, Store, StreamHead, StreamInfo, prepare_row
from mcp_notary.ledger.stores.postgres import PostgresStore
from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.query.engine import QueryEngine, open_query_engine
from mcp_notary.query.model import Cursor, Query, QueryError, SqlRefused
from mcp_notary.query.postgres import PostgresQueryEngine
from mcp_notary.query.sql import MAX_ROWS, run_readonly_sql
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


def _append(store: Store, stream: str, events: list[AuditEvent]) -> None:
    head = store.head(stream)
    rows = []
    for event in events:
        row = prepare_row(event, stream, head)
        head = StreamHead(row.seq, row.chain_hash)
        rows.append(row)
    store.append_batch(rows)


def _fill(store: Store) -> None:
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


@dataclass
class Backend:
    name: str
    store: Store
    url: str

    def engine(self) -> QueryEngine:
        return open_query_engine(self.url)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgres":
        with pg_schema("query") as url:
            pg = PostgresStore(url)
            _fill(pg)
            yield Backend("postgres", pg, url)
            pg.close()
        return
    sqlite = SQLiteStore(tmp_path / "audit.db")
    _fill(sqlite)
    yield Backend("sqlite", sqlite, str(tmp_path / "audit.db"))
    sqlite.close()


def _ids(rows: list) -> list[int]:  # type: ignore[type-arg]
    return [json.loads(r.body)["jsonrpc_id"] for r in rows]


def test_filters_without_the_index(backend: Backend) -> None:
    engine = backend.engine()
    # PostgreSQL's index is part of the schema; SQLite's is built on first use.
    assert engine.indexed is (backend.name == "postgres")
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
    if backend.name == "sqlite":
        with pytest.raises(QueryError):
            engine.search(Query(text="Lisbon"))  # search needs the index
    engine.close()


def test_index_backfills_then_follows_appends(backend: Backend) -> None:
    engine, store = backend.engine(), backend.store
    progress: list[tuple[int, int]] = []
    if backend.name == "sqlite":
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
    # Text that looks like query syntax is only words, on both backends.
    for text in ("a'|b & !c:*", "lisbon) OR (oslo", 'NEAR("x" y)', "\\ ' \" :* <-> !"):
        try:
            engine.search(Query.parse(text=text))
        except QueryError as exc:
            assert "at least one word" in str(exc)
    # Case-folded words of letters and digits; underscores and punctuation separate.
    assert _ids(engine.search(Query(text='"AWS access KEY"')).rows) == [60]
    assert _ids(engine.search(Query(text="aws_access_key", kind="call")).rows) == [60]
    assert engine.search(Query(text='"key access"')).rows == []  # a phrase keeps its order
    engine.close()


def test_cursor_pages_cover_every_match_once(backend: Backend) -> None:
    engine = backend.engine()
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
    # Filters and a cursor together: pages of one tool's calls, newest first, no gaps.
    pages: list[list[int]] = []
    query = Query(tool="convert", limit=4)
    while True:
        page = engine.search(query)
        pages.append(_ids(page.rows))
        if page.next_cursor is None:
            break
        query = Query(tool="convert", limit=4, cursor=Cursor.decode(page.next_cursor))
    assert [i for p in pages for i in p] == list(range(58, 0, -3))
    assert all(len(p) == 4 for p in pages[:-1])
    engine.close()


def test_activity_counts(backend: Backend) -> None:
    engine = backend.engine()
    activity = engine.activity(None, None)
    assert activity.total == 61
    assert dict(activity.by_tool) == {"lookup": 21, "convert": 20, "search": 20}
    assert dict(activity.by_outcome)["tool_error"] == 13
    assert sum(n for _, n in activity.by_time) == 61
    assert activity.bucket == "hour" and activity.by_time == [("2026-01-01T00", 61)]
    assert dict(engine.activity(None, None, principal="user1").by_principal) == {"user1": 20}
    engine.close()


def test_read_connection_cannot_write(backend: Backend) -> None:
    engine = backend.engine()
    if isinstance(engine, SQLiteQueryEngine):
        with pytest.raises(sqlite3.OperationalError):
            engine._db.execute("CREATE TABLE x (a)")
    else:
        assert isinstance(engine, PostgresQueryEngine)
        for statement in ("CREATE TABLE x (a int)", "DELETE FROM events",
                          "INSERT INTO access_grants (principal, role, action, at, actor, "
                          "event_id) VALUES ('p', 'admin', 'grant', 't', 'a', 'e')"):  # fmt: skip
            with pytest.raises(StoreError, match="read-only transaction"):
                engine._session.fetch(statement)
    assert backend.store.count() == 62
    engine.close()


def test_postgres_queries_keep_to_the_deadline() -> None:
    with pg_schema("query") as url:
        PostgresStore(url).close()
        engine = PostgresQueryEngine(url, deadline_s=0.001)
        with pytest.raises(QueryError, match="longer than"):
            engine._fetch("SELECT pg_sleep(0.2)", ())
        engine.close()


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM events",
        "UPDATE events SET tool = 'x'",
        "INSERT INTO events SELECT * FROM events",
        "DROP TABLE events",
        "SELECT 1; DELETE FROM events",
        "SELECT 1; SELECT 2",
        "WITH gone AS (DELETE FROM events RETURNING seq) SELECT count(*) FROM gone",
        "SELECT * FROM events FOR UPDATE",
        "PRAGMA writable_schema = 1",
        "ATTACH DATABASE '/tmp/other.db' AS other",
        "SELECT * FROM access_tokens",
        "SELECT count(*) FROM events WHERE EXISTS (SELECT 1 FROM access_grants)",
        "SELECT * FROM subject_keys",
        "CREATE TEMP TABLE t AS SELECT 1",
        "COPY events TO '/tmp/events.txt'",
        "SET default_transaction_read_only = off",
        "VACUUM",
        " ; ",
    ],
)
def test_readonly_sql_refuses_everything_but_reading(backend: Backend, statement: str) -> None:
    _access_tables(backend)
    with pytest.raises(QueryError, match=r"^sql: ") as refused:
        run_readonly_sql(backend.url, statement)
    # Against the policy, so recorded as a denied read; unless it is not even valid SQL (the
    # empty one, and on SQLite a DELETE inside WITH or FOR UPDATE, which it does not parse).
    invalid = "syntax error" in str(refused.value) or "empty statement" in str(refused.value)
    assert isinstance(refused.value, SqlRefused) != invalid, refused.value
    assert backend.store.count() == 62


def _access_tables(backend: Backend) -> None:
    """The access records exist, so that reading them is refused, not missing."""
    if backend.name == "sqlite":
        SQLiteAccessStore(backend.url).close()


@pytest.mark.parametrize(
    ("statement", "why"),
    [
        ("SELECT 1; DELETE FROM events", "one statement at a time"),
        ("DELETE FROM events", "refused: only SELECT over events, pruned_events, streams"),
        ("SELECT secret_hash FROM access_tokens", "refused: only SELECT over events"),
        ("SELECT wrapped FROM subject_keys", "refused: only SELECT over events"),
    ],
)
def test_readonly_sql_says_why(backend: Backend, statement: str, why: str) -> None:
    _access_tables(backend)
    with pytest.raises(QueryError, match=why):
        run_readonly_sql(backend.url, statement)


# Functions each backend refuses, whatever the tables: (statement, why).
REFUSED_CALLS = {
    "sqlite": [
        ("SELECT fts3_tokenizer('simple')", "fts3_tokenizer() is not an allowed function"),
        ("SELECT count(*) FROM events WHERE fts3_tokenizer('x', x'00') IS NULL", "fts3_tok"),
        ("SELECT randomblob(1000000000)", "a string or BLOB would exceed 64 MiB"),
        ("SELECT hex(zeroblob(1000000000))", "a string or BLOB would exceed 64 MiB"),
        ("SELECT group_concat(body, zeroblob(100000000)) FROM events", "exceed 64 MiB"),
    ],
    "postgres": [
        ("SELECT pg_read_file('/etc/hostname')", "pg_read_file() is not an allowed function"),
        ("SELECT seq FROM events WHERE pg_read_file('/etc/hostname') > ''", "pg_read_file()"),
        ("SELECT (SELECT lo_import('/etc/hostname'))", "lo_import() is not an allowed function"),
        ("SELECT count(*) FROM events GROUP BY set_config('a.b', 'c', true)", "set_config()"),
        ("VALUES (1), (length(pg_read_file('/etc/hostname')))", "pg_read_file()"),
        ("SELECT * FROM query_to_xml('SELECT 1', true, false, '')", "query_to_xml()"),
        ("SELECT repeat('x', 1000000000)", "repeat() is not an allowed function"),
        ("SELECT array_fill(0, ARRAY[200000000])", "array_fill() is not an allowed function"),
        ("COPY (SELECT 1) TO STDOUT", "refused: only SELECT over events"),
    ],
}


@pytest.mark.parametrize("case", range(9))
def test_readonly_sql_refuses_functions_off_the_list(backend: Backend, case: int) -> None:
    """Functions that hand out pointers, read files, run SQL text or build a value of any
    size from a number are refused wherever they appear, before anything runs; a call the
    deadline cannot interrupt is stopped by the value limit at once."""
    calls = REFUSED_CALLS[backend.name]
    if case >= len(calls):
        pytest.skip("fewer probes on this backend")
    statement, why = calls[case]
    with pytest.raises(SqlRefused, match=re.escape(why)):
        run_readonly_sql(backend.url, statement)
    assert backend.store.count() == 62


def test_readonly_sql_allows_the_common_functions(backend: Backend) -> None:
    """Aggregates, window functions, text, dates, JSON and casts work on both backends."""
    body_text = "convert_from(body, 'UTF8')" if backend.name == "postgres" else "CAST(body AS TEXT)"
    statement = (
        f"SELECT lower(kind) AS k, count(*) AS n, max(length({body_text})) > 0 AS sized, "
        f"min(substr(timestamp, 1, 4)) AS year, sum(CAST(seq AS INTEGER)) AS seqs, "
        f"coalesce(max(tool), '-') AS tool, row_number() OVER (ORDER BY lower(kind)) AS r "
        f"FROM events WHERE kind LIKE 'c%' AND seq BETWEEN 1 AND 100 GROUP BY lower(kind)"
    )
    result = run_readonly_sql(backend.url, statement)
    assert [row[:2] for row in result.rows] == [("call", 61)]  # and one audit_access
    mark = "%s" if backend.name == "postgres" else "?"  # parameters are checked the same way
    counted = run_readonly_sql(
        backend.url, f"SELECT count(*) FROM events WHERE lower(kind) = {mark}", params=["call"]
    )
    assert counted.rows == [(61,)]
    with pytest.raises(SqlRefused, match="is not an allowed function"):
        call = "pg_read_file" if backend.name == "postgres" else "fts3_tokenizer"
        run_readonly_sql(backend.url, f"SELECT {call}({mark})", params=["/etc/hostname"])


def test_readonly_sql_bounds_the_bytes_it_returns(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are counted as they arrive: once they hold more than MAX_RESULT_BYTES the
    statement is refused, not read on (10,000 rows of a 64 MiB value would not fit memory)."""
    import mcp_notary.query.sql as sql_module

    statement = "SELECT body FROM events ORDER BY stream, seq"
    whole = run_readonly_sql(backend.url, statement, limit=MAX_ROWS)
    size = sum(len(row[0]) // 2 for row in whole.rows)  # hex: two characters a byte
    monkeypatch.setattr(sql_module, "MAX_RESULT_BYTES", size // 2)
    with pytest.raises(SqlRefused, match="the result would exceed"):
        run_readonly_sql(backend.url, statement, limit=MAX_ROWS)


# The same trail in both stores reads the same: BLOBs and bytea as the same hex.
SAME_ROWS = [
    "SELECT stream, seq, event_id, timestamp, kind, method, tool, principal_id, outcome, body, "
    "leaf_hash, chain_hash FROM events ORDER BY stream, seq",
    "SELECT tool, count(*) AS n FROM events GROUP BY tool ORDER BY tool NULLS FIRST",
    "SELECT count(*) AS n FROM events WHERE tool LIKE 'look%' AND kind = 'call'",
    "SELECT e.event_id, s.host, s.pid FROM events AS e JOIN streams AS s ON s.stream = e.stream "
    "WHERE e.seq < 3 ORDER BY e.event_id",
    "SELECT stream, origin, size, root, note, created_at FROM checkpoints ORDER BY stream",
    "SELECT stream, seq FROM pruned_events",
    "VALUES (1, 'one')",
]


def test_readonly_sql_reads_the_same_rows_from_either_store(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    sqlite = SQLiteStore(path)
    _fill(sqlite)
    note = b"example.org/log\n31\nAAAA\n\n- key sig\n"
    sqlite.append_checkpoint(CheckpointRow("s1", "example.org/log", 31, b"\x01" * 32, note, "t"))
    sqlite.close()
    with pg_schema("sql") as url:
        copy_trail(str(path), url)
        for statement in SAME_ROWS:
            on_sqlite = run_readonly_sql(path, statement, limit=MAX_ROWS)
            on_postgres = run_readonly_sql(url, statement, limit=MAX_ROWS)
            assert on_postgres == on_sqlite, statement
        everything = run_readonly_sql(url, SAME_ROWS[0], limit=MAX_ROWS)
        assert len(everything.rows) == 62 and not everything.truncated
        body, leaf = everything.rows[0][9], everything.rows[0][10]
        assert json.loads(bytes.fromhex(body))["kind"] == "call" and len(leaf) == 64
        (checkpoint,) = run_readonly_sql(url, SAME_ROWS[4]).rows
        assert checkpoint[3] == "01" * 32 and bytes.fromhex(checkpoint[4]) == note


def test_readonly_sql_fetches_one_row_more_than_the_limit(backend: Backend) -> None:
    statement = "SELECT seq FROM events ORDER BY stream, seq"
    five = run_readonly_sql(backend.url, statement, limit=5)
    assert five.columns == ["seq"] and five.rows == [(1,), (2,), (3,), (4,), (5,)]
    assert five.truncated
    whole = run_readonly_sql(backend.url, statement, limit=62)
    assert len(whole.rows) == 62 and not whole.truncated
    # A result far larger than the limit is not produced, let alone read, whole: 10^9 rows.
    huge = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
        "SELECT i FROM n"
    )
    started = time.monotonic()
    first = run_readonly_sql(backend.url, huge, limit=10, deadline_s=5)
    assert first.rows == [(i,) for i in range(1, 11)] and first.truncated
    assert time.monotonic() - started < 5
    for limit in (0, MAX_ROWS + 1):
        with pytest.raises(QueryError, match="limit"):
            run_readonly_sql(backend.url, statement, limit=limit)


def test_readonly_sql_keeps_to_its_deadline(backend: Backend) -> None:
    endless = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
        "SELECT max(i) FROM n"
    )
    started = time.monotonic()
    with pytest.raises(QueryError, match=r"took longer than 0\.2 s"):
        run_readonly_sql(backend.url, endless, deadline_s=0.2)
    assert time.monotonic() - started < 5
    if backend.name == "postgres":
        # One function call that runs long: the server's statement_timeout ends it too.
        with pytest.raises(SqlRefused, match=r"took longer than 0\.2 s"):
            run_readonly_sql(
                backend.url,
                "SELECT count(*) FROM generate_series(1, 1000000000000)",
                deadline_s=0.2,
            )
        assert time.monotonic() - started < 5


def test_readonly_sql_reads_events_and_the_index(backend: Backend) -> None:
    if backend.name == "sqlite":
        SQLiteQueryEngine(Path(backend.url)).ensure_index()
        search = (
            "SELECT count(*) FROM events WHERE rowid IN "
            "(SELECT rowid FROM events_fts WHERE events_fts MATCH 'quito')"
        )
    else:
        search = (
            "SELECT count(*) FROM events WHERE mcp_notary_search_vector(body) @@ 'quito'::tsquery"
        )
    result = run_readonly_sql(
        backend.url,
        "SELECT tool, count(*) AS n FROM events GROUP BY tool ORDER BY tool NULLS FIRST;",
        limit=2,
    )
    assert result.columns == ["tool", "n"] and result.truncated
    assert result.rows == [(None, 1), ("convert", 20)]
    assert run_readonly_sql(backend.url, search).rows == [(20,)]
    assert run_readonly_sql(backend.url, "SELECT ';' AS semi").rows == [(";",)]
    mark = "?" if backend.name == "sqlite" else "%s"
    lookups = f"SELECT count(*) FROM events WHERE tool = {mark}"
    assert run_readonly_sql(backend.url, lookups, params=["lookup"]).rows == [(21,)]


def test_readonly_sql_on_postgres_reads_partitions_and_lets_the_server_split_statements() -> None:
    with pg_schema("sql") as url:
        store = PostgresStore(url)
        _fill(store)
        store.close()
        # The events of January 2026 are in their month's partition, which may be read by name.
        assert run_readonly_sql(url, "SELECT count(*) FROM events_2026_01").rows == [(62,)]
        assert run_readonly_sql(url, "SELECT count(*) FROM events_default").rows == [(0,)]
        # A `;` in a dollar-quoted string is text: the server, not a scan of the text, decides.
        assert run_readonly_sql(url, "SELECT $$a;b$$ AS s").rows == [("a;b",)]
        json_text = run_readonly_sql(url, "SELECT convert_from(body, 'UTF8')::jsonb -> 'server' "
                                          "FROM events ORDER BY stream, seq LIMIT 1")  # fmt: skip
        assert json.loads(json_text.rows[0][0])["name"] == "alpha"  # JSON as text, as on SQLite
        with pytest.raises(QueryError, match="it reads pg_authid"):
            run_readonly_sql(url, "SELECT rolname FROM pg_authid")


def test_postgres_migration_indexes_existing_events_and_damaged_bodies_still_append() -> None:
    """A store made by an older release (schema 2) gets migration 3 on the next writable open:
    the expression index covers the events already there. A body that is not JSON (or not
    UTF-8) is stored, unindexed: the index is never the reason an event is lost."""
    from mcp_notary.ledger.stores.pg_migrations import LATEST_VERSION

    with pg_schema("migrate") as url:
        head = StreamHead()
        old_rows = []
        for i in range(5):
            row = prepare_row(_event(i, arguments={"city": "Lisbon", "n": i}), "old", head)
            head = StreamHead(row.seq, row.chain_hash)
            old_rows.append(row)
        make_old_store(url, 2, old_rows)
        with pytest.raises(StoreError, match="schema version 2"):
            PostgresQueryEngine(url)  # the read side reads only the current schema
        store = PostgresStore(url)  # migrates
        engine = PostgresQueryEngine(url)
        assert _ids(engine.search(Query(text="lisbon", sort="oldest")).rows) == [0, 1, 2, 3, 4]
        damaged = []
        for i, body in ((10, b"not json at all"), (11, b"\xff\xfe{"), (12, b"[1, 2]")):
            row = prepare_row(_event(i, arguments={"city": "Lisbon"}), "old", head)
            head = StreamHead(row.seq, row.chain_hash)
            damaged.append(replace(row, body=body))
        store.append_batch(damaged)
        assert store.count("old") == 8
        assert len(engine.search(Query(text="lisbon", limit=None)).rows) == 5
        assert len(engine.search(Query(stream="old", limit=None)).rows) == 8  # filters list them
        ((version,),) = engine._session.fetch("SELECT max(version) FROM schema_migrations")
        assert version == LATEST_VERSION
        engine.close()
        store.close()
