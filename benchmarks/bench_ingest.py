"""Sustained ledger ingest into the embedded SQLite store: events/s from submit to durable,
for the batched writer (group commit) and for strict one-at-a-time commits.

    .venv/bin/python benchmarks/bench_ingest.py [--events 200000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mcp_notary.events.model import AuditEvent, Principal, SensitiveField
from mcp_notary.ids import new_event_id, utc_timestamp
from mcp_notary.ledger.canonical import canonical_bytes
from mcp_notary.ledger.store import StreamInfo
from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.ledger.writer import BATCH_MAX_WAIT_S, LedgerWriter


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
    )


def canonicalisation_rate(events: int) -> float:
    """RFC 8785 bytes of event bodies alone, per second: the writer's floor."""
    bodies = [sample_event(i).body("s", i + 1) for i in range(events)]
    started = time.perf_counter()
    for body in bodies:
        canonical_bytes(body)
    return events / (time.perf_counter() - started)


def run(events: int, strict: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "a.db", synchronous="FULL" if strict else "NORMAL")
        store.create_stream(StreamInfo("s", utc_timestamp(), "h", 1, "0"))
        writer = LedgerWriter(store, "s", max_wait_s=0.0 if strict else BATCH_MAX_WAIT_S)
        batch = [sample_event(i) for i in range(events)]
        started = time.perf_counter()
        if strict:
            for e in batch:
                writer.submit(e).result()
        else:
            futures = [writer.submit(e) for e in batch]
            futures[-1].result()
        elapsed = time.perf_counter() - started
        writer.close()
        assert store.count("s") == events
        store.close()
    return events / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    batched = run(args.events, strict=False)
    strict_n = max(1000, args.events // 50)
    strict = run(strict_n, strict=True)
    print(f"batched group commit : {batched:>10,.0f} events/s ({args.events:,} events)")
    print(f"strict, one at a time: {strict:>10,.0f} events/s ({strict_n:,} events)")
    print(f"batched / strict     : {batched / strict:>10.1f}x")
    canon = canonicalisation_rate(min(args.events, 50_000))
    print(f"RFC 8785 canonicalisation alone: {canon:>10,.0f} events/s "
          f"(batched ingest reaches {batched / canon:.0%} of it)")


if __name__ == "__main__":
    main()
