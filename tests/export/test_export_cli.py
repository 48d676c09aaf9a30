"""`mcp-notary export` as a real process, into real listeners on loopback: a file, stdout, an
RFC 5424 syslog TCP receiver, a Splunk HEC receiver that checks the request format and
acknowledges like an indexer, `--follow` with a persisted cursor across a restart, and a
PostgreSQL store."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from e2e_notary import Notary
from factories import append, event
from pgtest import pg_schema
from syslog_wire import SYSLOG

from mcp_notary.ledger.stores import open_store


def populate(url: str, n: int, stream: str = "s1") -> None:
    store = open_store(url)
    try:
        append(store, stream, [event(f"tool{i}") for i in range(n)])
    finally:
        store.close()


def ids(lines: list[bytes], key: str = "event_id") -> list[str]:
    return [json.loads(line)[key] for line in lines if line.strip()]


def call_ids(notary: Notary, path: Path) -> list[str]:
    """Event ids of the `call` events in the store, as JSON Lines exports them."""
    proc = notary.run("export", "--format", "jsonl", "--store", str(path))
    assert proc.returncode == 0, proc.stderr.decode()
    return [e["event_id"] for e in map(json.loads, proc.stdout.splitlines()) if e["kind"] == "call"]


def test_jsonl_to_stdout_is_recorded_as_a_read(notary: Notary, tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    populate(str(path), 5)
    proc = notary.run("export", "--format", "jsonl", "--store", str(path), "--purpose", "T-1")
    assert proc.returncode == 0, proc.stderr.decode()
    exported = [json.loads(line) for line in proc.stdout.splitlines()]
    # (the shared reader stream, holding this export's own record, may sort first)
    assert [e["kind"] for e in exported if e["kind"] != "audit_access"] == ["call"] * 5
    again = notary.run("export", "--format", "jsonl", "--store", str(path))
    reads = [json.loads(x) for x in again.stdout.splitlines()]
    access = [e for e in reads if e["kind"] == "audit_access"]
    assert access and access[0]["method"] and "T-1" in json.dumps(access[0]["details"])


def test_ocsf_to_a_file(notary: Notary, tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    populate(str(path), 3)
    out = tmp_path / "out.ocsf.jsonl"
    proc = notary.run("export", "--format", "ocsf", "--to", str(out), "--store", str(path))
    assert proc.returncode == 0, proc.stderr.decode()
    records = [json.loads(line) for line in out.read_bytes().splitlines()]
    calls = call_ids(notary, path)
    records = [r for r in records if r["metadata"]["uid"] in calls]  # not the reads
    assert [r["class_uid"] for r in records[:3]] == [6003] * 3
    assert [r["metadata"]["uid"] for r in records[:3]] == calls[:3]


class SyslogReceiver:
    """A TCP syslog receiver speaking RFC 6587 octet counting."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.messages: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        buffer = b""
        while chunk := conn.recv(65536):
            buffer += chunk
            while b" " in buffer:
                length, rest = buffer.split(b" ", 1)
                if len(rest) < int(length):
                    break
                self.messages.append(rest[: int(length)])
                buffer = rest[int(length) :]


