"""Pure mappings from a stored event (its canonical JSON, parsed) to export formats.

Field-by-field tables are in docs/export.md. Every record carries the event's `event_id`, so a
receiver can drop the duplicates that at-least-once delivery may produce.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from importlib import metadata
from typing import Any

Event = dict[str, Any]
Formatter = Callable[[Event], bytes]

PRODUCT = "mcp-notary"
try:
    __version__ = metadata.version(PRODUCT)
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0"
OCSF_VERSION = "1.8.0"
ECS_VERSION = "9.1.0"
# RFC 5612 reserves enterprise number 32473 for documentation; a deployment with its own PEN
# can change it. Used in syslog structured-data ids.
SD_ENTERPRISE = 32473

_FAILURES = frozenset({"tool_error", "protocol_error", "transport_error", "denied", "cancelled"})


def epoch_ms(timestamp: str) -> int:
    """RFC 3339 `...Z` with microseconds -> milliseconds since the epoch."""
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


def _phase(event: Event) -> str | None:
    details = event.get("details") or {}
    phase = details.get("phase") if isinstance(details, dict) else None
    return phase if isinstance(phase, str) else None


def action(event: Event) -> str:
    """What happened, in one word or method name: the JSON-RPC method, else the kind (and the
    lifecycle phase, e.g. `lifecycle.started`)."""
    if event.get("method"):
        return str(event["method"])
    phase = _phase(event)
    return f"{event['kind']}.{phase}" if phase else str(event["kind"])


def severity(event: Event) -> int:
    """0 (lowest) .. 10, CEF's scale; other formats derive theirs from it."""
    if event["kind"] == "integrity_alert":
        return 10
    if event.get("outcome") == "denied" or event["kind"] == "auth":
        return 6
    if event["kind"] == "anomaly" or _phase(event) in ("ended_uncleanly", "spool_full"):
        return 5
    if event.get("outcome") in _FAILURES:
        return 4
    return 1


def _error(event: Event) -> dict[str, Any]:
    error = event.get("error")
    return error if isinstance(error, dict) else {}


def _compact(value: Any) -> Any:
    """Drop None and empty containers, recursively (most formats treat absent as unknown)."""
    if isinstance(value, dict):
        items = {k: _compact(v) for k, v in value.items()}
        return {k: v for k, v in items.items() if v not in (None, {}, [])}
    return value


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


# -- JSON Lines -----------------------------------------------------------------------------------


def to_jsonl(event: Event) -> bytes:
    """The stored event itself (canonical key order is preserved by json.loads/dumps)."""
    return _json(event)


# -- OCSF API Activity (class 6003) ---------------------------------------------------------------

_OCSF_ACTIVITY = {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 99: "Other"}


def ocsf_activity(method: str | None) -> int:
    """MCP methods that only read map to Read; subscriptions to Create/Delete; calls (which
    may do anything) to Other."""
    if method is None:
        return 99
    if method.endswith(("/list", "/get", "/read")) or method in ("ping", "server/discover"):
        return 2
    if method.endswith("/subscribe"):
        return 1
    if method.endswith("/unsubscribe"):
        return 4
    return 99


