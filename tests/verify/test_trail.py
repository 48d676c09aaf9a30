"""The pure trail verifier on synthetic stores: each checkpoint-level finding, key windows,
time, and the parallel row checker agreeing with the sequential one."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from factories import append, event, stream_info

from mcp_notary.ids import utc_timestamp
from mcp_notary.ledger.checkpoint import Checkpoint
from mcp_notary.ledger.checkpointer import stream_origin
from mcp_notary.ledger.keys import TrustedKey
from mcp_notary.ledger.merkle import root_from_leaves
from mcp_notary.ledger.signing import NoteSigner, sign_note
from mcp_notary.ledger.store import CheckpointRow
from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.verify.checkpoints import CheckpointEvidence
from mcp_notary.verify.parallel import ParallelRowChecker
from mcp_notary.verify.report import TrailReport, verify_trail

KEY = NoteSigner.generate("mcp-notary/test")
TRUSTED = [TrustedKey(KEY.verifier)]


def note(size: int, root: bytes, stream: str = "s", signer: NoteSigner = KEY) -> bytes:
    return sign_note(Checkpoint(stream_origin(stream), size, root).to_body(), [signer]).render()


def make_store(tmp_path: Path, n: int = 20, sizes: tuple[int, ...] = (10, 20)) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "a.db")
    store.create_stream(stream_info("s"))
    append(store, "s", [event(tool=f"t{i}", ts=1_700_000_000 + i) for i in range(n)])
    leaves = [r.leaf_hash for r in store.scan("s")]
    for size in sizes:
        root = root_from_leaves(leaves[:size])
        store.append_checkpoint(
            CheckpointRow("s", stream_origin("s"), size, root, note(size, root), utc_timestamp())
        )
    return store


def run(
    store: SQLiteStore,
    extra: list[bytes] = (),  # type: ignore[assignment]
    trusted: list[TrustedKey] = TRUSTED,
    retention: dict[str, list[tuple[int, int]]] | None = None,
) -> TrailReport:
    evidence = [CheckpointEvidence(c.note, "store", c.stream) for c in store.checkpoints()]
    evidence += [CheckpointEvidence(e, f"file:{i}") for i, e in enumerate(extra)]
    return verify_trail(
        store.stream_names(),
        store.scan_leaves,
        evidence,
        trusted,
        origin_prefix="mcp-notary",
        retention=retention,
    )


def kinds(report: TrailReport) -> list[tuple[str, int | None]]:
    return [(f.kind, f.seq) for f in report.all_findings()]


def test_intact_store_is_intact(tmp_path: Path) -> None:
    report = run(make_store(tmp_path))
    assert report.status == 0 and report.all_findings() == []
    assert report.streams[0].covered_size == 20


def test_inconsistent_checkpoint_of_a_smaller_size(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    bogus = note(5, hashlib.sha256(b"other").digest())
    report = run(store, [bogus])
    assert kinds(report) == [("inconsistent_checkpoint", None)]
    assert "size 5" in report.all_findings()[0].detail


def test_fork_at_one_size(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    report = run(store, [note(10, hashlib.sha256(b"other").digest())])
    assert kinds(report) == [("fork", 10)]
    assert report.status == 1


def test_unreadable_and_misattributed_checkpoints(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    leaves = [r.leaf_hash for r in store.scan("s")]
    elsewhere = note(10, root_from_leaves(leaves[:10]), stream="other")
    store.append_checkpoint(
        CheckpointRow("s", stream_origin("s"), 10, bytes(32), elsewhere, utc_timestamp())
    )
    report = run(store, [b"not a note\n"])
    found = {f.kind for f in report.all_findings()}
    assert {"unreadable_checkpoint", "inconsistent_checkpoint"} <= found


def test_key_used_outside_its_window(tmp_path: Path) -> None:
    store = make_store(tmp_path)  # events in 2023
    retired = [TrustedKey(KEY.verifier, not_after="2020-01-01T00:00:00.000000Z")]
    report = run(store, trusted=retired)
    assert {k for k, _ in kinds(report)} == {"key_not_valid"}
    assert report.status == 1


def test_unknown_key_store_is_rejected_and_uncovered(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    report = run(store, trusted=[TrustedKey(NoteSigner.generate("x").verifier)])
    assert [k for k, _ in kinds(report)] == ["unknown_key", "unknown_key", "uncovered"]


def test_no_trusted_key_is_incomplete(tmp_path: Path) -> None:
    report = run(make_store(tmp_path), trusted=[])
    assert kinds(report) == [("no_trusted_key", None)]
    assert report.status == 2


def test_missing_checkpoint_for_the_tail_is_incomplete(tmp_path: Path) -> None:
    report = run(make_store(tmp_path, n=25))
    assert kinds(report) == [("uncovered", 21)]
    assert report.status == 2


def test_whole_stream_deleted_is_found_through_outside_checkpoints(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    gone = note(50, hashlib.sha256(b"x").digest(), stream="gone/1/abc")
    report = run(store, [gone])
    assert kinds(report) == [("missing", 1)]
    assert report.all_findings()[0].stream == "gone/1/abc"


def test_time_regression_beyond_scheduling_jitter(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    store.create_stream(stream_info("s"))
    t = 1_700_000_000
    # A call that started earlier but ended later is normal; one that ended an hour before
    # an earlier-sequenced event started is not.
    append(store, "s", [event(ts=t + 10), event(ts=t + 9), event(ts=t - 3600), event(ts=t + 11)])
    leaves = [r.leaf_hash for r in store.scan("s")]
    root = root_from_leaves(leaves)
    store.append_checkpoint(CheckpointRow("s", stream_origin("s"), 4, root, note(4, root), "x"))
    assert kinds(run(store)) == [("time_regression", 3)]


def test_tampered_column_types_are_findings_not_crashes(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    db = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    db.execute("DROP TRIGGER events_no_update")
    db.execute("UPDATE events SET body = CAST(body AS TEXT), timestamp = 7 WHERE seq = 4")
    db.close()
    report = run(store)
    assert ("modified", 4) in kinds(report)


@pytest.mark.parametrize(
    "damage", ["none", "modify", "delete", "delete_chunk_start", "pruned", "pruned_unrecorded"]
)
def test_parallel_row_checker_agrees_with_the_sequential_pass(tmp_path: Path, damage: str) -> None:
    store = make_store(tmp_path, n=120, sizes=(37, 64, 100, 120))
    # Retention pruned 30..50 (across chunk edges); only the first variant recorded it.
    recorded = {"s": [(30, 50)]} if damage == "pruned" else None
    if damage.startswith("pruned"):
        store.prune({"s": [(30, 50)]}, "run-1")
    db = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    db.execute("DROP TRIGGER events_no_update")
    db.execute("DROP TRIGGER events_delete_only_pruned")
    if damage == "modify":
        db.execute("UPDATE events SET body = replace(body, 't77', 't78') WHERE seq = 78")
    elif damage == "delete":
        db.execute("DELETE FROM events WHERE seq IN (50, 51)")
    elif damage == "delete_chunk_start":
        db.execute("DELETE FROM events WHERE seq BETWEEN 40 AND 45")  # around a chunk edge
    db.close()
    sequential = run(store, retention=recorded)
    evidence = [CheckpointEvidence(c.note, "store", c.stream) for c in store.checkpoints()]
    with ParallelRowChecker(tmp_path / "a.db", workers=2, chunk_rows=16) as parallel:
        report = verify_trail(
            store.stream_names(),
            store.scan_leaves,
            evidence,
            TRUSTED,
            origin_prefix="mcp-notary",
            run_rows=parallel.run,
            retention=recorded,
        )
    assert sorted(kinds(report), key=str) == sorted(kinds(sequential), key=str)
    assert report.status == sequential.status == (0 if damage in ("none", "pruned") else 1)
    assert report.streams[0].pruned == sequential.streams[0].pruned
    if damage.startswith("pruned"):
        assert (report.streams[0].pruned, kinds(report)) == (
            ([(30, 50)], []) if recorded else ([], [("missing", 30)])
        )
    assert report.streams[0].covered_size == sequential.streams[0].covered_size
