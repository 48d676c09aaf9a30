"""A PostgreSQL outage under load, with real processes: `wrap --durability strict` keeps
answering calls while the database is stopped (the records are fsync'd to the local spool),
drains the spool in order when it is back, and the trail verifies with nothing lost. With a
spool too small for the outage, strict mode refuses calls cleanly and batched traffic goes on.

The test stops the machine's shared PostgreSQL for a few seconds and always restarts it."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from e2e_notary import Notary
from e2e_rawclient import INIT, RawPipeClient, time_call
from pgtest import ADMIN_URL, pg_schema

OUTAGE_S = 30.0  # the scenario: the database is gone for half a minute under load
SHORT_OUTAGE_S = 3.0  # enough to fill a tiny spool



def cluster() -> str:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    return versions[-1]


def pg_ctl(action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", cluster(), "main", action],
        check=True,
        timeout=60,
        capture_output=True,
    )


def wait_for_postgres(timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(ADMIN_URL, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not Path("/etc/postgresql").is_dir():
        pytest.skip("no local PostgreSQL cluster to stop and start")
    with pg_schema("outage") as url:
        yield url


@pytest.mark.timeout(180)
def test_outage_under_load_loses_nothing(
    notary: Notary, time_cmd: list[str], pg_url: str, tmp_path: Path
) -> None:
    url = f"{pg_url}&spool_dir={tmp_path / 'spool'}"
    argv = notary.wrap_argv(time_cmd, options=["--store", url, "--durability", "strict"])
    answered: list[int] = []
    stop = threading.Event()
    with RawPipeClient(argv, notary.env()) as client:
        assert "result" in client.request(INIT)
        client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

        def load() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                if "result" in client.request(time_call(i), timeout=30):
                    answered.append(i)
                time.sleep(0.005)

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        time.sleep(1.0)
        before = len(answered)
        try:
            pg_ctl("stop")
            time.sleep(OUTAGE_S)
            during = len(answered) - before
        finally:
            pg_ctl("start")  # always: other tests share this server
            wait_for_postgres()
        time.sleep(2.0)
        stop.set()
        loader.join(30)
        client.close_stdin()
        assert client.wait(60) == 0
        stderr = client.stderr.decode(errors="replace")
    assert during > 10, "strict calls must keep being answered while the database is down"
    assert "audit degraded" in stderr and "audit recovered" in stderr, stderr[-2000:]
    with psycopg.connect(pg_url) as db:
        events = [json.loads(b) for (b,) in db.execute("SELECT body FROM events")]
    calls = [e for e in events if e["kind"] == "call" and e["method"] == "tools/call"]
    started = [e for e in events if e["kind"] == "call_started"]
    assert len(started) >= len(calls)  # strict: each call was recorded before it was forwarded
    ids = sorted(e["jsonrpc_id"] for e in calls)
    assert ids == sorted(answered), "every answered call is stored exactly once"
    seqs = sorted(e["seq"] for e in events)
    assert seqs == list(range(1, len(seqs) + 1)), "no gap in the chain"
    phases = [(e["details"] or {}).get("phase") for e in sorted(events, key=lambda e: e["seq"])]
    assert "audit_degraded" in phases and "audit_recovered" in phases, "outage not in the chain"
    assert phases.index("audit_degraded") < phases.index("audit_recovered")
    assert list((tmp_path / "spool").glob("*.spool")) == []  # drained and removed
    proc = notary.run("verify", "--store", pg_url, timeout=120)
    assert proc.returncode == 0, proc.stdout.decode()[-3000:] + proc.stderr.decode()[-3000:]


def run_outage(
    notary: Notary, argv: list[str], seconds: float
) -> tuple[dict[int, dict[str, Any]], str]:
    """Sequential calls through `argv` while PostgreSQL is stopped for `seconds`; returns
    every reply by id and wrap's stderr."""
    replies: dict[int, dict[str, Any]] = {}
    stop = threading.Event()
    with RawPipeClient(argv, notary.env()) as client:
        assert "result" in client.request(INIT)
        client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

        def load() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                replies[i] = client.request(time_call(i), timeout=30)
                time.sleep(0.005)

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        time.sleep(0.5)
        try:
            pg_ctl("stop")
            time.sleep(seconds)
        finally:
            pg_ctl("start")  # always: other tests share this server
            wait_for_postgres()
        time.sleep(2.5)
        stop.set()
        loader.join(30)
        client.close_stdin()
        assert client.wait(60) == 0
        return replies, client.stderr.decode(errors="replace")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("durability", ["strict", "batched"])
def test_a_full_spool_refuses_strict_calls_and_never_stops_batched_traffic(
    notary: Notary, time_cmd: list[str], pg_url: str, tmp_path: Path, durability: str
) -> None:
    url = f"{pg_url}&spool_dir={tmp_path / 'spool'}&spool_max_bytes=4000"
    argv = notary.wrap_argv(time_cmd, options=["--store", url, "--durability", durability])
    replies, stderr = run_outage(notary, argv, SHORT_OUTAGE_S)
    assert "audit spool_full" in stderr, stderr[-2000:]
    refused = sorted(i for i, r in replies.items() if "error" in r)
    if durability == "strict":
        assert refused, "a strict proxy must refuse calls it cannot record"
        assert all("audit store unavailable" in replies[i]["error"]["message"] for i in refused)
        assert "result" in replies[max(replies)], "calls are answered again after recovery"
    else:
        assert refused == [], "batched traffic never stops"
    with psycopg.connect(pg_url) as db:
        events = [json.loads(b) for (b,) in db.execute("SELECT body FROM events")]
    answered = {i for i, r in replies.items() if "result" in r}
    stored = {e["jsonrpc_id"] for e in events if e["kind"] == "call" and e["outcome"] == "success"}
    assert answered <= stored, sorted(answered - stored)[:20]
    seqs = sorted(e["seq"] for e in events)
    assert seqs == list(range(1, len(seqs) + 1)), "no gap in the chain"
    proc = notary.run("verify", "--store", pg_url, timeout=120)
    assert proc.returncode == 0, proc.stdout.decode()[-3000:] + proc.stderr.decode()[-3000:]
