"""OpenTelemetry logs: a pure mapping to OTel MCP semantic-convention attributes, and a sink
that sends with the OpenTelemetry SDK's OTLP/HTTP log exporter.

`otlp_record` is pure (no SDK import); `to_otlp` serialises it as JSON so it travels through
the runner like every other format; `OtlpSink` turns those records into SDK log records and
returns only when the exporter reports success (the runner then advances the cursor).

Needs `opentelemetry-sdk` and `opentelemetry-exporter-otlp-proto-http` (imported lazily, so
the other formats work without them). Field-by-field table: docs/export.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mcp_notary.errors import ConfigError
from mcp_notary.export.mapping import (
    _FAILURES,
    PRODUCT,
    Event,
    __version__,
    action,
    severity,
)

if TYPE_CHECKING:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

SCOPE = "mcp_notary.export"
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")

# (OTel SeverityNumber, SeverityText) by mcp-notary severity, in line with the syslog mapping
# and the OTel data model's syslog table: critical -> FATAL, warning -> WARN, notice -> INFO2.
_SEVERITY = ((10, 21, "FATAL"), (5, 13, "WARN"), (4, 10, "INFO2"), (0, 9, "INFO"))


def otlp_severity(event: Event) -> tuple[int, str]:
    sev = severity(event)
    for floor, number, text in _SEVERITY:
        if sev >= floor:
            return number, text
    return 9, "INFO"  # pragma: no cover - severity() is never negative


def _network_transport(transport: Any) -> str | None:
    """stdio is a pipe in OTel terms; HTTP (and Streamable HTTP) runs over TCP."""
    if transport == "stdio":
        return "pipe"
    if transport in ("http", "sse", "streamable-http"):
        return "tcp"
    return None


def _error_type(event: Event, code: Any) -> str | None:
    outcome = event.get("outcome")
    if outcome == "tool_error":
        return "tool_error"
    if code is not None:
        return str(code)
    return str(outcome) if outcome in _FAILURES else None


def otlp_attributes(event: Event) -> dict[str, str | int | float]:
    """Log record attributes: the OTel MCP conventions where one exists, `mcp_notary.*`
    otherwise. Absent values are left out (OTLP has no null attribute)."""
    method = event.get("method")
    target = event.get("target")
    error = event.get("error") if isinstance(event.get("error"), dict) else {}
    code = (error or {}).get("code")
    principal = event.get("principal") or {}
    server = event.get("server") or {}
    client = event.get("client") or {}
    transport = event.get("transport")
    attrs: dict[str, Any] = {
        "mcp.method.name": method,
        "gen_ai.tool.name": event.get("tool"),
        "gen_ai.operation.name": "execute_tool" if method == "tools/call" else None,
        "gen_ai.prompt.name": target if method == "prompts/get" else None,
        "mcp.resource.uri": target
        if isinstance(method, str) and method.startswith("resources/")
        else None,
        "mcp.protocol.version": event.get("protocol_version"),
        "jsonrpc.request.id": None if event.get("jsonrpc_id") is None else str(event["jsonrpc_id"]),
        "jsonrpc.protocol.version": "2.0" if method else None,
        "rpc.response.status_code": None if code is None else str(code),
        "error.type": _error_type(event, code),
        "network.transport": _network_transport(transport),
        "network.protocol.name": "http" if transport == "http" else None,
        "user.id": principal.get("id"),
        "mcp_notary.event_id": event["event_id"],
        "mcp_notary.stream": event["stream"],
        "mcp_notary.seq": event["seq"],
        "mcp_notary.kind": event["kind"],
        "mcp_notary.action": action(event),
        "mcp_notary.outcome": event.get("outcome"),
        "mcp_notary.target": target,
        "mcp_notary.direction": event.get("direction"),
        "mcp_notary.transport": transport,
        "mcp_notary.duration_ms": None
        if event.get("duration_ms") is None
        else float(event["duration_ms"]),
        "mcp_notary.parent_event_id": event.get("parent_event_id"),
        "mcp_notary.principal.type": principal.get("type"),
        "mcp_notary.server.name": server.get("name"),
        "mcp_notary.server.version": server.get("version"),
        "mcp_notary.client.name": client.get("name"),
        "mcp_notary.client.version": client.get("version"),
        "mcp_notary.error.message": (error or {}).get("message"),
    }
    return {k: v for k, v in attrs.items() if v is not None}


def otlp_record(event: Event) -> dict[str, Any]:
    """One OTel log record as plain data: timestamp (ns), severity, event name, body (the
    stored event's JSON, already redacted), attributes, and the W3C trace id if any."""
    moment = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    time_ns = int(moment.replace(microsecond=0).timestamp()) * 1_000_000_000
    time_ns += moment.microsecond * 1000
    number, text = otlp_severity(event)
    trace_id = event.get("trace_id")
    return {
        "time_unix_nano": time_ns,
        "severity_number": number,
        "severity_text": text,
        "event_name": f"mcp_notary.{event['kind']}",
        "body": json.dumps(event, separators=(",", ":"), ensure_ascii=False),
        "attributes": otlp_attributes(event),
        "trace_id": trace_id if isinstance(trace_id, str) and _TRACE_ID.match(trace_id) else None,
    }


def to_otlp(event: Event) -> bytes:
    return json.dumps(otlp_record(event), separators=(",", ":"), ensure_ascii=False).encode()


class OtlpSink:
    """OTLP/HTTP (protobuf) to a logs endpoint such as `http://collector:4318/v1/logs`. A
    batch is delivered when the SDK exporter returns SUCCESS (a 2xx from the receiver; the
    exporter itself retries 429/502/503/504 within its timeout). Headers (e.g. auth) come from
    `OTEL_EXPORTER_OTLP_LOGS_HEADERS` / `OTEL_EXPORTER_OTLP_HEADERS`, as for any OTel SDK."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        except ImportError as exc:
            raise ConfigError(
                "--format otlp needs opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http"
                f" ({exc})"
            ) from exc
        self.url = url
        self._exporter: OTLPLogExporter = OTLPLogExporter(endpoint=url, timeout=timeout)
        self._resource = Resource.create({"service.name": PRODUCT, "service.version": __version__})
        self._scope = InstrumentationScope(SCOPE, __version__)

    def _log_record(self, record: dict[str, Any]) -> Any:
        from opentelemetry import trace
        from opentelemetry._logs import LogRecord, SeverityNumber
        from opentelemetry.sdk._logs import ReadableLogRecord

        context = None
        if record.get("trace_id"):
            span = trace.NonRecordingSpan(
                trace.SpanContext(int(record["trace_id"], 16), 0, is_remote=True)
            )
            context = trace.set_span_in_context(span)
        log_record = LogRecord(
            timestamp=record["time_unix_nano"],
            context=context,
            severity_number=SeverityNumber(record["severity_number"]),
            severity_text=record["severity_text"],
            body=record["body"],
            attributes=record["attributes"],
            event_name=record["event_name"],
        )
        return ReadableLogRecord(
            log_record=log_record, resource=self._resource, instrumentation_scope=self._scope
        )

    def send(self, records: Sequence[bytes]) -> None:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        from mcp_notary.export.sinks import ExportError

        batch = [self._log_record(json.loads(r)) for r in records]
        result = self._exporter.export(batch)
        if result is not LogRecordExportResult.SUCCESS:
            raise ExportError(f"OTLP {self.url}: the exporter did not deliver the batch")

    def close(self) -> None:
        self._exporter.shutdown()  # type: ignore[no-untyped-call]
