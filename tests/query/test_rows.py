"""Read-only statements over either store (what the compliance evidence reader runs): the same
SQL with the driver's placeholder reads the same rows, and nothing written through them lands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pgtest import pg_schema

from mcp_notary.errors import ConfigError, StoreError
from mcp_notary.events.model import AuditEvent, Principal
from mcp_notary.ids import new_event_id, utc_timestamp
from mcp_notary.ledger.store import StreamHead, StreamInfo, prepare_row
from mcp_notary.ledger.stores import open_store
from mcp_notary.query.rows import open_readonly_rows

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    def filled(url: str) -> str:
        store = open_store(url)
        store.create_stream(StreamInfo("s1", utc_timestamp(T0), "h", 1, "0", "srv"))
        head, rows = StreamHead(), []
        for i in range(5):
            event = AuditEvent(
                event_id=new_event_id(T0 + i), timestamp=utc_timestamp(T0 + i), kind="call",
                principal=Principal(f"user{i % 2}", "user", "os"), method="tools/call",
                tool="lookup", arguments={"n": i},
            )  # fmt: skip
            row = prepare_row(event, "s1", head)
            head = StreamHead(row.seq, row.chain_hash)
            rows.append(row)
        store.append_batch(rows)
        store.close()
        return url

    if request.param == "postgres":
        with pg_schema("rows") as pg:
            yield filled(pg)
        return
    yield filled(str(tmp_path / "audit.db"))


def test_the_same_sql_reads_the_same_rows_and_cannot_write(url: str) -> None:
    rows = open_readonly_rows(url)
    try:
        p = rows.placeholder
        assert p == ("%s" if url.startswith("postgresql") else "?")
        found = rows.fetch(
            f"SELECT seq, principal_id, body FROM events WHERE principal_id = {p} ORDER BY seq",
            ("user0",),
        )
        assert [(seq, who) for seq, who, _ in found] == [(1, "user0"), (3, "user0"), (5, "user0")]
        assert b'"n":2' in bytes(found[1][2])  # the stored bytes, as bytes on both drivers
        with pytest.raises(StoreError):
            rows.fetch(f"INSERT INTO streams (stream, created_at, host, pid, process_start) "
                       f"VALUES ({p}, {p}, {p}, {p}, {p})", ("s2", "x", "h", 1, "0"))  # fmt: skip
        assert rows.fetch("SELECT count(*) FROM streams") == [(1,)]
    finally:
        rows.close()


def test_a_store_that_is_neither_is_refused() -> None:
    with pytest.raises(ConfigError):
        open_readonly_rows("mysql://db/audit")