def test_syslog_over_tcp(notary: Notary, tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    populate(str(path), 4)
    receiver = SyslogReceiver()
    to = f"syslog+tcp://127.0.0.1:{receiver.port}"
    proc = notary.run("export", "--format", "syslog", "--to", to, "--store", str(path))
    assert proc.returncode == 0, proc.stderr.decode()
    deadline = time.monotonic() + 10
    while len(receiver.messages) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    matches = [SYSLOG.match(m) for m in receiver.messages]
    assert all(matches) and len(matches) >= 4
    bodies = [json.loads(m["msg"]) for m in matches if m]
    assert [b["event_id"] for b in bodies if b["kind"] == "call"] == call_ids(notary, path)


class HecReceiver(BaseHTTPRequestHandler):
    """Validates requests as Splunk's HEC would and acknowledges on the second poll."""

    token = "hec-token"
    events: ClassVar[list[dict[str, Any]]] = []
    problems: ClassVar[list[str]] = []
    polls: ClassVar[dict[int, int]] = {}
    next_ack = 0

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Authorization") != f"Splunk {self.token}":
            return self._reply(401, {"text": "Invalid token", "code": 4})
        if not self.headers.get("X-Splunk-Request-Channel"):
            return self._reply(400, {"text": "Data channel is missing", "code": 10})
        cls = type(self)
        if self.path.startswith("/services/collector/event"):
            decoder, at, text = json.JSONDecoder(), 0, raw.decode()
            while at < len(text):
                while at < len(text) and text[at].isspace():
                    at += 1
                if at >= len(text):
                    break
                obj, at = decoder.raw_decode(text, at)
                if not isinstance(obj.get("event"), dict) or not isinstance(obj.get("time"), float):
                    cls.problems.append(f"bad event object {obj}")
                if set(obj) - {"time", "host", "source", "sourcetype", "index", "event", "fields"}:
                    cls.problems.append(f"unknown keys {set(obj)}")
                cls.events.append(obj)
            cls.next_ack += 1
            cls.polls[cls.next_ack] = 0
            return self._reply(200, {"text": "Success", "code": 0, "ackId": cls.next_ack})
        if self.path.startswith("/services/collector/ack"):
            acks = json.loads(raw)["acks"]
            result = {}
            for ack in acks:
                cls.polls[ack] += 1
                result[str(ack)] = cls.polls[ack] >= 2
            return self._reply(200, {"acks": result})
        return self._reply(404, {"text": "not found", "code": 404})


@pytest.fixture
def hec() -> Iterator[str]:
    HecReceiver.events, HecReceiver.problems, HecReceiver.polls = [], [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), HecReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_splunk_hec_with_indexer_acknowledgement(notary: Notary, tmp_path: Path, hec: str) -> None:
    path = tmp_path / "audit.db"
    populate(str(path), 6)
    args = ["export", "--format", "splunk-hec", "--to", hec, "--store", str(path)]
    proc = notary.run(*args, "--hec-token", "wrong")
    assert proc.returncode != 0 and b"401" in proc.stderr
    proc = notary.run(*args, "--hec-token", HecReceiver.token)
    assert proc.returncode == 0, proc.stderr.decode()
    assert HecReceiver.problems == []
    assert all(p >= 2 for p in HecReceiver.polls.values())  # waited for the indexer
    sent = [e["event"]["event_id"] for e in HecReceiver.events if e["event"]["kind"] == "call"]
    assert sent == call_ids(notary, path)


def test_follow_resumes_from_its_cursor_without_duplicates(notary: Notary, tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    populate(str(path), 3)
    out, cursor = tmp_path / "out.jsonl", tmp_path / "cursor.json"
    argv = [*notary.argv, "export", "--format", "jsonl", "--follow", "--interval", "0.1"]
    argv += ["--to", str(out), "--cursor", str(cursor), "--store", str(path)]

    def exported_calls() -> list[str]:
        if not out.exists():
            return []
        return [e["event_id"] for e in map(json.loads, out.read_bytes().splitlines())
                if e["kind"] == "call"]  # fmt: skip

    def run_until(count: int) -> None:
        proc = subprocess.Popen(argv, env=notary.env(), stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while len(exported_calls()) < count and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0, proc.stderr.read().decode() if proc.stderr else ""

    run_until(3)
    populate(str(path), 2, stream="s2")
    run_until(5)
    populate(str(path), 2, stream="s1")
    run_until(7)
    calls = exported_calls()
    assert len(calls) == len(set(calls)) == 7
    assert sorted(calls) == sorted(call_ids(notary, path))
    assert json.loads(cursor.read_text())["streams"]["s1"] == 5


def test_export_from_postgresql(notary: Notary) -> None:
    with pg_schema("export") as url:
        populate(url, 4)
        proc = notary.run("export", "--format", "ecs", "--store", url)
        assert proc.returncode == 0, proc.stderr.decode()
        records = [json.loads(line) for line in proc.stdout.splitlines()]
        actions = [r["event"]["action"] for r in records]
        assert [a for a in actions if not a.startswith("audit/")] == ["tools/call"] * 4
        store = open_store(url, readonly=True)
        try:
            bodies = [json.loads(r.body) for s in store.stream_names() for r in store.scan(s)]
        finally:
            store.close()
        (read,) = [b for b in bodies if b["kind"] == "audit_access"]  # recorded as a read
        # ...under the read side's roles, as on SQLite (no grants yet: the local owner).
        assert read["method"] == "audit/export" and read["details"]["decision"] == "allowed"
        assert read["details"]["basis"].startswith("local store owner")


class BulkReceiver(BaseHTTPRequestHandler):
    """Checks `_bulk` NDJSON as Elasticsearch does for a data stream (op `create`, `_index`,
    `_id`, `@timestamp` in each document) and keeps documents by `_id` (409 on a duplicate)."""

    docs: ClassVar[dict[str, dict[str, Any]]] = {}
    problems: ClassVar[list[str]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        items = []
        if self.path != "/_bulk" or self.headers["Content-Type"] != "application/x-ndjson":
            cls.problems.append(f"{self.path} {self.headers['Content-Type']}")
        if not raw.endswith(b"\n"):
            cls.problems.append("bulk body must end with a newline")
        lines = raw.splitlines()
        for action_line, doc_line in zip(lines[::2], lines[1::2], strict=True):
            action = json.loads(action_line)
            doc = json.loads(doc_line)
            meta = action.get("create")
            if meta is None or "_index" not in meta or "_id" not in meta:
                cls.problems.append(f"bad action {action}")
                continue
            if "@timestamp" not in doc:
                cls.problems.append("a data stream document needs @timestamp")
            status = 409 if meta["_id"] in cls.docs else 201
            cls.docs.setdefault(meta["_id"], doc)
            items.append(
                {"create": {"_index": meta["_index"], "_id": meta["_id"], "status": status}}
            )
        body = json.dumps(
            {"errors": any(i["create"]["status"] != 201 for i in items), "items": items}
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())


def test_elastic_bulk_into_a_data_stream_is_idempotent(notary: Notary, tmp_path: Path) -> None:
    BulkReceiver.docs, BulkReceiver.problems = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), BulkReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = tmp_path / "audit.db"
        populate(str(path), 5)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        args = ["export", "--format", "elastic", "--to", url, "--store", str(path)]
        for _ in range(2):  # no cursor: the second run resends everything, stored once
            proc = notary.run(*args)
            assert proc.returncode == 0, proc.stderr.decode()
    finally:
        server.shutdown()
    assert BulkReceiver.problems == []
    calls = [d for d in BulkReceiver.docs.values() if d["mcp_notary"]["kind"] == "call"]
    assert sorted(d["event"]["id"] for d in calls) == sorted(call_ids(notary, path))
