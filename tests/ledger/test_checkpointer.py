"""The checkpointer: schedule, close, self-check, sealing abandoned streams, and the store's
append-only checkpoints table."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from factories import append, event, stream_info

from mcp_notary.errors import IntegrityError, StoreError
from mcp_notary.ledger.checkpoint import Checkpoint, SignedNote
from mcp_notary.ledger.checkpointer import (
    Checkpointer,
    CheckpointSettings,
    KeySigner,
    seal_stream,
    stream_origin,
)
from mcp_notary.ledger.merkle import root_from_leaves
from mcp_notary.ledger.signing import NoteSigner, verify_note
from mcp_notary.ledger.store import CheckpointRow, EventRow
from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.ledger.writer import LedgerWriter

SIGNER = NoteSigner.generate("mcp-notary/test")


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


class Recorder:
    def __init__(self) -> None:
        self.rows: list[CheckpointRow] = []
        self.name = "memory"

    def publish(self, row: CheckpointRow) -> None:
        self.rows.append(row)


def setup(tmp_path: Path, **options: object) -> tuple[SQLiteStore, LedgerWriter, Checkpointer]:
    store = SQLiteStore(tmp_path / "a.db")
    store.create_stream(stream_info("s"))
    checkpointer = Checkpointer(store, "s", KeySigner(SIGNER), **options)  # type: ignore[arg-type]
    checkpointer.start()
    writer = LedgerWriter(store, "s", on_committed=checkpointer.committed)
    return store, writer, checkpointer


def test_close_signs_a_checkpoint_of_every_committed_event(tmp_path: Path) -> None:
    published = Recorder()
    store, writer, checkpointer = setup(tmp_path, interval_s=60, publishers=[published])
    for i in range(300):
        writer.submit(event(tool=f"t{i}"))
    writer.close()
    last = checkpointer.close()
    assert last is not None and last.size == 300
    leaves = [r.leaf_hash for r in store.scan("s")]
    assert last.root == root_from_leaves(leaves)
    note = SignedNote.parse(last.note)
    assert verify_note(note, [SIGNER.verifier]) == [SIGNER.name]
    assert Checkpoint.parse_body(note.text) == Checkpoint(stream_origin("s"), 300, last.root)
    assert store.checkpoints("s") == [last] and published.rows == [last]
    assert checkpointer.close() == last  # idempotent: no second final checkpoint
    assert len(store.checkpoints("s")) == 1


def test_checkpoints_follow_growth_on_schedule_and_heartbeat_when_idle(tmp_path: Path) -> None:
    store, writer, checkpointer = setup(tmp_path, interval_s=0.05, heartbeat_s=0.3)
    for i in range(5):
        writer.submit(event(tool=f"t{i}")).result(timeout=5)
        time.sleep(0.08)
    assert wait_for(lambda: any(c.size == 5 for c in store.checkpoints("s")))
    sizes = [c.size for c in store.checkpoints("s")]
    assert len(set(sizes)) >= 3, sizes  # several checkpoints while the tree grew
    count = len(store.checkpoints("s"))
    # No growth: only the heartbeat re-signs, no sooner than heartbeat_s.
    time.sleep(0.1)
    assert len(store.checkpoints("s")) == count
    assert wait_for(lambda: len(store.checkpoints("s")) > count, timeout=2)
    assert store.checkpoints("s")[-1].size == 5
    writer.close()
    checkpointer.close()


def tamper(path: Path, *statements: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER events_no_update")
    db.execute("DROP TRIGGER events_delete_only_pruned")
    for sql in statements:
        db.execute(sql)
    db.close()


def test_full_self_check_alerts_on_any_row_changed_under_the_running_proxy(
    tmp_path: Path,
) -> None:
    alerts: list[str] = []
    _, writer, checkpointer = setup(
        tmp_path, interval_s=60, on_alert=alerts.append, self_check="full"
    )
    for i in range(10):
        writer.submit(event(tool=f"t{i}"))
    writer.close()
    tamper(
        tmp_path / "a.db",
        "UPDATE events SET leaf_hash = zeroblob(32) WHERE seq = 5",
        "DELETE FROM events WHERE seq = 9",
    )
    last = checkpointer.close()
    assert any("seq 5" in a and "not the one this process wrote" in a for a in alerts), alerts
    assert any("seq 9..9 vanished" in a for a in alerts), alerts
    # The checkpoint still commits to what was written, not to the tampered store.
    assert last is not None and last.size == 10


@pytest.mark.parametrize(
    "attack",
    [
        "UPDATE events SET chain_hash = zeroblob(32) WHERE seq >= 4",  # a rewrite, rehashed
        "DELETE FROM events WHERE seq = 10",  # the tail cut
    ],
)
def test_head_self_check_alerts_on_a_rewritten_or_cut_stream(tmp_path: Path, attack: str) -> None:
    alerts: list[str] = []
    _, writer, checkpointer = setup(tmp_path, interval_s=60, on_alert=alerts.append)
    for i in range(10):
        writer.submit(event(tool=f"t{i}"))
    writer.close()
    tamper(tmp_path / "a.db", attack)
    checkpointer.close()
    assert len(alerts) == 1 and "seq 10" in alerts[0], alerts


def test_a_failing_signer_never_stops_the_writer(tmp_path: Path) -> None:
    class Broken:
        key_name = "broken"

        def sign_checkpoint(self, checkpoint: Checkpoint, new_leaves: Sequence[bytes]) -> None:
            raise RuntimeError("HSM unplugged")

    errors: list[str] = []
    store = SQLiteStore(tmp_path / "a.db")
    store.create_stream(stream_info("s"))
    checkpointer = Checkpointer(store, "s", Broken(), interval_s=0.01, on_error=errors.append)  # type: ignore[arg-type]
    checkpointer.start()
    writer = LedgerWriter(store, "s", on_committed=checkpointer.committed)
    futures = [writer.submit(event()) for _ in range(50)]
    assert [f.result(timeout=5).seq for f in futures] == list(range(1, 51))
    writer.close()
    checkpointer.close()
    assert len(errors) == 1 and "HSM unplugged" in errors[0]  # reported once per outage
    assert store.checkpoints("s") == []


def test_writer_observer_sees_every_batch_in_order_and_cannot_break_it(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    store.create_stream(stream_info("s"))
    seen: list[int] = []
    lock = threading.Lock()

    def observe(rows: Sequence[EventRow]) -> None:
        with lock:
            seen.extend(r.seq for r in rows)
        if len(seen) < 5:
            raise RuntimeError("observer bug")

    writer = LedgerWriter(store, "s", on_committed=observe)
    futures = [writer.submit(event()) for _ in range(600)]
    writer.close()
    assert [f.result(timeout=5).seq for f in futures] == list(range(1, 601))
    assert seen == list(range(1, 601))


def test_seal_stream_checkpoints_a_dead_streams_closing_record(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    store.create_stream(stream_info("dead"))
    settings = CheckpointSettings(KeySigner(SIGNER))
    append(store, "dead", [event() for _ in range(7)])
    first = seal_stream(store, "dead", settings)
    assert first is not None and first.size == 7
    append(store, "dead", [event(tool="closing")])
    sealed = seal_stream(store, "dead", settings)
    assert sealed is not None and sealed.size == 8
    assert sealed.root == root_from_leaves([r.leaf_hash for r in store.scan("dead")])
    assert seal_stream(store, "dead", settings) == sealed  # nothing new: no new checkpoint


def test_seal_stream_refuses_to_sign_over_a_tampered_stream(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    store.create_stream(stream_info("dead"))
    settings = CheckpointSettings(KeySigner(SIGNER))
    append(store, "dead", [event(tool=f"t{i}") for i in range(5)])
    seal_stream(store, "dead", settings)
    db = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    db.execute("DROP TRIGGER events_no_update")
    db.execute("UPDATE events SET body = replace(body, 't2', 'x2'), leaf_hash = x'00' WHERE seq=3")
    db.close()
    append(store, "dead", [event()])
    with pytest.raises(IntegrityError, match="seq 3"):
        seal_stream(store, "dead", settings)
    assert [c.size for c in store.checkpoints("dead")] == [5]


def test_checkpoints_table_is_append_only(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    row = CheckpointRow("s", "o/s", 1, bytes(32), b"note", "2026-01-01T00:00:00.000000Z")
    store.append_checkpoint(row)
    assert store.latest_checkpoint("s") == row and store.latest_checkpoint("t") is None
    db = sqlite3.connect(tmp_path / "a.db")
    for sql in ("UPDATE checkpoints SET size = 2", "DELETE FROM checkpoints"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(sql)
    db.close()
    store.close()
    with pytest.raises(StoreError):
        store.append_checkpoint(row)  # closed store: a StoreError, not a raw sqlite error


def test_a_store_from_before_checkpoints_reads_as_having_none(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    store.create_stream(stream_info("s"))
    store.close()
    db = sqlite3.connect(tmp_path / "a.db")
    db.execute("DROP TABLE checkpoints")
    db.close()
    old = SQLiteStore(tmp_path / "a.db", readonly=True)
    assert old.checkpoints() == [] and old.latest_checkpoint("s") is None