def ocsf_record(event: Event) -> dict[str, Any]:
    activity = ocsf_activity(event.get("method"))
    outcome = event.get("outcome")
    status_id = 0 if outcome is None else (1 if outcome == "success" else 2)
    sev = severity(event)
    client = event.get("client") or {}
    server = event.get("server") or {}
    principal = event.get("principal") or {}
    error = _error(event)
    target = event.get("tool") or event.get("target")
    record: dict[str, Any] = {
        "class_uid": 6003,
        "class_name": "API Activity",
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": activity,
        "activity_name": _OCSF_ACTIVITY[activity] if activity != 99 else action(event),
        "type_uid": 600300 + activity,
        "type_name": f"API Activity: {_OCSF_ACTIVITY[activity]}",
        "time": epoch_ms(event["timestamp"]),
        "time_dt": event["timestamp"],
        # OCSF severity: 1 Informational, 2 Low, 3 Medium, 4 High, 5 Critical.
        "severity_id": 1 if sev <= 1 else 2 if sev <= 4 else 3 if sev <= 6 else 5,
        "status_id": status_id,
        "status": {0: "Unknown", 1: "Success", 2: "Failure"}[status_id],
        "status_code": None if error.get("code") is None else str(error["code"]),
        "status_detail": outcome,
        "duration": None if event.get("duration_ms") is None else int(event["duration_ms"]),
        "metadata": {
            "version": OCSF_VERSION,
            # `time_dt` is an attribute of the datetime profile: a consumer validates the event
            # against the class plus the profiles it declares here.
            "profiles": ["datetime"],
            "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": __version__},
            "uid": event["event_id"],
            "original_event_uid": event["event_id"],
            "correlation_uid": event.get("trace_id"),
            "sequence": event["seq"],
            "log_name": event["stream"],
        },
        "actor": {
            "user": {"uid": principal.get("id"), "type": principal.get("type")},
            "app_name": client.get("name"),
        },
        "api": {
            "operation": action(event),
            "service": {"name": server.get("name"), "version": server.get("version")},
            "version": event.get("protocol_version"),
            "request": {"uid": _str_or_none(event.get("jsonrpc_id"))},
            "response": {
                "code": error.get("code"),
                "error": None if error.get("code") is None else str(error["code"]),
                "error_message": error.get("message"),
            },
        },
        "src_endpoint": {"name": client.get("name") or principal.get("id") or "unknown"},
        "dst_endpoint": {"svc_name": server.get("name")},
        "resources": [{"name": target, "type": "mcp.tool" if event.get("tool") else "mcp.target"}]
        if target
        else None,
        "unmapped": {
            "mcp_notary": {
                "kind": event["kind"],
                "stream": event["stream"],
                "transport": event.get("transport"),
                "direction": event.get("direction"),
                "outcome": outcome,
                "parent_event_id": event.get("parent_event_id"),
                "arguments": event.get("arguments"),
                "response_summary": event.get("response_summary"),
                "sensitive_fields": event.get("sensitive_fields"),
                "details": event.get("details"),
            }
        },
    }
    compacted: dict[str, Any] = _compact(record)
    compacted.setdefault("api", {}).setdefault("operation", action(event))
    return compacted


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def to_ocsf(event: Event) -> bytes:
    return _json(ocsf_record(event))


# -- ECS ------------------------------------------------------------------------------------------


def ecs_record(event: Event) -> dict[str, Any]:
    outcome = event.get("outcome")
    kind = event["kind"]
    category = ["authentication"] if kind == "auth" else ["api"]
    if kind in ("call", "call_started", "audit_access"):
        types = ["denied"] if outcome == "denied" else ["access"]
    elif kind == "lifecycle":
        types = ["info"]
    else:
        types = ["error"] if outcome in _FAILURES else ["info"]
    principal = event.get("principal") or {}
    server = event.get("server") or {}
    error = _error(event)
    record: dict[str, Any] = {
        "@timestamp": event["timestamp"],
        "ecs": {"version": ECS_VERSION},
        "event": {
            "id": event["event_id"],
            "kind": "alert" if kind == "integrity_alert" else "event",
            "category": category,
            "type": types,
            "action": action(event),
            "outcome": "unknown"
            if outcome is None
            else ("success" if outcome == "success" else "failure"),
            "duration": None
            if event.get("duration_ms") is None
            else int(event["duration_ms"] * 1_000_000),
            "sequence": event["seq"],
            "severity": severity(event),
            "dataset": "mcp_notary.audit",
            "provider": PRODUCT,
        },
        "user": {"id": principal.get("id")},
        "service": {"name": server.get("name"), "version": server.get("version")},
        "trace": {"id": event.get("trace_id")},
        "error": {
            "code": None if error.get("code") is None else str(error["code"]),
            "message": error.get("message"),
        },
        "gen_ai": {"tool": {"name": event.get("tool")}},
        "network": {"transport": event.get("transport")},
        "mcp_notary": {
            k: event.get(k)
            for k in (
                "stream",
                "kind",
                "method",
                "target",
                "outcome",
                "direction",
                "protocol_version",
                "jsonrpc_id",
                "client",
                "parent_event_id",
                "arguments",
                "response_summary",
                "sensitive_fields",
                "details",
            )
        },
    }
    compacted: dict[str, Any] = _compact(record)
    return compacted


def to_ecs(event: Event) -> bytes:
    return _json(ecs_record(event))


# -- CEF and LEEF ---------------------------------------------------------------------------------


