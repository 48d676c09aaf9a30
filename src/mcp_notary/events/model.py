"""AuditEvent schema v1 and the draft it is built from.

A capture path produces an `EventDraft`, which still holds raw payloads. Only the redaction stage
turns a draft into an `AuditEvent`, and only an `AuditEvent` can be appended to the ledger, so a raw
payload has no typed path to storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mcp_notary.identity.principal import Principal
from mcp_notary.ids import new_event_id, utc_timestamp
from mcp_notary.vocabulary import Direction, Kind, Outcome

__all__ = [
    "KINDS",
    "OUTCOMES",
    "SCHEMA_VERSION",
    "AuditEvent",
    "ClientInfo",
    "Direction",
    "EventDraft",
    "Kind",
    "Outcome",
    "Principal",
    "SensitiveField",
    "ServerInfo",
    "new_event_id",
    "payload_free_event",
    "utc_timestamp",
]

SCHEMA_VERSION = "1"

OUTCOMES: tuple[str, ...] = Outcome.__args__  # type: ignore[attr-defined]
KINDS: tuple[str, ...] = Kind.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ServerInfo:
    name: str | None = None
    version: str | None = None
    command: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        # Written out rather than `dataclasses.asdict`, which recurses and deep-copies and
        # cost more than the rest of `AuditEvent.body` together (the writer builds a body per
        # event).
        command = list(self.command) if self.command is not None else None
        return {"name": self.name, "version": self.version, "command": command}


@dataclass(frozen=True)
class ClientInfo:
    name: str | None = None
    version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class SensitiveField:
    """One redaction: where, what kind, which rule. Never the value."""

    pointer: str
    kind: str
    rule: str
    rule_version: str = "1"

    def to_dict(self) -> dict[str, str]:
        return {
            "pointer": self.pointer,
            "kind": self.kind,
            "rule": self.rule,
            "rule_version": self.rule_version,
        }


@dataclass
class EventDraft:
    """Everything the capture stage knows about one event, raw payloads included.

    Never stored: redaction turns it into an `AuditEvent`."""

    kind: Kind
    timestamp: str
    event_id: str = field(default_factory=new_event_id)
    method: str | None = None
    tool: str | None = None
    target: str | None = None
    principal: Principal = field(default_factory=lambda: Principal("unknown", "unknown", "none"))
    client: ClientInfo | None = None
    server: ServerInfo | None = None
    transport: str = "stdio"
    direction: Direction | None = None
    protocol_version: str | None = None
    jsonrpc_id: str | int | None = None
    outcome: Outcome | None = None
    duration_ms: float | None = None
    error_code: int | None = None
    trace_id: str | None = None
    parent_event_id: str | None = None
    # Raw material, for the redaction stage only.
    raw_params: Any = None
    raw_result: Any = None
    raw_error_message: str | None = None
    raw_error_data: Any = None
    # Facts about the exchange that carry no payload (sizes, anomaly reasons, lifecycle data).
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class AuditEvent:
    """Schema v1. `stream` and `seq` are assigned by the ledger at append time."""

    event_id: str
    timestamp: str
    kind: Kind
    principal: Principal
    method: str | None = None
    tool: str | None = None
    target: str | None = None
    arguments: Any = None
    outcome: Outcome | None = None
    response_summary: Any = None
    sensitive_fields: tuple[SensitiveField, ...] = ()
    client: ClientInfo | None = None
    server: ServerInfo | None = None
    transport: str = "stdio"
    direction: Direction | None = None
    protocol_version: str | None = None
    jsonrpc_id: str | int | None = None
    duration_ms: float | None = None
    error: dict[str, Any] | None = None
    trace_id: str | None = None
    parent_event_id: str | None = None
    details: dict[str, Any] | None = None

    def body(self, stream: str, seq: int) -> dict[str, Any]:
        """The JSON object that is canonicalised, hashed and stored."""
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": self.event_id,
            "stream": stream,
            "seq": seq,
            "timestamp": self.timestamp,
            "kind": self.kind,
            "method": self.method,
            "tool": self.tool,
            "target": self.target,
            "principal": self.principal.to_dict(),
            "client": self.client.to_dict() if self.client else None,
            "server": self.server.to_dict() if self.server else None,
            "transport": self.transport,
            "direction": self.direction,
            "protocol_version": self.protocol_version,
            "jsonrpc_id": self.jsonrpc_id,
            "arguments": self.arguments,
            "outcome": self.outcome,
            "response_summary": self.response_summary,
            "sensitive_fields": [f.to_dict() for f in self.sensitive_fields],
            "duration_ms": self.duration_ms,
            "error": self.error,
            "trace_id": self.trace_id,
            "parent_event_id": self.parent_event_id,
            "details": self.details,
        }


def payload_free_event(draft: EventDraft) -> AuditEvent:
    """An event carrying only the draft's metadata (for kinds that have no payload, such as
    lifecycle records). Raises if the draft holds raw payload, so nothing slips through."""
    if any(
        v is not None
        for v in (draft.raw_params, draft.raw_result, draft.raw_error_message, draft.raw_error_data)
    ):
        raise ValueError("draft carries raw payload; it must go through redaction")
    return AuditEvent(
        event_id=draft.event_id,
        timestamp=draft.timestamp,
        kind=draft.kind,
        principal=draft.principal,
        method=draft.method,
        tool=draft.tool,
        target=draft.target,
        outcome=draft.outcome,
        client=draft.client,
        server=draft.server,
        transport=draft.transport,
        direction=draft.direction,
        protocol_version=draft.protocol_version,
        jsonrpc_id=draft.jsonrpc_id,
        duration_ms=draft.duration_ms,
        error={"code": draft.error_code, "message": None} if draft.error_code is not None else None,
        trace_id=draft.trace_id,
        parent_event_id=draft.parent_event_id,
        details=draft.details,
    )
