"""Sustained ledger ingest into the embedded SQLite store: events/s from submit to durable,
for the batched writer (group commit) and for strict one-at-a-time commits, and what each
step of the writer thread costs per event.

    .venv/bin/python benchmarks/bench_ingest.py [--events 200000] [--rounds 3]
    .venv/bin/python benchmarks/bench_ingest.py --events 50000 --rounds 5 --baseline-src DIR
    PYTHONPATH=DIR .venv/bin/python benchmarks/bench_ingest.py --stages-only

Two event shapes: `small`, an already-redacted tools/call of about 900 canonical bytes with no
client or server info; `redacted`, the 1 KB tools/call of `bench_redact.py` with 3 secrets,
through `PolicyRedactor.finalize` as `wrap` stores it (client, server command, 3 manifest
entries; about 1,900 canonical bytes).

Batched figures are the median of `--rounds` runs (this machine is shared, so one run can be
slow), as wall-clock events/s and as the process's CPU microseconds per event.
With `--baseline-src DIR` (the `src` directory of another checkout, e.g. one made with
``git archive <commit> src | tar -x -C /tmp/old``), each round runs the batched ingest of
both trees in fresh processes, alternately, and prints both and their ratio; with
``PYTHONPATH=DIR`` the whole script measures that tree instead of this one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp_notary.events.model import AuditEvent, Principal, SensitiveField
from mcp_notary.ids import new_event_id, utc_timestamp
from mcp_notary.ledger.canonical import canonical_bytes, chain_hash
from mcp_notary.ledger.merkle import leaf_hash
from mcp_notary.ledger.store import StreamHead, StreamInfo, prepare_row
from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.ledger.writer import BATCH_MAX_EVENTS, BATCH_MAX_WAIT_S, LedgerWriter

SHAPES = ("small", "redacted")


def sample_event(i: int) -> AuditEvent:
    """A realistic, already-redacted tools/call event (about 900 bytes canonical)."""
    return AuditEvent(
        event_id=new_event_id(),
        timestamp=utc_timestamp(),
        kind="call",
        principal=Principal("alice", "user", "os"),
        method="tools/call",
        tool="get_current_time",
        arguments={"timezone": "Europe/Paris", "token": "[REDACTED:secret:1f2e3d4c5b6a]"},
        outcome="success",
        response_summary={"content": [{"type": "text", "text": '{"timezone": "Europe/Paris", '
                          '"datetime": "2026-11-24T22:00:00+01:00", "is_dst": false}'}],
                          "isError": False},
        sensitive_fields=(SensitiveField("/arguments/token", "secret", "key-name", "1"),),
        jsonrpc_id=i,
        protocol_version="2025-11-25",
        duration_ms=0.8,
        details={"request_bytes": 140, "response_bytes": 320},
    )  # fmt: skip


def make_events(shape: str, n: int) -> list[AuditEvent]:
    if shape == "small":
        return [sample_event(i) for i in range(n)]
    from bench_redact import make_draft

    from mcp_notary.redact.policy import PolicyRedactor, RedactionPolicy
    from mcp_notary.redact.tokens import RedactionKey

    redactor = PolicyRedactor(RedactionPolicy.from_mapping({}), RedactionKey(b"b" * 32))
    templates = [redactor.finalize(make_draft(1024, i, secrets=True)) for i in range(64)]
    return [
        dataclasses.replace(templates[i % 64], event_id=new_event_id(), jsonrpc_id=i)
        for i in range(n)
    ]


def best_per_event(step: Callable[[Any, int], object], items: list[Any], repeat: int = 5) -> float:
    """Best of `repeat` timings of `step(item, index)` over `items` (results are dropped, as
    the writer drops a body once it is canonicalised), in microseconds per item."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for i, item in enumerate(items):
            step(item, i)
        best = min(best, time.perf_counter() - started)
    return best / len(items) * 1e6


def insert_cost(rows: list[Any], search_index: bool) -> float:
    """SQLite `append_batch` alone, `BATCH_MAX_EVENTS` rows per commit: microseconds per row.
    With `search_index`, the read side's full-text index exists (as it does once anyone has
    searched the store), so its trigger indexes every inserted row."""
    from mcp_notary.query.index import SearchIndex

    def once() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            store = SQLiteStore(Path(tmp) / "a.db")
            store.create_stream(StreamInfo("s", utc_timestamp(), "h", 1, "0"))
            if search_index:
                db = sqlite3.connect(Path(tmp) / "a.db", isolation_level=None)
                SearchIndex(db).ensure()
                db.close()
            started = time.perf_counter()
            for at in range(0, len(rows), BATCH_MAX_EVENTS):
                store.append_batch(rows[at : at + BATCH_MAX_EVENTS])
            elapsed = time.perf_counter() - started
            store.close()
        return elapsed / len(rows) * 1e6

    return min(once() for _ in range(3))


