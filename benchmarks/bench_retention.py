"""Benchmark of retention: planning, archiving (signed segments) and pruning, and what pruning
does to verification, measured side by side on one trail.

Builds a store of N events over 400 days in 4 streams (the lifecycle test trail's builder, real
canonical bytes and hashes, every stream sealed with a checkpoint), in SQLite and, with
``--postgres URL``, also in two fresh schemas of that PostgreSQL database: one pruned as the
store does (monthly partitions dropped or compacted where a month goes whole), one pruned
row by row through the delete guard (as before partitioning), for the side-by-side ratio.
Then, for each:

1. verifies it (the full verifier, single process): events/s before retention;
2. runs `plan_retention` + `apply_plan` with hot 90 d, total 365 d and a directory archive:
   events/s planned, archived and pruned (and the prune step alone), segment count and
   archive size;
3. verifies it again, with the archive's segments checked too: events/s after, and the ratio.

    .venv/bin/python benchmarks/bench_retention.py --events 200000 \
        --postgres postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from lifecycle_trail import build_aged_trail
from pgtest import pg_schema

from mcp_notary.ledger.checkpointer import DEFAULT_ORIGIN_PREFIX, KeySigner
from mcp_notary.ledger.keys import (
    load_or_create_signing_key,
    load_trusted_keys,
    vkey_path_for,
)
from mcp_notary.ledger.segment import decode_segment
from mcp_notary.ledger.store import PRUNE_COPY, PRUNE_DELETE, Store
from mcp_notary.ledger.stores import open_store
from mcp_notary.ledger.stores.postgres import PostgresStore
from mcp_notary.lifecycle.archive import DirArchive
from mcp_notary.lifecycle.policy import RetentionPolicy
from mcp_notary.lifecycle.retention import apply_plan, plan_retention
from mcp_notary.verify.checkpoints import CheckpointEvidence
from mcp_notary.verify.report import verify_trail
from mcp_notary.verify.segments import check_segment

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def verify(
    store: Store, key: Path, retention: dict[str, list[tuple[int, int]]] | None = None
) -> tuple[float, int, int]:
    """(seconds, events checked, findings) of a full single-process verification."""
    trusted = load_trusted_keys(vkey_path_for(key))
    evidence = [CheckpointEvidence(r.note, "store", r.stream) for r in store.checkpoints()]
    start = time.perf_counter()
    report = verify_trail(
        store.stream_names(),
        store.scan_leaves,
        evidence,
        trusted,
        origin_prefix=DEFAULT_ORIGIN_PREFIX,
        retention=retention,
    )
    return time.perf_counter() - start, report.events, len(report.all_findings())


class RowPruningStore(PostgresStore):
    """The PostgreSQL store pruning as it did before partitions: hashes copied, then every
    row deleted through the delete guard."""

    def prune(self, ranges: Mapping[str, Sequence[tuple[int, int]]], run_id: str) -> int:
        def run(db: Any) -> int:
            pruned = 0
            with db.transaction():
                for stream, stream_ranges in ranges.items():
                    for first, last in stream_ranges:
                        db.execute(PRUNE_COPY.format(p="%s"), (run_id, stream, first, last))
                        cur = db.execute(PRUNE_DELETE.format(p="%s"), (stream, first, last))
                        pruned += cur.rowcount
            return pruned

        return self._run("pruning", run)


def bench(label: str, url: str, root: Path, events: int, opener: Callable[[str], Store]) -> float:
    """Run the steps on a new trail; return the prune step's events/s."""
    key = root / "checkpoint.key"
    t = time.perf_counter()
    build_aged_trail(url, key, events=events, streams=4, days=400,
                     end=datetime(2026, 11, 1, tzinfo=UTC))  # fmt: skip
    print(f"[{label}] built the trail in {time.perf_counter() - t:.1f} s")
    store = opener(url)
    prune_s: list[float] = []
    prune = store.prune

    def timed_prune(ranges: Mapping[str, Sequence[tuple[int, int]]], run_id: str) -> int:
        start = time.perf_counter()
        try:
            return prune(ranges, run_id)
        finally:
            prune_s.append(time.perf_counter() - start)

    store.prune = timed_prune  # type: ignore[method-assign]
    before_s, checked, findings = verify(store, key)
    assert findings == 0, findings
    print(f"[{label}] verify before retention: {checked / before_s:,.0f} events/s "
          f"({before_s:.2f} s)")  # fmt: skip
    size_before = events_bytes(url) if url.startswith("postgresql") else 0
    policy = RetentionPolicy.from_mapping({"hot": "P90D", "total": "P365D"})
    archive = DirArchive(root / f"archive-{label}")
    t = time.perf_counter()
    plan = plan_retention(store, policy, NOW, archive=archive)
    plan_s = time.perf_counter() - t
    t = time.perf_counter()
    apply_plan(store, plan, archive=archive, signer=KeySigner(load_or_create_signing_key(key)),
               origin_prefix=DEFAULT_ORIGIN_PREFIX, record=lambda _d: None)  # fmt: skip
    apply_s = time.perf_counter() - t
    totals = plan.totals()
    pruned = totals["archived_events"] + totals["expired_events"]
    files = list(archive.root.rglob("*.jsonl.gz"))
    size = sum(f.stat().st_size for f in files)
    print(f"[{label}] plan: {events / plan_s:,.0f} events/s ({plan_s:.2f} s)")
    print(
        f"[{label}] archive + prune: {pruned / apply_s:,.0f} events/s ({apply_s:.2f} s): "
        f"{totals['archived_events']} archived in {len(files)} segments "
        f"({size / 1e6:.1f} MB, {size / max(totals['archived_events'], 1):.0f} B/event), "
        f"{totals['expired_events']} expired"
    )
    print(f"[{label}] of which prune: {pruned / prune_s[0]:,.0f} events/s ({prune_s[0]:.2f} s)")
    if url.startswith("postgresql"):
        print(f"[{label}] events table on disk: {size_before / 1e6:.1f} MB before, "
              f"{events_bytes(url) / 1e6:.1f} MB after")  # fmt: skip
    # The run was not recorded here (no ledger stream): tell the verifier what it pruned.
    after_s, checked, findings = verify(store, key, {s.stream: s.pruned for s in plan.active})
    assert findings == 0, findings
    trusted = load_trusted_keys(vkey_path_for(key))
    t = time.perf_counter()
    for f in files:
        assert not check_segment(decode_segment(f.read_bytes()), f.name, trusted,
                                 origin_prefix=DEFAULT_ORIGIN_PREFIX)  # fmt: skip
    segments_s = time.perf_counter() - t
    print(
        f"[{label}] verify after retention: {checked / after_s:,.0f} events/s "
        f"({after_s:.2f} s), {before_s / after_s:.2f}x the speed before"
    )
    print(f"[{label}] segments checked offline: "
          f"{totals['archived_events'] / segments_s:,.0f} events/s")  # fmt: skip
    store.close()
    return pruned / prune_s[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--postgres", metavar="URL", help="Also benchmark this PostgreSQL.")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {args.events} events")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench("sqlite", str(root / "audit.db"), root, args.events, open_store)
        if args.postgres:
            speeds = {}
            for label, opener in (("postgres", open_store), ("postgres-rows", RowPruningStore)):
                (root / label).mkdir()
                with pg_schema("bench", admin_url=args.postgres) as url:
                    speeds[label] = bench(label, url, root / label, args.events, opener)
            print(f"prune with partitions / row by row: "
                  f"{speeds['postgres'] / speeds['postgres-rows']:.2f}x")  # fmt: skip


def events_bytes(url: str) -> int:
    """Disk taken by `events` (every partition, with indexes and TOAST), after a checkpoint."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CHECKPOINT")
        row = db.execute(
            "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('events')"
        ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


if __name__ == "__main__":
    main()
