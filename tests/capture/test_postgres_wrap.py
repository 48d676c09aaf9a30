"""`wrap --store postgresql://...` end to end with real processes and the real local PostgreSQL:
one proxy, then many proxies writing one database at once (each its own stream)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from e2e_notary import Notary
from e2e_rawclient import INIT, RawPipeClient, time_call
from pgtest import pg_schema


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_schema("wrap") as url:
        yield url


def stored(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as db:
        return [json.loads(b) for (b,) in db.execute("SELECT body FROM events")]


def run_proxy(notary: Notary, time_cmd: list[str], url: str, calls: int) -> RawPipeClient:
    client = RawPipeClient(notary.wrap_argv(time_cmd, options=["--store", url]), notary.env())
    assert "result" in client.request(INIT)
    client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    return client


def finish(client: RawPipeClient, calls: int, timeout: float) -> None:
    """Pipeline `calls` tool calls, wait for every response, then close like a client."""
    for i in range(1, calls + 1):
        client.send(time_call(i))
    client.response_to(calls, timeout=timeout)
    client.close_stdin()
    assert client.wait(timeout) == 0, client.stderr.decode(errors="replace")[-2000:]


def test_wrap_into_postgres_and_verify(notary: Notary, time_cmd: list[str], pg_url: str) -> None:
    with run_proxy(notary, time_cmd, pg_url, 5) as client:
        finish(client, 5, 60)
    events = stored(pg_url)
    assert sum(e["method"] == "tools/call" for e in events) == 5
    phases = [(e["details"] or {}).get("phase") for e in events if e["kind"] == "lifecycle"]
    assert "started" in phases and "stopped" in phases
    proc = notary.run("verify", "--store", pg_url)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


WRITERS = 8
CALLS = 500


def answered(client: RawPipeClient) -> set[int]:
    return {
        m["id"]
        for m in client.messages()
        if isinstance(m, dict) and "result" in m and isinstance(m.get("id"), int) and m["id"]
    }


@pytest.mark.timeout(120)
def test_many_writers_into_one_database(notary: Notary, time_cmd: list[str], pg_url: str) -> None:
    started = time.monotonic()
    clients = [run_proxy(notary, time_cmd, pg_url, CALLS) for _ in range(WRITERS)]
    try:
        for client in clients:
            for i in range(1, CALLS + 1):
                client.send(time_call(i))
        for client in clients:
            # Every call answered before the client says goodbye: none is abandoned.
            deadline = time.monotonic() + 90
            while len(answered(client)) < CALLS and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(answered(client)) == CALLS
            client.close_stdin()
        for client in clients:
            assert client.wait(60) == 0, client.stderr.decode(errors="replace")[-2000:]
    finally:
        for client in clients:
            client.__exit__(None, None, None)
    events = stored(pg_url)
    calls = [e for e in events if e["kind"] == "call" and e["method"] == "tools/call"]
    assert len(calls) == WRITERS * CALLS
    assert {e["outcome"] for e in calls} == {"success"}
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "an event was stored twice"
    streams: dict[str, list[int]] = {}
    for e in events:
        streams.setdefault(e["stream"], []).append(e["seq"])
    assert len(streams) == WRITERS
    for seqs in streams.values():
        assert sorted(seqs) == list(range(1, len(seqs) + 1))
    proc = notary.run("verify", "--json", "--store", pg_url, timeout=120)
    assert proc.returncode == 0, proc.stdout.decode()[-3000:] + proc.stderr.decode()[-3000:]
    assert time.monotonic() - started < 110
