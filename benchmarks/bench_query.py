"""Read-side query latency over a large embedded store: filters plus full-text search.

Synthesises a trail of realistic, already-redacted events with `prepare_row` straight into
SQLite (wrap would take hours for a million), builds the search index, then times a fixed mix
of queries a console or API user makes (filter + search, newest 50 first) and reports p50/p95.

    .venv/bin/python benchmarks/bench_query.py [--events 1000000] [--db /tmp/bench-query.db]

The store is kept at --db and reused when it already holds --events events.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from mcp_notary.events.model import AuditEvent, Principal, SensitiveField, ServerInfo
from mcp_notary.ids import new_event_id
from mcp_notary.ledger.store import StreamHead, StreamInfo, prepare_row
from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.query.model import Query
from mcp_notary.query.sqlite import SQLiteQueryEngine

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SPAN_S = 30 * 86_400
ZONES = [
    "Europe/London", "Europe/Paris", "Europe/Berlin", "America/New_York", "America/Chicago",
    "America/Los_Angeles", "Asia/Tokyo", "Asia/Kolkata", "Australia/Sydney", "Africa/Lagos",
    "America/Sao_Paulo", "Asia/Singapore", "Pacific/Auckland", "Europe/Madrid", "UTC",
]  # fmt: skip
WORDS = (  # noqa: SIM905 - a paragraph reads better than a 60-item list
    "invoice quarterly revenue customer refund shipment delayed warehouse audit contract "
    "renewal pricing discount region north south east west forecast churn onboarding ticket "
    "escalation outage latency database migration backup restore deploy rollback release "
    "feature flag experiment cohort retention payroll benefits vacation policy compliance "
    "security incident phishing password rotation certificate expiry vendor procurement"
).split()
TOOLS = {
    "time": ["get_current_time", "convert_time"],
    "files": ["read_file", "write_file", "list_directory", "search_files"],
    "crm": ["lookup_customer", "update_ticket", "create_ticket"],
    "db": ["run_query", "describe_table"],
    "mail": ["send_email", "search_mail"],
}
ERRORS = [
    "permission denied", "file not found", "timeout waiting for upstream", "invalid argument",
    "rate limit exceeded", "unknown timezone",
]  # fmt: skip


def synthetic_event(rng: random.Random, ts: float, i: int) -> AuditEvent:
    server = rng.choice(list(TOOLS))
    tool = rng.choice(TOOLS[server])
    words = " ".join(rng.choices(WORDS, k=rng.randint(2, 6)))
    fields: list[SensitiveField] = []
    if tool in ("get_current_time", "convert_time"):
        arguments: dict[str, object] = {"timezone": rng.choice(ZONES)}
        text = f"{rng.choice(ZONES)} {i % 24}:00"
        summary: object = {"content": [{"type": "text", "text": text}]}
    elif server == "files":
        arguments = {"path": f"/srv/data/{rng.choice(WORDS)}/{rng.choice(WORDS)}-{i % 997}.txt"}
        summary = {"content": [{"type": "text", "text": words}]}
    elif server == "mail":
        token = f"{rng.getrandbits(48):012x}"
        arguments = {"to": f"[REDACTED:email:{token}]", "subject": words}
        fields.append(SensitiveField("/arguments/to", "email", "detector.email", "1"))
        summary = {"content": [{"type": "text", "text": "sent"}]}
    else:
        arguments = {"query": words, "limit": rng.randint(1, 100)}
        summary = {"content": [{"type": "text", "text": f"{rng.randint(0, 500)} rows: {words}"}]}
    if rng.random() < 0.03:
        secret = f"{rng.getrandbits(48):012x}"
        arguments["api_key"] = f"[REDACTED:aws_access_key:{secret}]"
        fields.append(SensitiveField("/arguments/api_key", "aws_access_key", "detector.aws", "1"))
    roll = rng.random()
    outcome = "success" if roll < 0.92 else "tool_error" if roll < 0.97 else "protocol_error"
    error = None
    if outcome == "protocol_error":
        error = {"code": -32602, "message": rng.choice(ERRORS)}
    elif outcome == "tool_error":
        summary = {"content": [{"type": "text", "text": rng.choice(ERRORS)}], "isError": True}
    return AuditEvent(
        event_id=new_event_id(ts),
        timestamp=_ts(ts),
        kind="call",
        principal=Principal(f"user{rng.randint(1, 60):02d}", "user", "os"),
        method="tools/call",
        tool=tool,
        arguments=arguments,
        outcome=outcome,  # type: ignore[arg-type]
        response_summary=summary,
        sensitive_fields=tuple(fields),
        server=ServerInfo(server, "1.0", None),
        jsonrpc_id=i,
        protocol_version="2025-11-25",
        duration_ms=round(rng.uniform(0.2, 900.0), 3),
        error=error,
        trace_id=f"{rng.getrandbits(128):032x}" if rng.random() < 0.3 else None,
        details={"request_bytes": 120 + i % 300, "response_bytes": 200 + i % 900},
    )


def _ts(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1e6):06d}Z"


def synthesise(path: Path, events: int, streams: int = 200, seed: int = 7) -> None:
    """Append `events` synthetic events over `streams` streams, in time order."""
    rng = random.Random(seed)
    store = SQLiteStore(path)
    heads: dict[str, StreamHead] = {}
    names = [f"bench-host/{1000 + s}/stream{s:04d}" for s in range(streams)]
    for name in names:
        store.create_stream(StreamInfo(name, _ts(START), "bench-host", 1, "0", "bench"))
        heads[name] = StreamHead()
    batch = []
    step = SPAN_S / events
    started = time.perf_counter()
    for i in range(events):
        stream = names[i % streams]
        row = prepare_row(synthetic_event(rng, START + i * step, i), stream, heads[stream])
        heads[stream] = StreamHead(row.seq, row.chain_hash)
        batch.append(row)
        if len(batch) == 10_000:
            store.append_batch(batch)
            batch = []
            done = i + 1
            rate = done / (time.perf_counter() - started)
            print(f"\r  synthesised {done:,}/{events:,} ({rate:,.0f}/s)", end="", flush=True)
    store.append_batch(batch)
    print()
    store.close()


def query_mix(rng: random.Random) -> list[tuple[str, Query]]:
    """What auditors ask: search text, often with a filter, newest 50 first."""
    day = lambda d: _ts(START + d * 86_400)  # noqa: E731
    mix: list[tuple[str, Query]] = []
    for _ in range(20):
        word = rng.choice(WORDS)
        zone = rng.choice(ZONES).split("/")[-1]
        user = f"user{rng.randint(1, 60):02d}"
        d = rng.randint(0, 25)
        mix += [
            ("search word", Query(text=word)),
            ("search + principal", Query(text=word, principal=user)),
            ("search + tool", Query(text=zone, tool="get_current_time")),
            ("search + outcome", Query(text="timeout", outcome="protocol_error")),
            (
                "search + 2-day range",
                Query(text=f"{word} {rng.choice(WORDS)}", since=day(d), until=day(d + 2)),
            ),
            ("search phrase", Query(text='"permission denied"')),
            ("search prefix + server", Query(text=word[:4] + "*", server="crm")),
            ("redaction kind + principal", Query(redaction_kind="aws_access_key", principal=user)),
            ("filter only: principal + tool", Query(principal=user, tool="read_file")),
            ("filter only: outcome, page 2", Query(outcome="tool_error")),
        ]
    return mix


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/bench-query.db"))
    args = parser.parse_args()
    if args.db.exists():
        store = SQLiteStore(args.db)
        have = store.count()
        store.close()
        if have != args.events:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{args.db}{suffix}").unlink(missing_ok=True)
    if not args.db.exists():
        print(f"synthesising {args.events:,} events into {args.db}")
        synthesise(args.db, args.events)
    engine = SQLiteQueryEngine(args.db)
    started = time.perf_counter()
    engine.ensure_index(lambda done, total: print(f"\r  indexed {done:,}/{total:,}", end=""))
    print(f"\nsearch index ready ({time.perf_counter() - started:.1f} s)")
    mix = query_mix(random.Random(11))
    for _, q in mix[:10]:  # warm the page cache like a running server's would be
        engine.search(q)
    by_label: dict[str, list[float]] = {}
    every: list[float] = []
    for label, q in mix:
        if label.endswith("page 2"):
            first = engine.search(q)
            assert first.next_cursor is not None
            q = Query.parse(outcome=q.outcome, cursor=first.next_cursor)
        ms = timed(lambda q=q: engine.search(q))
        by_label.setdefault(label, []).append(ms)
        every.append(ms)
    engine.close()

    def pct(values: list[float], p: float) -> float:
        return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]

    print(f"\n{'query':32} {'p50 ms':>8} {'p95 ms':>8}")
    for label, values in by_label.items():
        print(f"{label:32} {pct(values, 50):8.1f} {pct(values, 95):8.1f}")
    label = f"ALL ({len(every)} queries)"
    print(f"{label:32} {pct(every, 50):8.1f} {pct(every, 95):8.1f}")
    print(f"target p95 <= 100 ms: {'met' if pct(every, 95) <= 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
