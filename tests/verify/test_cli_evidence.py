"""What an auditor and an operator run on a real trail: `prove` / `verify-proof`,
`verify --save-checkpoints`, and `watch --once` with a webhook."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from e2e_notary import Notary, drop_append_only_triggers, sqlite_connect
from trail import Trail

from mcp_notary.ledger.signing import NoteSigner

pytestmark = pytest.mark.timeout(120)


def an_event_id(store: Path, seq: int = 100) -> str:
    db = sqlite3.connect(store)
    (event_id,) = db.execute("SELECT event_id FROM events WHERE seq = ?", (seq,)).fetchone()
    db.close()
    return str(event_id)


def test_prove_writes_a_bundle_that_verifies_with_only_the_key(
    notary: Notary, trail: Trail, copy: Path, tmp_path: Path
) -> None:
    event_id = an_event_id(copy)
    bundle = tmp_path / "proof.json"
    proc = notary.run("prove", event_id, "-o", str(bundle), store=copy)
    assert proc.returncode == 0, proc.stderr.decode()
    data = json.loads(bundle.read_text())
    assert data["format"] == "mcp-notary/inclusion-proof@v1" and data["seq"] == 100
    assert data["tlog_proof"].startswith("c2sp.org/tlog-proof@v1\nindex 99\n")
    assert data["event"]["event_id"] == event_id
    # The auditor has the bundle and the vkey; no store, no network.
    proc = notary.run("verify-proof", str(bundle), "--trusted-key", str(trail.vkey))
    assert proc.returncode == 0, proc.stderr.decode()
    assert f"event {event_id}" in proc.stdout.decode()


@pytest.mark.parametrize("damage", ["event", "path", "signature", "key"])
def test_a_damaged_bundle_or_the_wrong_key_fails(
    notary: Notary, trail: Trail, copy: Path, tmp_path: Path, damage: str
) -> None:
    bundle = tmp_path / "proof.json"
    assert notary.run("prove", an_event_id(copy), "-o", str(bundle), store=copy).returncode == 0
    data = json.loads(bundle.read_text())
    key = trail.vkey
    if damage == "event":
        raw = base64.b64decode(data["event_b64"]).replace(b'"seq":100', b'"seq":101')
        data["event_b64"] = base64.b64encode(raw).decode()
    elif damage == "path":
        lines = data["tlog_proof"].split("\n")
        lines[2] = base64.b64encode(bytes(32)).decode()
        data["tlog_proof"] = "\n".join(lines)
    elif damage == "signature":
        head, _, sig = data["tlog_proof"].rpartition(" ")
        raw = bytearray(base64.b64decode(sig))
        raw[-1] ^= 1
        data["tlog_proof"] = head + " " + base64.b64encode(bytes(raw)).decode() + "\n"
    else:
        key = tmp_path / "other.vkey"
        key.write_text(NoteSigner.generate("mcp-notary/other").vkey + "\n")
    bundle.write_text(json.dumps(data))
    proc = notary.run("verify-proof", str(bundle), "--trusted-key", str(key))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr.strip()


def test_saved_checkpoints_are_the_auditors_evidence_next_time(
    notary: Notary, trail: Trail, copy: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "saved"
    proc = notary.verify(copy, "--trusted-key", str(trail.vkey), "--save-checkpoints", str(saved))
    assert proc.returncode == 0, proc.stdout.decode()
    (file,) = saved.iterdir()
    proc = notary.verify(copy, "--trusted-key", str(trail.vkey), "--checkpoint", str(file))
    assert proc.returncode == 0


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    finally:
        server.shutdown()
        server.server_close()


def test_watch_alerts_on_a_break_and_records_it(
    notary: Notary, trail: Trail, copy: Path, webhook: str
) -> None:
    args = ["--once", "--no-syslog", "--trusted-key", str(trail.vkey), "--webhook", webhook]
    proc = notary.run("watch", *args, store=copy)
    assert proc.returncode == 0, proc.stderr.decode()
    assert Hook.received == []
    db = sqlite_connect(copy)
    drop_append_only_triggers(db)
    db.execute(
        'UPDATE events SET body = replace(body, \'"transport":"stdio"\', '
        '\'"transport":"stdiO"\') WHERE seq = 77'
    )
    db.close()
    proc = notary.run("watch", *args, store=copy)
    assert proc.returncode == 1
    assert b"INTEGRITY ALERT" in proc.stderr and b"seq 77" in proc.stderr
    assert len(Hook.received) == 1, Hook.received
    (alert,) = Hook.received
    assert alert["type"] == "mcp-notary.integrity_alert"
    assert alert["finding"]["kind"] == "modified" and alert["finding"]["seq"] == 77
    db = sqlite3.connect(copy)
    recorded = [
        json.loads(body)
        for (body,) in db.execute("SELECT body FROM events WHERE kind = 'integrity_alert'")
    ]
    db.close()
    assert len(recorded) == 1 and recorded[0]["details"]["finding"]["seq"] == 77
    # The watcher's own stream is checkpointed: verify finds the break, and nothing unsigned.
    report = json.loads(
        notary.verify(copy, "--json", "--trusted-key", str(trail.vkey)).stdout.decode()
    )
    assert {f["kind"] for f in report["findings"]} == {"modified"}
