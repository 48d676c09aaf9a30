"""Short-lived reads share the store's reader stream (issue 15, item 6).

100 `mcp-notary events` runs (60 one after another, 40 eight at a time) over a real trail on
each backend: every read is recorded, the number of streams grows by the reader stream, not
by the reads, and the whole store (the shared stream included) verifies.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from e2e_notary import Notary
from pgtest import pg_schema
from readside_trail import run_trail

pytestmark = pytest.mark.timeout(600)


def _query(store: str, sql: str) -> list[tuple[Any, ...]]:
    if store.startswith("postgresql://"):
        with psycopg.connect(store, autocommit=True) as db:
            return db.execute(sql.encode()).fetchall()
    db = sqlite3.connect(store)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store(
    request: pytest.FixtureRequest,
    notary: Notary,
    time_cmd: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    if request.param == "postgres":
        with pg_schema("readers") as url:
            run_trail(notary, time_cmd, url, 10)  # type: ignore[arg-type]
            yield url
        return
    path = str(tmp_path_factory.mktemp("readers") / "audit.db")
    run_trail(notary, time_cmd, path, 10)  # type: ignore[arg-type]
    yield path


def test_a_hundred_reads_share_one_reader_stream_that_verifies(notary: Notary, store: str) -> None:
    streams_before = {s for (s,) in _query(store, "SELECT stream FROM streams")}

    def read(i: int) -> int:
        proc = notary.run("events", "--json", "--limit", "5", "--purpose", f"R-{i}", store=store)  # type: ignore[arg-type]
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        return i

    for i in range(60):
        read(i)
    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(read, range(60, 100))) == list(range(60, 100))

    streams_after = {s for (s,) in _query(store, "SELECT stream FROM streams")}
    new = streams_after - streams_before
    # One shared stream; two only if the very first readers raced to create it.
    assert 1 <= len(new) <= 2, new
    reads = _query(
        store,
        "SELECT stream, body FROM events WHERE kind = 'audit_access' ORDER BY stream, seq",
    )
    purposes = sorted(json.loads(bytes(body))["details"]["purpose"] for _, body in reads)
    assert purposes == sorted(f"R-{i}" for i in range(100))  # each read recorded, once
    assert {s for s, _ in reads} == new

    proc = notary.run("verify", "--json", store=store)  # type: ignore[arg-type]
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report["findings"]
    by_stream = {s["stream"]: s for s in report["stream_reports"]}
    for stream in new:
        assert by_stream[stream]["covered_size"] == by_stream[stream]["last_seq"]
        assert by_stream[stream]["state"]["closure"] == "reader"