def _cef_header(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _cef_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return (
        text.replace("\\", "\\\\")
        .replace("=", "\\=")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def _flat(event: Event) -> list[tuple[str, str, Any]]:
    """`(cef key, leef key, value)` of the fields both formats carry; None values dropped."""
    principal = event.get("principal") or {}
    server = event.get("server") or {}
    fields: list[tuple[str, str, Any]] = [
        ("rt", "devTime", epoch_ms(event["timestamp"])),
        ("externalId", "externalId", event["event_id"]),
        ("suser", "usrName", principal.get("id")),
        ("act", "action", action(event)),
        ("outcome", "outcome", event.get("outcome")),
        ("app", "proto", event.get("transport")),
        ("cs1Label", "", "mcpTool"),
        ("cs1", "mcpTool", event.get("tool") or event.get("target")),
        ("cs2Label", "", "mcpStream"),
        ("cs2", "mcpStream", event["stream"]),
        ("cn1Label", "", "mcpSeq"),
        ("cn1", "mcpSeq", event["seq"]),
        ("cs3Label", "", "mcpServer"),
        ("cs3", "mcpServer", server.get("name")),
        ("cs4Label", "", "traceId"),
        ("cs4", "traceId", event.get("trace_id")),
        ("cs5Label", "", "mcpKind"),
        ("cs5", "mcpKind", event["kind"]),
    ]
    present = {cef for cef, _, value in fields if value is not None and not cef.endswith("Label")}
    return [
        (cef, leef, value)
        for cef, leef, value in fields
        if value is not None and (not cef.endswith("Label") or cef[:-5] in present)
    ]


def to_cef(event: Event) -> bytes:
    """ArcSight CEF 0 (header fields escaped for `|` and `\\`, extension values for `=`, `\\`
    and line breaks)."""
    header = "|".join(
        [
            "CEF:0",
            PRODUCT,
            PRODUCT,
            __version__,
            _cef_header(f"{event['kind']}:{action(event)}"),
            _cef_header(action(event)),
            str(severity(event)),
        ]
    )
    extension = " ".join(f"{key}={_cef_value(value)}" for key, _, value in _flat(event))
    return f"{header}|{extension}".encode()


def to_leef(event: Event) -> bytes:
    """IBM QRadar LEEF 2.0, tab-delimited attributes."""
    header = "|".join(["LEEF:2.0", PRODUCT, PRODUCT, __version__, _cef_header(action(event)), ""])
    attributes = [f"{leef}={_leef_value(value)}" for _, leef, value in _flat(event) if leef] + [
        f"sev={severity(event)}"
    ]
    return (header + "\t".join(attributes)).encode()


def _leef_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text.replace("\t", " ").replace("\n", " ").replace("\r", " ")


# -- RFC 5424 syslog ------------------------------------------------------------------------------

SYSLOG_FACILITY = 13  # "log audit" (RFC 5424 table 1)


def _sd_value(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_severity(event: Event) -> int:
    """RFC 5424 severity: 2 critical, 4 warning, 5 notice, 6 informational."""
    sev = severity(event)
    return 2 if sev >= 10 else 4 if sev >= 5 else 5 if sev >= 4 else 6


def to_syslog(event: Event, hostname: str = "-") -> bytes:
    """One RFC 5424 message: the stored JSON as MSG (UTF-8, with BOM), ids in structured
    data so a collector can dedupe and find gaps without parsing MSG."""
    pri = SYSLOG_FACILITY * 8 + syslog_severity(event)
    msgid = "".join(c for c in event["kind"] if 33 <= ord(c) <= 126)[:32] or "-"
    sd = (
        f'[mcpNotary@{SD_ENTERPRISE} eventId="{_sd_value(event["event_id"])}" '
        f'stream="{_sd_value(event["stream"])}" seq="{event["seq"]}" '
        f'action="{_sd_value(action(event))}"]'
    )
    host = "".join(c for c in hostname if 33 <= ord(c) <= 126)[:255] or "-"
    head = f"<{pri}>1 {event['timestamp']} {host} {PRODUCT} - {msgid} {sd} "
    return head.encode() + b"\xef\xbb\xbf" + _json(event)


# -- Splunk HEC -----------------------------------------------------------------------------------


def hec_record(
    event: Event, *, host: str | None = None, index: str | None = None
) -> dict[str, Any]:
    """One event object of the HEC `/services/collector/event` endpoint."""
    record: dict[str, Any] = {
        "time": epoch_ms(event["timestamp"]) / 1000,
        "source": PRODUCT,
        "sourcetype": "mcp:notary:audit",
        "event": event,
        "fields": {"event_id": event["event_id"], "mcp_stream": event["stream"]},
    }
    if host:
        record["host"] = host
    if index:
        record["index"] = index
    return record


def to_hec(event: Event) -> bytes:
    return _json(hec_record(event))


FORMATS: dict[str, Formatter] = {
    "jsonl": to_jsonl,
    "ocsf": to_ocsf,
    "ecs": to_ecs,
    "cef": to_cef,
    "leef": to_leef,
    "syslog": to_syslog,
    "splunk-hec": to_hec,
    "elastic": to_ecs,  # ECS documents, sent with `_bulk` by the elastic sink
}


def _to_otlp(event: Event) -> bytes:
    from mcp_notary.export.otlp import to_otlp  # otlp imports this module

    return to_otlp(event)


FORMATS["otlp"] = _to_otlp  # OTel log records (as JSON), sent over OTLP/HTTP by the otlp sink


def formatter(name: str) -> Formatter:
    from mcp_notary.errors import ConfigError

    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"unknown export format {name!r}: one of {', '.join(FORMATS)}") from None