def stage_costs(shape: str, n: int) -> dict[str, float]:
    """Microseconds per event of each step the writer thread takes, run one after another on
    one thread (no queue, no futures)."""
    events = make_events(shape, n)
    bodies = [e.body("s", i + 1) for i, e in enumerate(events)]
    canonical = [canonical_bytes(b) for b in bodies]
    rows = []
    head = StreamHead()
    for e in events:
        row = prepare_row(e, "s", head)
        head = StreamHead(row.seq, row.chain_hash)
        rows.append(row)
    previous = bytes(32)
    return {
        "canonical bytes": statistics.mean(len(c) for c in canonical),
        "AuditEvent.body": best_per_event(lambda e, i: e.body("s", i + 1), events),
        "RFC 8785 (rfc8785.dumps)": best_per_event(lambda b, i: canonical_bytes(b), bodies),
        "leaf + chain hash": best_per_event(
            lambda c, i: (leaf_hash(c), chain_hash(previous, c)), canonical
        ),
        "prepare_row (all of the above)": best_per_event(
            lambda e, i: prepare_row(e, "s", StreamHead(i, previous)), events
        ),
        "SQLite insert, 256 per commit": insert_cost(rows, search_index=False),
        "  the same with the search index": insert_cost(rows, search_index=True),
    }


def run(events: int, strict: bool, shape: str = "small") -> tuple[float, float]:
    """(events/s, process CPU microseconds per event) of one ingest run."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "a.db", synchronous="FULL" if strict else "NORMAL")
        store.create_stream(StreamInfo("s", utc_timestamp(), "h", 1, "0"))
        writer = LedgerWriter(store, "s", max_wait_s=0.0 if strict else BATCH_MAX_WAIT_S)
        batch = make_events(shape, events)
        started, cpu = time.perf_counter(), time.process_time()
        if strict:
            for e in batch:
                writer.submit(e).result()
        else:
            futures = [writer.submit(e) for e in batch]
            futures[-1].result()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        writer.close()
        assert store.count("s") == events
        store.close()
    return events / elapsed, cpu / events * 1e6


def canonicalisation_rate(events: int, shape: str) -> float:
    """RFC 8785 bytes of event bodies alone, per second: the writer's floor."""
    bodies = [e.body("s", i + 1) for i, e in enumerate(make_events(shape, events))]
    started = time.perf_counter()
    for body in bodies:
        canonical_bytes(body)
    return events / (time.perf_counter() - started)


def measure_in(src: str | None, events: int, shape: str) -> tuple[float, float]:
    """One batched ingest run in a fresh process importing `mcp_notary` from `src` (None:
    this checkout)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run(
        [sys.executable, __file__, "--measure", shape, "--events", str(events)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rate, cpu = json.loads(out.strip().splitlines()[-1])
    return rate, cpu


def compare(args: argparse.Namespace) -> None:
    here = str(Path(__file__).resolve().parent.parent / "src")
    print(f"baseline: {args.baseline_src}\nthis tree: {here}")
    for shape in SHAPES:
        runs: dict[str, list[tuple[float, float]]] = {"baseline": [], "this tree": []}
        for r in range(args.rounds):
            # Alternate which goes first, so neither always gets the warmer machine.
            order = ["baseline", "this tree"] if r % 2 == 0 else ["this tree", "baseline"]
            for name in order:
                src = args.baseline_src if name == "baseline" else here
                runs[name].append(measure_in(src, args.events, shape))
        print(f"\n{shape} events, batched, {args.events:,} events x {args.rounds} rounds")
        for name, got in runs.items():
            rates = ", ".join(f"{rate:,.0f}" for rate, _ in got)
            print(
                f"  {name:9s}: median {statistics.median(r for r, _ in got):>7,.0f} events/s, "
                f"{statistics.median(c for _, c in got):6.1f} us CPU/event   ({rates})"
            )
        base, new = runs["baseline"], runs["this tree"]
        rate_ratio = statistics.median(r for r, _ in new) / statistics.median(r for r, _ in base)
        cpu_ratio = statistics.median(c for _, c in new) / statistics.median(c for _, c in base)
        print(f"  this tree / baseline: {rate_ratio:.2f}x events/s, {cpu_ratio:.2f}x CPU/event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-src", help="compare with the mcp_notary of this src dir")
    parser.add_argument("--stages-only", action="store_true", help="only the per-step costs")
    parser.add_argument("--measure", choices=SHAPES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(run(args.events, strict=False, shape=args.measure)))
        return
    if args.baseline_src:
        compare(args)
        return
    n = min(args.events, 20_000)
    costs = {shape: stage_costs(shape, n) for shape in SHAPES}
    print(f"writer thread, per event (us, best of 5 over {n:,} events):")
    print(f"  {'':34s} {'small':>9s} {'redacted':>9s}")
    for step in costs["small"]:
        print(f"  {step:34s} {costs['small'][step]:9.1f} {costs['redacted'][step]:9.1f}")
    if args.stages_only:
        return
    print()
    for shape in SHAPES:
        got = [run(args.events, strict=False, shape=shape) for _ in range(args.rounds)]
        rate = statistics.median(r for r, _ in got)
        cpu = statistics.median(c for _, c in got)
        canon = canonicalisation_rate(min(args.events, 50_000), shape)
        print(
            f"{shape:8s} batched group commit: {rate:>7,.0f} events/s, {cpu:5.1f} us CPU/event "
            f"(median of {args.rounds} x {args.events:,}; runs "
            f"{', '.join(f'{r:,.0f}' for r, _ in got)})"
        )
        print(
            f"{shape:8s} RFC 8785 canonicalisation alone: {canon:>7,.0f} events/s "
            f"(batched ingest reaches {rate / canon:.0%} of it)"
        )
    strict_n = max(1000, args.events // 50)
    strict, _ = run(strict_n, strict=True)
    print(f"small    strict, one at a time: {strict:>7,.0f} events/s ({strict_n:,} events)")


if __name__ == "__main__":
    main()
