"""Added latency and throughput of `mcp-notary proxy` (auditing every call into SQLite), next to
the same upstream reached directly and through FastMCP's `create_proxy` (no auditing), in one
run, on loopback.

    .venv/bin/python benchmarks/bench_http.py [--calls 1000] [--seconds 8] [--concurrency 16]

The upstream is the tests' `MCPServer` (official SDK) answering stateless 2026-07-28
`tools/call` POSTs, once with JSON responses and once with SSE responses. Latency is sequential
calls on one keep-alive connection (p50/p99); throughput is `--concurrency` clients for
`--seconds` (requests/s). Rounds interleave the setups so machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "support" / "http_mcpserver.py"
HEADERS = {
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": "tools/call",
    "mcp-name": "add",
}
FASTMCP_PROXY = """
import sys
from fastmcp.server import create_proxy
proxy = create_proxy(sys.argv[1])
proxy.run(transport="http", host="127.0.0.1", port=int(sys.argv[2]), show_banner=False,
          log_level="WARNING")
"""


def body(i: int) -> bytes:
    return json.dumps({
        "jsonrpc": "2.0", "id": i, "method": "tools/call",
        "params": {"name": "add", "arguments": {"a": i, "b": 1}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"}}}},
    ).encode()  # fmt: skip


def check(response: httpx2.Response, i: int) -> None:
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        text = [ln[5:] for ln in text.splitlines() if ln.startswith("data:") and ln[5:].strip()][-1]
    reply = json.loads(text)
    assert reply["result"]["structuredContent"]["result"] == i + 1, reply


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def process(argv: list[str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"{argv[:3]} did not listen")
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def latency(url: str, calls: int) -> list[float]:
    samples = []
    with httpx2.Client(timeout=30, trust_env=False) as client:
        for i in range(100):  # warm-up: connections, caches, JIT-free but lazy imports
            check(client.post(url, content=body(i), headers=HEADERS), i)
        for i in range(calls):
            started = time.perf_counter()
            response = client.post(url, content=body(i), headers=HEADERS)
            samples.append((time.perf_counter() - started) * 1000)
            check(response, i)
    return samples


async def _throughput(url: str, seconds: float, concurrency: int) -> float:
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    done = 0
    stop = time.monotonic() + seconds
    async with httpx2.AsyncClient(timeout=30, limits=limits, trust_env=False) as client:

        async def worker(n: int) -> None:
            nonlocal done
            i = n * 1_000_000
            while time.monotonic() < stop:
                check(await client.post(url, content=body(i), headers=HEADERS), i)
                done += 1
                i += 1

        started = time.monotonic()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        return done / (time.monotonic() - started)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for response_mode in ("json", "sse"):
            up, ours, theirs = free_port(), free_port(), free_port()
            upstream_argv = [sys.executable, str(SERVER), "--port", str(up), "--stateless"]
            if response_mode == "json":
                upstream_argv.append("--json-response")
            upstream = f"http://127.0.0.1:{up}/mcp"
            store = Path(tmp) / f"bench-{response_mode}.db"
            # The `proxy` command itself, run without the CLI group around it.
            notary = [sys.executable, "-c", "from mcp_notary.cli.proxy import proxy; proxy()",
                      "--upstream", upstream, "--listen", f"127.0.0.1:{ours}",
                      "--store", str(store)]  # fmt: skip
            fast = [sys.executable, "-c", FASTMCP_PROXY, upstream, str(theirs)]
            setups = {
                "direct": upstream,
                "mcp-notary proxy": f"http://127.0.0.1:{ours}/mcp",
                "fastmcp create_proxy": f"http://127.0.0.1:{theirs}/mcp",
            }
            with process(upstream_argv, up), process(notary, ours), process(fast, theirs):
                for _ in range(args.rounds):
                    for name, url in setups.items():
                        row = results.setdefault(f"{response_mode}:{name}", {"lat": [], "rps": []})
                        row["lat"] += latency(url, args.calls)
                        row["rps"].append(
                            asyncio.run(_throughput(url, args.seconds, args.concurrency))
                        )
            audited = store.stat().st_size if store.exists() else 0
            print(f"[{response_mode}] audit store after the run: {audited / 1e6:.1f} MB")
    header = ("setup", "p50 ms", "p99 ms", "added p50", "added p99", "req/s")
    print("\n{:<32}{:>9}{:>9}{:>11}{:>11}{:>9}".format(*header))
    for key, row in results.items():
        mode = key.split(":")[0]
        base = results[f"{mode}:direct"]["lat"]
        p50, p99 = pct(row["lat"], 0.5), pct(row["lat"], 0.99)
        added50, added99 = p50 - pct(base, 0.5), p99 - pct(base, 0.99)
        print(f"{key:<32}{p50:>9.3f}{p99:>9.3f}{added50:>11.3f}{added99:>11.3f}"
              f"{statistics.mean(row['rps']):>9.0f}")  # fmt: skip
    print(
        f"\n{os.cpu_count()} cores; {args.calls} sequential calls x {args.rounds} rounds; "
        f"{args.concurrency} concurrent clients for {args.seconds}s x {args.rounds} rounds"
    )


if __name__ == "__main__":
    main()
