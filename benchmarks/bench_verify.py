"""Benchmark of tamper evidence: verifier speed, tree append cost, checkpointing overhead.

1. Builds (or reuses) a SQLite store of N synthetic events in one stream, appended with
   ``prepare_row`` (real canonical bytes, leaf and chain hashes) plus a signed checkpoint every
   ``--checkpoint-every`` events, then times the full verifier over it (every leaf and chain
   hash recomputed, every checkpoint signature and root checked): events/s.
2. Times ``CompactRange.append`` and ``Checkpointer.committed`` per event.
3. Ingests M events through ``LedgerWriter`` into fresh stores without and with a
   ``Checkpointer`` (1 s interval, read-back self-check on) and prints both times and the ratio.

    .venv/bin/python benchmarks/bench_verify.py --events 1000000 --ingest 100000
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mcp_notary.events.model import AuditEvent, Principal
from mcp_notary.ids import new_event_id, utc_timestamp
from mcp_notary.ledger.checkpoint import Checkpoint
from mcp_notary.ledger.checkpointer import Checkpointer, KeySigner, stream_origin
from mcp_notary.ledger.keys import TrustedKey
from mcp_notary.ledger.merkle import CompactRange
from mcp_notary.ledger.signing import NoteSigner, sign_note
from mcp_notary.ledger.store import CheckpointRow, EventRow, StreamHead, StreamInfo, prepare_row
from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.ledger.writer import LedgerWriter
from mcp_notary.verify.checkpoints import CheckpointEvidence
from mcp_notary.verify.parallel import ParallelRowChecker
from mcp_notary.verify.report import verify_trail

STREAM = "bench/1/stream"
# A fixed, public benchmark key (all-zero seed): never use it for anything else.
SIGNER = NoteSigner("mcp-notary/bench", Ed25519PrivateKey.from_private_bytes(bytes(32)))


def make_event(i: int, t0: float) -> AuditEvent:
    return AuditEvent(
        event_id=new_event_id(t0 + i / 1000),
        timestamp=utc_timestamp(t0 + i / 1000),
        kind="call",
        principal=Principal("alice@example.com", "user", "token"),
        method="tools/call",
        tool="get_current_time",
        arguments={"timezone": ["Europe/Paris", "Asia/Tokyo", "UTC"][i % 3]},
        outcome="success",
        response_summary={"content": [{"type": "text", "text": f"result {i} " + "x" * 200}]},
        transport="stdio",
        direction="client_to_server",
        protocol_version="2025-11-25",
        jsonrpc_id=i,
        duration_ms=1.25,
    )


def build_store(path: Path, n: int, every: int) -> None:
    store = SQLiteStore(path)
    store.create_stream(StreamInfo(STREAM, utc_timestamp(), "bench", 1, "0", "bench"))
    origin = stream_origin(STREAM)
    head = StreamHead()
    tree = CompactRange()
    t0 = time.time() - n / 1000
    batch: list[EventRow] = []
    started = time.perf_counter()
    for i in range(n):
        row = prepare_row(make_event(i, t0), STREAM, head)
        head = StreamHead(row.seq, row.chain_hash)
        tree.append(row.leaf_hash)
        batch.append(row)
        if len(batch) == 10_000 or i == n - 1:
            store.append_batch(batch)
            batch = []
        if tree.size % every == 0 or i == n - 1:
            root = tree.root()
            note = sign_note(Checkpoint(origin, tree.size, root).to_body(), [SIGNER]).render()
            store.append_checkpoint(
                CheckpointRow(STREAM, origin, tree.size, root, note, utc_timestamp())
            )
        if i and i % 200_000 == 0:
            print(f"  built {i:,} events ({time.perf_counter() - started:.0f} s)", flush=True)
    store.close()


def bench_verify(path: Path, jobs: int) -> None:
    store = SQLiteStore(path, readonly=True)
    size = os.path.getsize(path)
    evidence = [CheckpointEvidence(c.note, "store", c.stream) for c in store.checkpoints()]
    parallel = ParallelRowChecker(path, workers=jobs) if jobs > 1 else None
    cpu_before = os.times()
    started = time.perf_counter()
    report = verify_trail(
        store.stream_names(),
        store.scan_leaves,
        evidence,
        [TrustedKey(SIGNER.verifier)],
        origin_prefix="mcp-notary",
        run_rows=parallel.run if parallel else None,
    )
    elapsed = time.perf_counter() - started
    if parallel:
        parallel.close()  # joins the workers, so their CPU time is counted below
    after = os.times()
    cpu = sum(after[:4]) - sum(cpu_before[:4])  # user + system, this process and children
    store.close()
    assert report.status == 0, report.all_findings()[:5]
    print(
        f"verify ({jobs} process{'es' if jobs > 1 else ''}): {report.events:,} events, "
        f"{len(evidence):,} checkpoints, {size / 2**20:,.0f} MiB store in {elapsed:.2f} s = "
        f"{report.events / elapsed:,.0f} events/s wall ({report.verdict}); "
        f"{cpu:.2f} CPU s = {report.events / cpu:,.0f} events per CPU second"
    )


def bench_tree(n: int) -> None:
    leaves = [os.urandom(32) for _ in range(n)]
    cr = CompactRange()
    started = time.perf_counter()
    for leaf in leaves:
        cr.append(leaf)
    per = (time.perf_counter() - started) / n * 1e6
    print(f"tree: CompactRange.append {per:.2f} µs/event over {n:,} leaves")
    rows = [
        EventRow(STREAM, i + 1, "", "", "call", None, None, None, None, b"", leaf, b"")
        for i, leaf in enumerate(leaves[:100_000])
    ]

    class NullStore:
        def append_checkpoint(self, row: CheckpointRow) -> None: ...

    cp = Checkpointer(NullStore(), STREAM, KeySigner(SIGNER), self_check="off")  # type: ignore[arg-type]
    started = time.perf_counter()
    for i in range(0, len(rows), 256):
        cp.committed(rows[i : i + 256])
    per = (time.perf_counter() - started) / len(rows) * 1e6
    print(f"tree: Checkpointer.committed {per:.2f} µs/event (batches of 256)")


def ingest(n: int, checkpointing: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) to append n events durably."""
    t0 = time.time()
    events = [make_event(i, t0) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "ingest.db")
        store.create_stream(StreamInfo("s", utc_timestamp(), "bench", 1, "0", "bench"))
        checkpointer = None
        if checkpointing:
            checkpointer = Checkpointer(store, "s", KeySigner(SIGNER), interval_s=1.0)
            checkpointer.start()
        cpu = time.process_time()
        started = time.perf_counter()
        writer = LedgerWriter(
            store, "s", on_committed=checkpointer.committed if checkpointer else None
        )
        for event in events:
            writer.submit(event)
        writer.close(timeout=None)
        if checkpointer is not None:
            checkpointer.close()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        if checkpointer is not None:
            assert checkpointer.last is not None and checkpointer.last.size == n
        store.close()
    return elapsed, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the store")
    parser.add_argument("--checkpoint-every", type=int, default=1000)
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "bench-verify.db")
    parser.add_argument("--ingest", type=int, default=100_000, help="events per ingest run")
    parser.add_argument("--rounds", type=int, default=5, help="ingest rounds (median)")
    parser.add_argument("--no-ingest", action="store_true", help="skip the ingest comparison")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="verify processes")
    args = parser.parse_args(argv)
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )

    existing = 0
    if args.db.exists():
        try:
            (existing,) = sqlite3.connect(args.db).execute("SELECT count(*) FROM events").fetchone()
        except sqlite3.Error:
            existing = -1
    if existing != args.events:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        print(f"building {args.events:,} events in {args.db} ...", flush=True)
        build_store(args.db, args.events, args.checkpoint_every)
    bench_verify(args.db, 1)
    bench_verify(args.db, args.jobs)
    bench_tree(min(args.events, 1_000_000))

    # Interleaved rounds, median of each: the machine may be shared, so CPU time (all threads
    # of this process) is the steadier measure of what checkpointing costs.
    if args.no_ingest:
        return 0
    plain: list[tuple[float, float]] = []
    with_cp: list[tuple[float, float]] = []
    for _ in range(args.rounds):
        plain.append(ingest(args.ingest, False))
        with_cp.append(ingest(args.ingest, True))
    wall0, cpu0 = (statistics.median(x) for x in zip(*plain, strict=True))
    wall1, cpu1 = (statistics.median(x) for x in zip(*with_cp, strict=True))
    print(
        f"ingest {args.ingest:,} events, median of {args.rounds}: without checkpointing "
        f"{wall0:.2f} s wall / {cpu0:.2f} s CPU ({args.ingest / wall0:,.0f}/s); with "
        f"{wall1:.2f} s wall / {cpu1:.2f} s CPU ({args.ingest / wall1:,.0f}/s)"
    )
    print(
        f"checkpointing adds {100 * (wall1 / wall0 - 1):+.1f}% wall time, "
        f"{100 * (cpu1 / cpu0 - 1):+.1f}% CPU time to ingest"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
