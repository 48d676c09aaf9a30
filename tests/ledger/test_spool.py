"""The local spool: format, outage and recovery, order, bounds, abandoned spools, and the
ledger writer riding an outage on top of it. The inner store is a real SQLite store whose
reachability a test switches off and on (the real-PostgreSQL outage is in
tests/capture/test_postgres_outage.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from factories import append, event
from factories import stream_info as info
from small_fs import fill, small_filesystem

from mcp_notary.errors import StoreError
from mcp_notary.ledger import spool as spool_module
from mcp_notary.ledger.canonical import GENESIS_HASH, chain_hash
from mcp_notary.ledger.spool import (
    SpoolFullError,
    SpoolingStore,
    StoreUnavailableError,
    decode_rows,
    encode_row,
)
from mcp_notary.ledger.store import EventRow, StreamHead, prepare_row
from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.ledger.writer import LedgerWriter


class Switchable(SQLiteStore):
    """A SQLite store that can be made unreachable."""

    up = True

    def _gate(self) -> None:
        if not self.up:
            raise StoreUnavailableError("connection refused (test)")

    def append_batch(self, rows: Sequence[EventRow]) -> None:
        self._gate()
        super().append_batch(rows)

    def head(self, stream: str) -> StreamHead:
        self._gate()
        return super().head(stream)

    def count(self, stream: str | None = None) -> int:
        self._gate()
        return super().count(stream)


@pytest.fixture(autouse=True)
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "RETRY_INTERVAL_S", 0.0)


@pytest.fixture
def inner(tmp_path: Path) -> Iterator[Switchable]:
    s = Switchable(tmp_path / "audit.db")
    yield s
    s.close()


def rows_for(stream: str, head: StreamHead, n: int) -> tuple[list[EventRow], StreamHead]:
    rows = []
    for _ in range(n):
        row = prepare_row(event(), stream, head)
        head = StreamHead(row.seq, row.chain_hash)
        rows.append(row)
    return rows, head


def assert_chain(store: SQLiteStore, stream: str, n: int) -> None:
    rows = list(store.scan(stream))
    assert [r.seq for r in rows] == list(range(1, n + 1))
    prev = GENESIS_HASH
    for r in rows:
        assert r.chain_hash == chain_hash(prev, r.body)
        prev = r.chain_hash


def test_records_round_trip_and_a_torn_tail_is_dropped() -> None:
    rows, _ = rows_for("s", StreamHead(), 3)
    data = b"".join(encode_row(r) for r in rows)
    assert decode_rows(data) == rows
    assert decode_rows(data[:-5]) == rows[:2]  # torn last record
    corrupt = bytearray(data)
    corrupt[-1] ^= 0xFF
    assert decode_rows(bytes(corrupt)) == rows[:2]


def test_an_outage_is_spooled_then_drained_in_order(inner: Switchable, tmp_path: Path) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    store = SpoolingStore(inner, tmp_path / "spool", on_outage=lambda w, d: seen.append((w, d)))
    store.create_stream(info("s"))
    first, head = rows_for("s", StreamHead(), 2)
    store.append_batch(first)
    inner.up = False
    during, head = rows_for("s", head, 5)
    store.append_batch(during[:3])  # no error: durable in the spool
    store.append_batch(during[3:])
    assert store.degraded and store._spool.size > 0
    with pytest.raises(StoreUnavailableError):
        store.count()  # a read never sees the hole where spooled rows will go
    inner.up = True
    assert store.count("s") == 7  # the read drained the spool first
    after, head = rows_for("s", head, 1)
    store.append_batch(after)
    assert_chain(inner, "s", 8)
    assert [w for w, _ in seen] == ["degraded", "recovered"]
    assert seen[1][1]["spooled_events"] == 5
    assert not store.degraded and store._spool.size == 0
    store.close()
    assert not (tmp_path / "spool").exists()  # an empty spool (and its directory) is removed


def test_a_refused_append_is_never_spooled(inner: Switchable, tmp_path: Path) -> None:
    store = SpoolingStore(inner, tmp_path / "spool")
    append(store, "s", [event()])
    stale = prepare_row(event(), "s", StreamHead())  # seq 1 again
    with pytest.raises(StoreError) as caught:
        store.append_batch([stale])
    assert not isinstance(caught.value, StoreUnavailableError)
    assert store._spool.size == 0 and not store.degraded
    store.close()


def test_a_full_spool_raises_and_is_reported_once(inner: Switchable, tmp_path: Path) -> None:
    seen: list[str] = []
    store = SpoolingStore(
        inner, tmp_path / "spool", max_bytes=2000, on_outage=lambda w, d: seen.append(w)
    )
    inner.up = False
    head = StreamHead()
    spooled = 0
    with pytest.raises(SpoolFullError):
        for _ in range(100):
            batch, next_head = rows_for("s", head, 1)
            store.append_batch(batch)
            head = next_head
            spooled += 1
    with pytest.raises(SpoolFullError):
        store.append_batch(rows_for("s", head, 1)[0])
    assert seen == ["degraded", "spool_full"]
    assert 0 < spooled < 100 and store._spool.size <= 2000
    inner.up = True
    batch, _ = rows_for("s", head, 1)
    store.append_batch(batch)  # the refused row, retried after the spooled ones
    assert_chain(inner, "s", spooled + 1)
    store.close()


def test_a_dead_process_spool_is_drained_by_the_next_open(
    inner: Switchable, tmp_path: Path
) -> None:
    first = SpoolingStore(inner, tmp_path / "spool")
    inner.up = False
    rows, _ = rows_for("dead", StreamHead(), 4)
    first.append_batch(rows)
    first._spool._file.close()  # the process dies: its lock goes, its spool stays
    inner.up = True
    second = SpoolingStore(inner, tmp_path / "spool")  # drains at open
    assert_chain(inner, "dead", 4)
    assert [p.suffix for p in (tmp_path / "spool").iterdir()] == [".spool"]  # its own only
    second.close()


def test_a_live_process_spool_is_left_alone(inner: Switchable, tmp_path: Path) -> None:
    first = SpoolingStore(inner, tmp_path / "spool")
    inner.up = False
    first.append_batch(rows_for("alive", StreamHead(), 2)[0])
    inner.up = True
    second = SpoolingStore(Switchable(tmp_path / "audit.db"), tmp_path / "spool")
    assert second.count("alive") == 0  # still first's to drain
    first.close()
    assert second.count("alive") == 2
    second.close()


def test_the_writer_rides_an_outage_without_a_gap(inner: Switchable, tmp_path: Path) -> None:
    store = SpoolingStore(inner, tmp_path / "spool")
    writer = LedgerWriter(store, "w", head=StreamHead())
    assert writer.submit(event()).result(5).seq == 1
    inner.up = False
    futures = [writer.submit(event()) for _ in range(50)]
    # Durable in the spool: a strict caller would go ahead.
    assert [f.result(5).seq for f in futures] == list(range(2, 52))
    inner.up = True
    writer.submit(event()).result(5)
    writer.close()
    assert_chain(inner, "w", 52)
    store.close()


def test_outage_events_can_bracket_the_outage_in_the_chain(
    inner: Switchable, tmp_path: Path
) -> None:
    """The wiring a recorder uses: `on_outage` -> lifecycle events, which land in the chain
    (through the spool) between the last batch before and the first batch after the outage."""
    from mcp_notary.config import NotaryConfig
    from mcp_notary.events.build import CaptureContext
    from mcp_notary.events.model import Principal
    from mcp_notary.recorder import AuditRecorder, redactor_from_config

    store = SpoolingStore(inner, tmp_path / "spool")
    recorder = AuditRecorder(
        store,
        redactor_from_config(NotaryConfig()),
        CaptureContext(principal=Principal("t", "user", "config"), transport="stdio"),
    )
    recorder.start()
    store.on_outage = lambda what, details: recorder.lifecycle(f"audit_{what}", details)
    recorder.lifecycle("before", {}).result(5)
    inner.up = False
    for _ in range(3):
        recorder.lifecycle("during", {}).result(5)  # durable in the spool
    inner.up = True
    recorder.lifecycle("after", {}).result(5)
    recorder.close("test")
    phases = [json.loads(r.body)["details"]["phase"] for r in inner.scan(recorder.stream)]
    assert phases[0] == "started" and phases[-1] == "stopped"
    assert phases.index("audit_degraded") < phases.index("audit_recovered")
    assert phases.index("before") < phases.index("audit_degraded")
    assert phases.count("during") == 3
    assert_chain(inner, recorder.stream, len(phases))
    store.close()


def test_a_spool_on_a_full_disk_refuses_cleanly_and_keeps_what_it_acknowledged(
    inner: Switchable, tmp_path: Path
) -> None:
    """The spool's own disk fills up during an outage (a real, tiny filesystem): what was
    acknowledged stays whole on disk (no torn record), later batches are refused like a full
    spool (their futures fail: strict calls are refused), and once there is room and the
    store is back, the writer's retried rows follow the spooled ones with no gap."""
    seen: list[str] = []
    with small_filesystem(tmp_path) as fs:
        store = SpoolingStore(inner, fs / "spool", on_outage=lambda w, d: seen.append(w))
        writer = LedgerWriter(store, "w", head=StreamHead())
        assert writer.submit(event()).result(5).seq == 1
        inner.up = False
        durable = [writer.submit(event()) for _ in range(20)]
        assert [f.result(5).seq for f in durable] == list(range(2, 22))
        filler = fill(fs)
        refused = [writer.submit(event()) for _ in range(10)]
        for future in refused:
            with pytest.raises(StoreError, match="No space left"):
                future.result(5)
        assert seen == ["degraded", "spool_full"]
        spooled = store._spool.path.read_bytes()
        assert len(spooled) == store._spool.size
        assert [r.seq for r in decode_rows(spooled)] == list(range(2, 22))
        filler.unlink()
        inner.up = True
        assert writer.submit(event()).result(5).seq == 32
        writer.close()
        assert_chain(inner, "w", 32)
        assert seen == ["degraded", "spool_full", "recovered"]
        store.close()
