"""`mcp-notary serve` itself, on each backend: the command opens the read side (SQLite file or
PostgreSQL schema), answers the API with a token issued through access control, and records
each request as an `audit_access` event on its own reader stream."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

import httpx
import pytest
from e2e_notary import Notary
from readside_deploy import Deployment

from mcp_notary.ledger.stores import open_store

pytestmark = pytest.mark.timeout(120)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_and_records_each_read(deployment: Deployment, notary: Notary) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [*notary.argv, "serve", "--store", deployment.store, "--listen", f"127.0.0.1:{port}"],
        env=notary.env(),
        cwd=notary.home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    headers = {
        "Authorization": f"Bearer {deployment.tokens['audra']}",
        "X-Audit-Purpose": "serve smoke",
    }
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/api/events?limit=3&tool=convert_time&q=tokyo",
                    headers=headers,
                    timeout=10,
                )
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["events"]) == 3 and page["next_cursor"]
        assert all(e["tool"] == "convert_time" for e in page["events"])
        refused = httpx.get(
            f"http://127.0.0.1:{port}/api/events",
            headers={"Authorization": f"Bearer {deployment.tokens['adam']}"},
            timeout=10,
        )
        assert refused.status_code == 403  # an admin does not read events
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: uvicorn stops, the reader stream is sealed
        proc.wait(20)
    store = open_store(deployment.store, readonly=True)
    try:
        (stream,) = [s.stream for s in store.streams() if s.server_name == "mcp-notary serve"]
        reads = [json.loads(r.body) for r in store.scan(stream) if r.kind == "audit_access"]
    finally:
        store.close()
    assert [(r["principal"]["id"], r["details"]["decision"]) for r in reads] == [
        ("audra", "allowed"),
        ("adam", "denied"),
    ]
    assert reads[0]["details"]["query"]["text"] == "tokyo"
    assert reads[0]["details"]["returned"] == 3 and reads[0]["transport"] == "http"
