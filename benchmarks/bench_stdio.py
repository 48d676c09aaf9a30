"""Round-trip latency of tools/call against mcp-server-time: direct, and through `wrap` in batched
and strict mode, measured side by side in one run with the same raw JSON-lines client.

    .venv/bin/python benchmarks/bench_stdio.py [--calls 2000] [--rounds 3]

Rounds interleave the three setups so machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )


def rpc(proc: subprocess.Popen[bytes], message: dict[str, object]) -> dict[str, object]:
    assert proc.stdin and proc.stdout
    proc.stdin.write(json.dumps(message).encode() + b"\n")
    proc.stdin.flush()
    if "id" not in message:
        return {}
    reply: dict[str, object] = json.loads(proc.stdout.readline())
    return reply


def measure(argv: list[str], env: dict[str, str], calls: int) -> list[float]:
    proc = start(argv, env)
    rpc(proc, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"}}})
    rpc(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    call = {"name": "get_current_time", "arguments": {"timezone": "UTC"}}
    for i in range(50):  # warm-up
        rpc(proc, {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": call})
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        reply = rpc(proc, {"jsonrpc": "2.0", "id": 1000 + i, "method": "tools/call",
                           "params": call})
        samples.append((time.perf_counter() - started) * 1000)
        assert "result" in reply, reply
    assert proc.stdin
    proc.stdin.close()
    proc.wait(10)
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = shutil.which("mcp-server-time") or str(BIN / "mcp-server-time")
    workdir = Path(tempfile.mkdtemp(prefix="bench-stdio-"))
    env = {**os.environ, "MCP_NOTARY_REDACTION_KEY_FILE": str(workdir / "redaction.key")}
    notary = [str(BIN / "mcp-notary"), "wrap"]
    setups = {
        "direct": [server],
        "wrap batched": [*notary, "--store", str(workdir / "b.db"), "--", server],
        "wrap strict": [*notary, "--store", str(workdir / "s.db"), "--durability", "strict",
                        "--", server],
    }
    results: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(args.rounds):
        for name, argv in setups.items():
            results[name] += measure(argv, env, args.calls)
    base50, base99 = pct(results["direct"], 0.5), pct(results["direct"], 0.99)
    print(f"tools/call get_current_time, {args.calls} calls x {args.rounds} rounds per setup")
    print(f"{'setup':<14}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'p50 ratio':>11}"
          f"{'added p50 ms':>14}{'added p99 ms':>14}")
    for name, samples in results.items():
        p50, p99 = pct(samples, 0.5), pct(samples, 0.99)
        print(f"{name:<14}{p50:>9.3f}{p99:>9.3f}{statistics.fmean(samples):>9.3f}"
              f"{p50 / base50:>11.2f}{p50 - base50:>14.3f}{p99 - base99:>14.3f}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
