"""`--format otlp`: the pure mapping to OTel MCP semantic-convention attributes, and
`mcp-notary export` as a real process into a local OTLP/HTTP receiver that decodes each
`ExportLogsServiceRequest` with the opentelemetry-proto classes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from e2e_notary import Notary
from factories import append, event

from mcp_notary.export.mapping import FORMATS
from mcp_notary.export.otlp import otlp_attributes, otlp_record
from mcp_notary.ledger.stores import open_store

pytest.importorskip("opentelemetry.sdk._logs")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def stored(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": "1",
        "event_id": "01J000000000000000000000AB",
        "stream": "s1",
        "seq": 7,
        "timestamp": "2026-11-24T10:00:00.123456Z",
        "kind": "call",
        "method": "tools/call",
        "tool": "get_current_time",
        "target": None,
        "principal": {"id": "alice", "type": "user", "source": "config"},
        "client": {"name": "inspector", "version": "1.0"},
        "server": {"name": "time", "version": "2.0", "command": None},
        "transport": "stdio",
        "direction": "client_to_server",
        "protocol_version": "2025-11-25",
        "jsonrpc_id": 3,
        "outcome": "success",
        "duration_ms": 12.5,
        "error": None,
        "trace_id": None,
        "parent_event_id": None,
        "arguments": {"timezone": "UTC"},
        "response_summary": None,
        "sensitive_fields": [],
        "details": None,
    }
    base.update(fields)
    return base


def test_mapping_uses_the_otel_mcp_attribute_names() -> None:
    attrs = otlp_attributes(stored())
    assert attrs == {
        "mcp.method.name": "tools/call",
        "gen_ai.tool.name": "get_current_time",
        "gen_ai.operation.name": "execute_tool",
        "mcp.protocol.version": "2025-11-25",
        "jsonrpc.request.id": "3",
        "jsonrpc.protocol.version": "2.0",
        "network.transport": "pipe",
        "user.id": "alice",
        "mcp_notary.event_id": "01J000000000000000000000AB",
        "mcp_notary.stream": "s1",
        "mcp_notary.seq": 7,
        "mcp_notary.kind": "call",
        "mcp_notary.action": "tools/call",
        "mcp_notary.outcome": "success",
        "mcp_notary.direction": "client_to_server",
        "mcp_notary.transport": "stdio",
        "mcp_notary.duration_ms": 12.5,
        "mcp_notary.principal.type": "user",
        "mcp_notary.server.name": "time",
        "mcp_notary.server.version": "2.0",
        "mcp_notary.client.name": "inspector",
        "mcp_notary.client.version": "1.0",
    }
    # Early-draft names must not appear, nor sessions, nor the (opt-in) arguments.
    assert not {"mcp.tool.name", "mcp.request.id", "mcp.session.id"} & set(attrs)
    assert not any(k.startswith(("mcp.request.argument", "gen_ai.tool.call.")) for k in attrs)


def test_mapping_of_errors_resources_prompts_and_http() -> None:
    tool_error = otlp_attributes(stored(outcome="tool_error"))
    assert tool_error["error.type"] == "tool_error"
    protocol = otlp_attributes(
        stored(outcome="protocol_error", error={"code": -32602, "message": "bad"})
    )
    assert protocol["error.type"] == protocol["rpc.response.status_code"] == "-32602"
    assert protocol["mcp_notary.error.message"] == "bad"
    assert otlp_attributes(stored(outcome="denied"))["error.type"] == "denied"
    read = otlp_attributes(
        stored(method="resources/read", tool=None, target="file:///a", transport="http")
    )
    assert read["mcp.resource.uri"] == "file:///a"
    assert read["network.transport"] == "tcp" and read["network.protocol.name"] == "http"
    assert "gen_ai.operation.name" not in read and "gen_ai.tool.name" not in read
    prompt = otlp_attributes(stored(method="prompts/get", tool=None, target="greet"))
    assert prompt["gen_ai.prompt.name"] == "greet"
    lifecycle = otlp_attributes(stored(kind="lifecycle", method=None, tool=None, jsonrpc_id=None))
    assert "mcp.method.name" not in lifecycle and "jsonrpc.protocol.version" not in lifecycle


def test_record_time_severity_body_and_trace() -> None:
    record = otlp_record(stored(trace_id="0af7651916cd43dd8448eb211c80319c"))
    assert record["time_unix_nano"] == 1795514400_123456000
    assert (record["severity_number"], record["severity_text"]) == (9, "INFO")
    assert record["event_name"] == "mcp_notary.call"
    assert json.loads(record["body"])["event_id"] == "01J000000000000000000000AB"
    assert record["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert otlp_record(stored(trace_id="nope"))["trace_id"] is None
    alert = otlp_record(stored(kind="integrity_alert"))
    assert (alert["severity_number"], alert["severity_text"]) == (21, "FATAL")
    assert otlp_record(stored(outcome="denied"))["severity_text"] == "WARN"
    assert otlp_record(stored(outcome="tool_error"))["severity_text"] == "INFO2"
    assert json.loads(FORMATS["otlp"](stored())) == json.loads(json.dumps(otlp_record(stored())))


def _value(value: AnyValue) -> Any:
    field = value.WhichOneof("value")
    return getattr(value, field) if field else None


class OtlpReceiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP logs receiver: protobuf `ExportLogsServiceRequest` on `/v1/logs`; refuses
    the next `fail` requests with 500 (not retryable in OTLP) before accepting."""

    records: ClassVar[list[dict[str, Any]]] = []
    resources: ClassVar[list[dict[str, Any]]] = []
    problems: ClassVar[list[str]] = []
    fail: ClassVar[int] = 0

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        cls = type(self)
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/v1/logs" or self.headers["Content-Type"] != "application/x-protobuf":
            cls.problems.append(f"{self.path} {self.headers['Content-Type']}")
        if cls.fail > 0:
            cls.fail -= 1
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        request = ExportLogsServiceRequest()
        request.ParseFromString(raw)
        for resource_logs in request.resource_logs:
            cls.resources.append(
                {a.key: _value(a.value) for a in resource_logs.resource.attributes}
            )
            for scope_logs in resource_logs.scope_logs:
                if scope_logs.scope.name != "mcp_notary.export":
                    cls.problems.append(f"scope {scope_logs.scope.name}")
                for log in scope_logs.log_records:
                    cls.records.append(
                        {
                            "time": log.time_unix_nano,
                            "severity": log.severity_number,
                            "event_name": log.event_name,
                            "body": _value(log.body),
                            "trace_id": log.trace_id.hex(),
                            "attributes": {a.key: _value(a.value) for a in log.attributes},
                        }
                    )
        body = ExportLogsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def otlp() -> Iterator[str]:
    OtlpReceiver.records, OtlpReceiver.resources, OtlpReceiver.problems = [], [], []
    OtlpReceiver.fail = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), OtlpReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/logs"
    server.shutdown()
    server.server_close()


