"""Benchmark of retention: planning, archiving (signed segments) and pruning, and what pruning
does to verification, measured side by side on one trail.

Builds a SQLite store of N events over 400 days in 4 streams (the lifecycle test trail's
builder, real canonical bytes and hashes, every stream sealed with a checkpoint), then:

1. verifies it (the full verifier, single process): events/s before retention;
2. runs `plan_retention` + `apply_plan` with hot 90 d, total 365 d and a directory archive:
   events/s planned, archived and pruned, segment count and archive size;
3. verifies it again, with the archive's segments checked too: events/s after, and the ratio.

    .venv/bin/python benchmarks/bench_retention.py --events 200000
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from lifecycle_trail import build_aged_trail

from mcp_notary.ledger.checkpointer import DEFAULT_ORIGIN_PREFIX, KeySigner
from mcp_notary.ledger.keys import (
    load_or_create_signing_key,
    load_trusted_keys,
    vkey_path_for,
)
from mcp_notary.ledger.segment import decode_segment
from mcp_notary.ledger.store import EventFilter
from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.lifecycle.archive import DirArchive
from mcp_notary.lifecycle.policy import RetentionPolicy
from mcp_notary.lifecycle.retention import apply_plan, plan_retention, recorded_prunes
from mcp_notary.verify.checkpoints import CheckpointEvidence
from mcp_notary.verify.report import verify_trail
from mcp_notary.verify.segments import check_segment

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def verify(store: SQLiteStore, key: Path) -> tuple[float, int, int]:
    """(seconds, events checked, findings) of a full single-process verification."""
    trusted = load_trusted_keys(vkey_path_for(key))
    evidence = [CheckpointEvidence(r.note, "store", r.stream) for r in store.checkpoints()]
    retention = recorded_prunes(r.body for r in store.find(EventFilter(kind="retention")))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {args.events} events")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        key = root / "checkpoint.key"
        t = time.perf_counter()
        build_aged_trail(root / "audit.db", key, events=args.events, streams=4, days=400,
                         end=datetime(2026, 11, 1, tzinfo=UTC))  # fmt: skip
        print(f"built the trail in {time.perf_counter() - t:.1f} s")
        store = SQLiteStore(root / "audit.db")
        before_s, checked, findings = verify(store, key)
        assert findings == 0, findings
        print(f"verify before retention: {checked / before_s:,.0f} events/s ({before_s:.2f} s)")

        policy = RetentionPolicy.from_mapping({"hot": "P90D", "total": "P365D"})
        archive = DirArchive(root / "archive")
        t = time.perf_counter()
        plan = plan_retention(store, policy, NOW, archive=archive)
        plan_s = time.perf_counter() - t
        t = time.perf_counter()
        apply_plan(store, plan, archive=archive, signer=KeySigner(load_or_create_signing_key(key)),
                   origin_prefix=DEFAULT_ORIGIN_PREFIX, record=lambda _d: None)  # fmt: skip
        apply_s = time.perf_counter() - t
        totals = plan.totals()
        pruned = totals["archived_events"] + totals["expired_events"]
        files = list((root / "archive").rglob("*.jsonl.gz"))
        size = sum(f.stat().st_size for f in files)
        print(f"plan: {args.events / plan_s:,.0f} events/s ({plan_s:.2f} s)")
        print(
            f"archive + prune: {pruned / apply_s:,.0f} events/s ({apply_s:.2f} s): "
            f"{totals['archived_events']} archived in {len(files)} segments "
            f"({size / 1e6:.1f} MB, {size / max(totals['archived_events'], 1):.0f} B/event), "
            f"{totals['expired_events']} expired"
        )
        # The run is not recorded here (no ledger stream): tell the verifier what it pruned.
        store.close()
        store = SQLiteStore(root / "audit.db")
        trusted = load_trusted_keys(vkey_path_for(key))
        evidence = [CheckpointEvidence(r.note, "store", r.stream) for r in store.checkpoints()]
        t = time.perf_counter()
        report = verify_trail(
            store.stream_names(),
            store.scan_leaves,
            evidence,
            trusted,
            origin_prefix=DEFAULT_ORIGIN_PREFIX,
            retention={s.stream: s.pruned for s in plan.active},
        )
        after_s = time.perf_counter() - t
        assert not report.all_findings(), report.all_findings()[:3]
        t = time.perf_counter()
        for f in files:
            assert not check_segment(decode_segment(f.read_bytes()), f.name, trusted,
                                     origin_prefix=DEFAULT_ORIGIN_PREFIX)  # fmt: skip
        segments_s = time.perf_counter() - t
        print(
            f"verify after retention: {report.events / after_s:,.0f} events/s ({after_s:.2f} s), "
            f"ratio after/before {before_s / after_s:.2f}x speed"
        )
        print(f"segments checked offline: {totals['archived_events'] / segments_s:,.0f} events/s")
        store.close()


if __name__ == "__main__":
    main()
