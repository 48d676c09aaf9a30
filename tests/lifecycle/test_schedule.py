"""The proxy applies the retention policy on a schedule (`proxy --retention-every`)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from e2e_notary import Notary
from e2e_rawclient import wait_until
from http_procs import free_port, mcpserver_argv, proxy_argv, running
from lifecycle_trail import build_aged_trail


def retention_events(store: Path) -> list[dict]:
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT body FROM events WHERE kind = 'retention'").fetchall()
    finally:
        db.close()
    return [json.loads(r[0]) for r in rows]


def test_the_proxy_runs_retention_on_its_schedule(notary: Notary, tmp_path: Path) -> None:
    store = tmp_path / "audit.db"
    key = notary.home / ".local/share/mcp-notary/checkpoint.key"
    trail = build_aged_trail(store, key, events=2_000, streams=2, days=400,
                             end=datetime.now(UTC))  # fmt: skip
    config = tmp_path / "mcp-notary.toml"
    config.write_text(f'[retention]\nhot = "P90D"\ntotal = "P365D"\narchive = "{tmp_path}/a"\n')
    upstream_port, port = free_port(), free_port()
    with (
        running(mcpserver_argv(upstream_port), upstream_port) as upstream,
        running(
            proxy_argv(notary.argv, upstream.url, port, store, "--config", str(config),
                       "--retention-every", "0.0003"),  # about one second
            port,
            env=notary.env(),
        ) as proxy,
    ):  # fmt: skip
        assert wait_until(lambda: len(retention_events(store)) >= 1, timeout=30), proxy.output()
    run = retention_events(store)[0]
    assert run["details"]["archived_events"] > 1_000 and run["details"]["expired_events"] > 50
    assert {s["stream"] for s in run["details"]["streams"]} == set(trail.streams)
    assert run["stream"] not in trail.streams  # recorded on the proxy's own stream
    assert list((tmp_path / "a").rglob("*.jsonl.gz"))
    verified = notary.verify(store, "--archive", str(tmp_path / "a"))
    assert verified.returncode == 0, verified.stdout.decode()[-2000:]


def test_serve_runs_retention_on_its_schedule(notary: Notary, tmp_path: Path) -> None:
    store = tmp_path / "audit.db"
    key = notary.home / ".local/share/mcp-notary/checkpoint.key"
    build_aged_trail(store, key, events=1_000, streams=1, days=400,
                     end=datetime.now(UTC))  # fmt: skip
    config = tmp_path / "mcp-notary.toml"
    config.write_text('[retention]\ntotal = "P365D"\n')
    port = free_port()
    argv = [*notary.argv, "serve", "--store", str(store), "--listen", f"127.0.0.1:{port}",
            "--config", str(config), "--retention-every", "0.0003"]  # fmt: skip
    with running(argv, port, env=notary.env()) as serve:
        assert wait_until(lambda: len(retention_events(store)) >= 1, timeout=30), serve.output()
    run = retention_events(store)[0]
    assert run["details"]["expired_events"] > 50 and run["details"]["archived_events"] == 0
    assert run["method"] == "lifecycle/retention"
    assert notary.verify(store).returncode == 0