def populate(url: str, n: int, stream: str = "s1") -> None:
    store = open_store(url)
    try:
        append(store, stream, [event(f"tool{i}") for i in range(n)])
    finally:
        store.close()


def stored_ids(notary: Notary, path: Path, kind: str = "call") -> list[str]:
    proc = notary.run("export", "--format", "jsonl", "--store", str(path))
    assert proc.returncode == 0, proc.stderr.decode()
    return [e["event_id"] for e in map(json.loads, proc.stdout.splitlines()) if e["kind"] == kind]


def test_otlp_export_with_cursor_resends_nothing_acknowledged(
    notary: Notary, tmp_path: Path, otlp: str
) -> None:
    path, cursor = tmp_path / "audit.db", tmp_path / "cursor.json"
    populate(str(path), 4)
    args = ["export", "--format", "otlp", "--to", otlp, "--cursor", str(cursor)]
    args += ["--store", str(path)]

    proc = notary.run(*args)
    assert proc.returncode == 0, proc.stderr.decode()
    assert OtlpReceiver.problems == []
    calls = [r for r in OtlpReceiver.records if r["attributes"]["mcp_notary.kind"] == "call"]
    assert len(calls) == 4
    first = calls[0]
    assert first["attributes"]["mcp.method.name"] == "tools/call"
    assert first["attributes"]["gen_ai.tool.name"] == "tool0"
    assert first["attributes"]["gen_ai.operation.name"] == "execute_tool"
    assert first["attributes"]["network.transport"] == "pipe"
    assert first["attributes"]["user.id"] == "alice"
    assert first["attributes"]["mcp_notary.seq"] == 1
    assert first["event_name"] == "mcp_notary.call" and first["severity"] == 9
    assert json.loads(first["body"])["event_id"] == first["attributes"]["mcp_notary.event_id"]
    assert first["time"] > 0
    assert OtlpReceiver.resources[0]["service.name"] == "mcp-notary"
    # The export itself was recorded (an audit_access read) before the first record left.
    assert any(r["attributes"]["mcp_notary.kind"] == "audit_access" for r in OtlpReceiver.records)
    sent_before = len(OtlpReceiver.records)

    # Restart with the persisted cursor: only what is new goes out.
    populate(str(path), 2, stream="s1")
    proc = notary.run(*args)
    assert proc.returncode == 0, proc.stderr.decode()
    new = OtlpReceiver.records[sent_before:]
    assert [r["attributes"]["mcp_notary.kind"] for r in new].count("call") == 2
    received = [r["attributes"]["mcp_notary.event_id"] for r in OtlpReceiver.records]
    assert len(received) == len(set(received))
    got_calls = [
        r["attributes"]["mcp_notary.event_id"]
        for r in OtlpReceiver.records
        if r["attributes"]["mcp_notary.kind"] == "call"
    ]
    assert got_calls == stored_ids(notary, path)
    # Every stored event (calls and the recorded reads, minus the read this check records) went.
    assert set(received) >= set(stored_ids(notary, path, "audit_access")[:2])


def test_otlp_refused_batch_is_not_acknowledged_and_is_resent(
    notary: Notary, tmp_path: Path, otlp: str
) -> None:
    path, cursor = tmp_path / "audit.db", tmp_path / "cursor.json"
    populate(str(path), 3)
    args = ["export", "--format", "otlp", "--to", otlp, "--cursor", str(cursor)]
    args += ["--store", str(path)]
    OtlpReceiver.fail = 1
    proc = notary.run(*args)
    assert proc.returncode != 0
    assert b"OTLP" in proc.stderr
    assert OtlpReceiver.records == []
    assert not cursor.exists() or json.loads(cursor.read_text())["streams"].get("s1", 0) == 0
    proc = notary.run(*args)
    assert proc.returncode == 0, proc.stderr.decode()
    calls = [
        r["attributes"]["mcp_notary.event_id"]
        for r in OtlpReceiver.records
        if r["attributes"]["mcp_notary.kind"] == "call"
    ]
    assert calls == stored_ids(notary, path)


def test_otlp_needs_an_http_destination(notary: Notary, tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    populate(str(path), 1)
    proc = notary.run("export", "--format", "otlp", "--store", str(path))
    assert proc.returncode != 0 and b"otlp" in proc.stderr
