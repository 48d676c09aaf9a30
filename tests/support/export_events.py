"""Stored events of every shape the exporters map differently (kinds, outcomes, severities,
methods, awkward characters, a large body), for the export tests that send to real receivers
or validate against a published schema. Built with the unit-test factories and appended as
ordinary ledger rows."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from factories import append, event

from mcp_notary.events.model import AuditEvent, ClientInfo, Principal, ServerInfo, new_event_id
from mcp_notary.ledger.stores import open_store

# A JSON-RPC method is whatever the client sent: this one needs escaping as an RFC 5424
# structured-data value (`"`, `]`, `\`).
AWKWARD_METHOD = 'x/"quoted"]\\back'


def varied_events() -> list[AuditEvent]:
    base = replace(
        event("get_current_time"),
        client=ClientInfo("inspector", "0.17"),
        server=ServerInfo("time", "1.0", ["mcp-server-time"]),
        protocol_version="2025-11-25",
        jsonrpc_id=1,
        duration_ms=3.25,
        arguments={"timezone": "UTC"},
        direction="client_to_server",
        response_summary={"content": 1},
    )

    def variant(**changes: Any) -> AuditEvent:
        return replace(base, event_id=new_event_id(), **changes)

    unknown = Principal("unknown", "unauthenticated", "none")
    no_call: dict[str, Any] = {"method": None, "tool": None, "jsonrpc_id": None, "outcome": None}
    no_call |= {"arguments": None, "response_summary": None, "duration_ms": None}
    return [
        base,
        variant(outcome="tool_error", jsonrpc_id="req-2", response_summary={"isError": True}),
        variant(
            outcome="protocol_error",
            tool="no_such_tool",
            response_summary=None,
            error={"code": -32602, "message": "Unknown tool: no_such_tool"},
        ),
        variant(outcome="denied", transport="http", principal=unknown, response_summary=None),
        variant(
            kind="auth",
            outcome="denied",
            transport="http",
            principal=unknown,
            response_summary=None,
            details={"reason": "expired"},
        ),
        variant(kind="anomaly", **no_call, details={"problem": "not_jsonrpc", "bytes": 17}),
        variant(kind="lifecycle", **no_call, details={"phase": "started"}),
        variant(kind="lifecycle", **no_call, details={"phase": "ended_uncleanly", "last_seq": 3}),
        variant(kind="integrity_alert", **no_call, details={"problem": "chain_break"}),
        variant(method="tools/list", tool=None, arguments=None),
        variant(method="resources/read", tool=None, target="file:///etc/motd", arguments=None),
        variant(method="resources/subscribe", tool=None, target="file:///var/log/app"),
        variant(method="resources/unsubscribe", tool=None, target="file:///var/log/app"),
        variant(
            kind="notification",
            method="notifications/progress",
            tool=None,
            jsonrpc_id=None,
            outcome=None,
            direction="server_to_client",
        ),
        variant(
            trace_id="0af7651916cd43dd8448eb211c80319c",
            parent_event_id=base.event_id,
            outcome="cancelled",
        ),
        variant(method=AWKWARD_METHOD, tool="h\u00e9llo \u2603 [x]"),
        variant(arguments={"blob": "x" * 20_000}),  # more than the 8 KiB of RFC 5425
    ]


def write_varied_store(path: Path, stream: str = "varied") -> list[AuditEvent]:
    events = varied_events()
    store = open_store(str(path))
    try:
        append(store, stream, events)
    finally:
        store.close()
    return events


def stored_bodies(url: str) -> list[dict[str, Any]]:
    """Every stored event, read straight from the store (no read is recorded)."""
    store = open_store(url, readonly=True)
    try:
        return [json.loads(r.body) for s in store.stream_names() for r in store.scan(s)]
    finally:
        store.close()
