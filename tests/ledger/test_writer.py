from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from factories import event

from mcp_notary.errors import StoreError
from mcp_notary.ledger.store import EventRow, StreamInfo
from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.ledger.writer import LedgerWriter
from mcp_notary.verify.chain import verify_stream


def test_group_commit_keeps_submit_order_and_chain(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    store.create_stream(StreamInfo("s", "t", "h", 1, "0"))
    writer = LedgerWriter(store, "s")
    futures = [writer.submit(event(tool=f"t{i}")) for i in range(1000)]
    writer.close()
    rows = [f.result(timeout=5) for f in futures]
    assert [r.seq for r in rows] == list(range(1, 1001))
    assert [r.tool for r in store.scan("s")] == [f"t{i}" for i in range(1000)]
    assert list(verify_stream("s", store.scan("s"))) == []


class FlakyStore(SQLiteStore):
    """A real SQLite store whose appends fail while `down` is set."""

    down = threading.Event()

    def append_batch(self, rows: Sequence[EventRow]) -> None:
        if self.down.is_set():
            raise StoreError("disk on fire")
        super().append_batch(rows)


def test_store_outage_fails_futures_then_lands_everything_in_order(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "a.db")
    store.create_stream(StreamInfo("s", "t", "h", 1, "0"))
    recovered: list[tuple[str, float]] = []
    writer = LedgerWriter(store, "s", on_recovered=lambda e, s: recovered.append((e, s)))
    store.down.set()
    failed = writer.submit(event(tool="during"))
    with pytest.raises(StoreError, match="unavailable"):
        failed.result(timeout=5)
    store.down.clear()
    after = writer.submit(event(tool="after"))
    assert after.result(timeout=5).seq == 2
    writer.close()
    assert [r.tool for r in store.scan("s")] == ["during", "after"]
    assert recovered and "disk on fire" in recovered[0][0]


def test_close_is_idempotent_and_later_submits_fail(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    store.create_stream(StreamInfo("s", "t", "h", 1, "0"))
    writer = LedgerWriter(store, "s")
    writer.close()
    writer.close()
    with pytest.raises(StoreError):
        writer.submit(event()).result(timeout=1)
