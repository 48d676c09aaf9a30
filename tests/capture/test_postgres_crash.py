"""Crash consistency on SQLite and PostgreSQL with real processes: `kill -9` of a `wrap` under
load at a random moment. In strict mode no event is lost whose response reached the client; in
batched mode only a tail within the batch window. The next start closes the dead streams
(`ended_uncleanly`, the recorded unclean-shutdown gap) and the whole trail verifies.

Trials: $MCP_NOTARY_CRASH_TRIALS (default 5, so the suite stays fast; the issue's full run is
100: `MCP_NOTARY_CRASH_TRIALS=100 pytest tests/capture/test_postgres_crash.py`)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_notary import Notary
from e2e_rawclient import INIT, RawPipeClient, descendants, time_call
from pgtest import pg_schema

from mcp_notary.errors import StoreError
from mcp_notary.ledger.stores import open_store
from mcp_notary.ledger.writer import BATCH_MAX_EVENTS, BATCH_MAX_WAIT_S

TRIALS = int(os.environ.get("MCP_NOTARY_CRASH_TRIALS", "5"))
# What batched mode may lose: calls answered during the 10 ms batch window and the commit in
# flight. On an idle machine the oldest lost answer was 16 ms old (25 trials on each store);
# a loaded CI machine once lost 27 calls in one trial, which a count of 20 had refused. A
# writer that stopped committing would lose everything answered since it stopped.
LOSS_WINDOW_S = BATCH_MAX_WAIT_S + 0.25



@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "audit.db")
        return
    with pg_schema("crash") as url:
        yield f"{url}&spool_dir={tmp_path / 'spool'}"


def answered_ids(client: RawPipeClient) -> set[int]:
    return {
        m["id"]
        for m in client.messages()
        if isinstance(m, dict) and "result" in m and isinstance(m.get("id"), int) and m["id"]
    }


def crash_once(
    argv: list[str], env: dict[str, str], rng: random.Random
) -> tuple[set[int], dict[int, float]]:
    """Run one proxy under load, SIGKILL it at a random moment; return what was answered, and
    how long before the kill each answer arrived (seconds)."""
    client = RawPipeClient(argv, env)
    stop = threading.Event()
    answered_at: dict[int, float] = {}
    try:
        assert "result" in client.request(INIT)
        client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

        def load() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                with contextlib.suppress(OSError, AssertionError):
                    client.request(time_call(i), timeout=5)
                    answered_at[i] = time.monotonic()

        threading.Thread(target=load, daemon=True).start()
        time.sleep(rng.uniform(0.2, 1.2))
        children = descendants(client.pid)
        killed_at = time.monotonic()
        os.kill(client.pid, signal.SIGKILL)  # wrap first: no chance to flush or say goodbye
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        client.proc.wait(10)
        stop.set()
        time.sleep(0.1)  # let the reader thread take the last bytes the pipe held
        answered = answered_ids(client)
        # An answer the load thread had no time to note arrived at the kill.
        return answered, {i: killed_at - answered_at.get(i, killed_at) for i in answered}
    finally:
        stop.set()
        client.kill_tree()


@pytest.mark.timeout(60 + 10 * TRIALS)
@pytest.mark.parametrize("durability", ["strict", "batched"])
def test_kill9_loses_nothing_answered_in_strict_mode_and_only_a_tail_in_batched(
    notary: Notary, time_cmd: list[str], store_url: str, durability: str
) -> None:
    url = store_url
    argv = notary.wrap_argv(time_cmd, options=["--store", url, "--durability", durability])
    rng = random.Random(int(os.environ.get("MCP_NOTARY_CRASH_SEED", "9")))
    answered_total = 0
    for trial in range(TRIALS):
        before = stored_streams(url)
        answered, age = crash_once(argv, notary.env(), rng)
        streams = stored_streams(url)
        new = set(streams) - set(before)
        assert len(new) == 1, f"trial {trial}: expected one new stream, got {new}"
        (stream,) = new
        calls = {e["jsonrpc_id"] for e in streams[stream] if e["kind"] == "call"}
        missing = answered - calls
        if durability == "strict":
            assert not missing, f"trial {trial}: answered but not stored: {sorted(missing)}"
        else:
            # Batched: a response may overtake its record by at most the batch window (plus
            # the commit in flight), so only the last calls can be lost: a tail, never a hole,
            # answered within that window of the kill, at most two batches of them.
            assert calls, f"trial {trial}: nothing stored"
            assert all(m > max(calls) for m in missing), (trial, sorted(missing))
            assert len(missing) <= 2 * BATCH_MAX_EVENTS, (trial, sorted(missing))
            late = {m: round(age[m], 3) for m in missing if age[m] > LOSS_WINDOW_S}
            assert not late, (trial, late)
        seqs = sorted(e["seq"] for e in streams[stream])
        assert seqs == list(range(1, len(seqs) + 1)), f"trial {trial}: gap in {stream}"
        answered_total += len(answered)
    assert answered_total > TRIALS  # the load really ran

    # A clean run closes every dead stream and seals it; then the whole trail verifies.
    with RawPipeClient(argv, notary.env()) as client:
        assert "result" in client.request(INIT)
        client.close_stdin()
        assert client.wait(30) == 0
    streams = stored_streams(url)
    unclean = [
        e
        for events in streams.values()
        for e in events
        if (e.get("details") or {}).get("phase") == "ended_uncleanly"
    ]
    assert len(unclean) == TRIALS
    proc = notary.run("verify", "--store", url, timeout=120)
    assert proc.returncode == 0, proc.stdout.decode()[-3000:] + proc.stderr.decode()[-3000:]


def stored_streams(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every stored event, by stream, read through the store interface (read-only)."""
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        store = open_store(url, readonly=True)
    except StoreError:
        return out  # not created yet
    try:
        for stream in store.stream_names():
            out[stream] = [json.loads(r.body) for r in store.scan(stream)]
    finally:
        store.close()
    return out
