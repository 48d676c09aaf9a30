"""Store benchmark, SQLite and PostgreSQL side by side in one run.

1. Sustained durable ingest: W writer processes (1, 4, 8), each with its own stream and its
   own `LedgerWriter` (batched group commits), every event's future awaited: aggregate
   events/s. SQLite in WAL mode (synchronous NORMAL); PostgreSQL over loopback with
   synchronous_commit on, with its full-text search index (``postgresql``) and without it
   (``pg-no-fts``), to show what searching on PostgreSQL costs the writers.
2. Strict mode: one event at a time, each awaited before the next (what `wrap --durability
   strict` does per call): p50/p99 commit latency through the writer, and the store's own
   commit latency without the writer's batch window. SQLite with synchronous FULL.
3. Export: `export_once` of the ingested events as OCSF into /dev/null: events/s.
4. With --proxies P --calls C: P real `mcp-notary wrap` processes around mcp-server-time,
   C pipelined tool calls each, into one PostgreSQL schema; checks every call is stored once
   and every stream verifies.

    .venv/bin/python benchmarks/bench_store.py --events 50000
    .venv/bin/python benchmarks/bench_store.py --events 0 --proxies 8 --calls 10000

PostgreSQL: $MCP_NOTARY_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/test); each run
uses a fresh schema, dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from mcp_notary.events.model import AuditEvent, Principal
from mcp_notary.export.cursor import Cursor
from mcp_notary.export.mapping import to_ocsf
from mcp_notary.export.runner import export_once
from mcp_notary.export.sinks import FileSink
from mcp_notary.ids import new_event_id, utc_timestamp
from mcp_notary.ledger.store import StreamHead, StreamInfo, prepare_row
from mcp_notary.ledger.stores import open_store
from mcp_notary.ledger.stores.postgres import PostgresStore
from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.ledger.writer import LedgerWriter

ADMIN = os.environ.get("MCP_NOTARY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def make_event(i: int) -> AuditEvent:
    return AuditEvent(
        event_id=new_event_id(),
        timestamp=utc_timestamp(),
        kind="call",
        principal=Principal("bench", "user", "config"),
        method="tools/call",
        tool=f"tool{i % 17}",
        arguments={"path": f"/tmp/file{i}", "n": i},
        outcome="success",
        duration_ms=1.25,
    )


@contextmanager
def pg_schema() -> Iterator[str]:
    schema = f"mcpn_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN, autocommit=True) as db:
        db.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{ADMIN}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as db:
            db.execute(f'DROP SCHEMA "{schema}" CASCADE')


def open_raw(url: str, strict: bool = False) -> Any:
    """The store itself (no spool): the benchmark measures the database."""
    if url.startswith("postgresql://"):
        return PostgresStore(url)
    return SQLiteStore(url, synchronous="FULL" if strict else "NORMAL")


def _writer_process(url: str, n: int, start: Any, results: Any) -> None:
    store = open_raw(url)
    stream = f"bench/{os.getpid()}"
    store.create_stream(StreamInfo(stream, utc_timestamp(), "bench", os.getpid(), "0"))
    events = [make_event(i) for i in range(n)]
    writer = LedgerWriter(store, stream, head=StreamHead())
    start.wait()
    began = time.perf_counter()
    futures = [writer.submit(e) for e in events]
    for f in futures:
        f.result(120)
    ended = time.perf_counter()
    writer.close()
    store.close()
    results.put((began, ended))


def ingest(url: str, writers: int, per_writer: int) -> float:
    """Aggregate durable events/s of `writers` processes."""
    open_raw(url).close()  # create the schema before the race
    ctx = mp.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_writer_process, args=(url, per_writer, start, results))
        for _ in range(writers)
    ]
    for p in procs:
        p.start()
    time.sleep(1.0 + 0.3 * writers)  # let every process import and build its events
    start.set()
    spans = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    elapsed = max(e for _, e in spans) - min(b for b, _ in spans)
    return writers * per_writer / elapsed


def strict_latency(url: str, n: int) -> tuple[float, float]:
    store = open_raw(url, strict=True)
    stream = f"strict/{os.getpid()}"
    writer = LedgerWriter(store, stream, head=StreamHead(), max_wait_s=0.0)  # as strict wrap
    samples = []
    for i in range(n):
        began = time.perf_counter()
        writer.submit(make_event(i)).result(30)
        samples.append((time.perf_counter() - began) * 1000)
    writer.close()
    store.close()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def append_latency(url: str, n: int) -> tuple[float, float]:
    """The store's own commit latency: one prepared row per `append_batch`, no writer queue
    (strict writers add only the queue hand-off on top)."""
    store = open_raw(url, strict=True)
    stream = f"append/{os.getpid()}"
    head = StreamHead()
    samples = []
    for i in range(n):
        row = prepare_row(make_event(i), stream, head)
        began = time.perf_counter()
        store.append_batch([row])
        samples.append((time.perf_counter() - began) * 1000)
        head = StreamHead(row.seq, row.chain_hash)
    store.close()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def export_rate(url: str) -> tuple[int, float]:
    store = open_store(url, readonly=True)
    sink = FileSink(Path(os.devnull))
    began = time.perf_counter()
    sent = export_once(store, to_ocsf, sink, Cursor())
    elapsed = time.perf_counter() - began
    sink.close()
    store.close()
    return sent, sent / elapsed


def backends(tmp: Path) -> dict[str, Callable[[], Any]]:
    counter = iter(range(1000))

    @contextmanager
    def sqlite() -> Iterator[str]:
        yield str(tmp / f"bench{next(counter)}.db")

    @contextmanager
    def pg_unindexed() -> Iterator[str]:
        """PostgreSQL without the read side's full-text index, to show what it costs writers."""
        with pg_schema() as url:
            PostgresStore(url).close()
            with psycopg.connect(url, autocommit=True) as db:
                db.execute("DROP INDEX events_search")
            yield url

    return {"sqlite": sqlite, "postgresql": pg_schema, "pg-no-fts": pg_unindexed}


def run_store_benchmarks(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, fresh in backends(Path(tmp)).items():
            for writers in args.writers:
                with fresh() as url:
                    rate = ingest(url, writers, args.events // writers)
                    line = f"{name:10s} ingest  {writers} writer(s): {rate:>9,.0f} events/s"
                    if writers == args.writers[-1]:
                        sent, export = export_rate(url)
                        line += f"   export ocsf: {export:>9,.0f} events/s ({sent} events)"
                    print(line, flush=True)
            with fresh() as url:
                p50, p99 = strict_latency(url, args.strict)
                print(f"{name:10s} strict commit: p50 {p50:.2f} ms, p99 {p99:.2f} ms", flush=True)
            with fresh() as url:
                p50, p99 = append_latency(url, args.strict)
                print(
                    f"{name:10s} store commit (1 row, no writer window): p50 {p50:.2f} ms, "
                    f"p99 {p99:.2f} ms",
                    flush=True,
                )


INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "b"}},
}


def run_proxies(args: argparse.Namespace) -> None:
    """P real proxies, C pipelined calls each, into one PostgreSQL schema."""
    bin_dir = Path(sys.executable).parent
    server = [str(bin_dir / "mcp-server-time")]
    with pg_schema() as url, tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HOME": home, "XDG_DATA_HOME": f"{home}/data"}
        env["XDG_STATE_HOME"] = f"{home}/state"
        cmd = [str(bin_dir / "mcp-notary"), "wrap", "--store", url, "--", *server]
        payload = json.dumps(INIT) + "\n"
        payload += '{"jsonrpc":"2.0","method":"notifications/initialized"}\n'
        for i in range(1, args.calls + 1):
            payload += json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "tools/call",
                    "params": {"name": "get_current_time", "arguments": {"timezone": "UTC"}},
                }
            )
            payload += "\n"
        results: list[tuple[int, int]] = []

        def proxy() -> None:
            """Pipeline every call, read until every call is answered, then close stdin (the
            client's goodbye), so no call is abandoned."""
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
            assert proc.stdin is not None and proc.stdout is not None
            feeder = threading.Thread(target=proc.stdin.write, args=(payload.encode(),))
            feeder.start()
            answered = errors = 0
            for line in proc.stdout:
                reply = json.loads(line)
                if reply.get("id"):
                    answered += "result" in reply
                    errors += "error" in reply
                if answered + errors >= args.calls:
                    break
            feeder.join()
            proc.stdin.close()
            proc.wait(600)
            results.append((answered, errors))

        began = time.perf_counter()
        threads = [threading.Thread(target=proxy) for _ in range(args.proxies)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        answered = sum(a for a, _ in results)
        errors = sum(e for _, e in results)
        with psycopg.connect(url) as db:
            calls, distinct = db.execute(
                "SELECT count(*), count(DISTINCT event_id) FROM events "
                "WHERE kind = 'call' AND method = 'tools/call' AND outcome = 'success'"
            ).fetchone() or (0, 0)
            streams = db.execute("SELECT count(DISTINCT stream) FROM events").fetchone()
        verify = subprocess.run(
            [str(bin_dir / "mcp-notary"), "verify", "--store", url],
            env=env,
            capture_output=True,
            timeout=3600,
        )
        print(
            f"proxies {args.proxies} x {args.calls} calls: {elapsed:.1f} s, "
            f"{answered / elapsed:,.0f} calls/s; answered {answered} (+{errors} errors), "
            f"stored {calls} "
            f"({distinct} distinct) in {streams[0] if streams else 0} streams; "
            f"verify exit {verify.returncode}",
            flush=True,
        )
        if verify.returncode != 0:
            print(verify.stdout.decode()[-2000:], verify.stderr.decode()[-2000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=40_000, help="events per ingest run")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--strict", type=int, default=2000, help="strict commits to time")
    parser.add_argument("--proxies", type=int, default=0)
    parser.add_argument("--calls", type=int, default=10_000)
    args = parser.parse_args()
    if args.events:
        run_store_benchmarks(args)
    if args.proxies:
        run_proxies(args)


if __name__ == "__main__":
    main()
