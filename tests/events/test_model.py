"""`AuditEvent.body`: the dict that is canonicalised, hashed and stored."""

from __future__ import annotations

import dataclasses
import hashlib

from mcp_notary.events.model import AuditEvent, ClientInfo, Principal, SensitiveField, ServerInfo
from mcp_notary.ledger.canonical import canonical_bytes


def full_event() -> AuditEvent:
    """Every field of the event set, nested objects included."""
    return AuditEvent(
        event_id="0193a0f0-0000-7000-8000-000000000001",
        timestamp="2026-11-25T10:00:00.000001Z",
        kind="call",
        principal=Principal("alice", "user", "token", {"iss": "https://idp.example"}),
        method="tools/call",
        tool="query",
        target="db://jobs",
        arguments={"sql": "select 1", "token": "[REDACTED:secret:1f2e3d4c5b6a]", "n": 3},
        outcome="tool_error",
        response_summary={"is_error": True, "text": 'line "one"\nline two é'},
        sensitive_fields=(
            SensitiveField("/arguments/token", "secret", "key-name", "2"),
            SensitiveField("/response_summary/text", "email", "email"),
        ),
        client=ClientInfo("claude-code", "2.1.0"),
        server=ServerInfo("db", "1.2.0", ["uvx", "mcp-server-db", "--readonly"]),
        transport="http",
        direction="client_to_server",
        protocol_version="2026-07-28",
        jsonrpc_id=0,
        duration_ms=12.5,
        error={"code": -32000, "message": "boom"},
        trace_id="a" * 32,
        parent_event_id="0193a0f0-0000-7000-8000-000000000000",
        details={"request_bytes": 310, "response_bytes": 1024},
    )


def test_nested_to_dict_matches_every_dataclass_field() -> None:
    # The writer builds these by hand (asdict cost more than the rest of `body`); a field
    # added to one of these classes must not silently drop out of the stored body.
    for value in (
        ServerInfo("db", "1.2.0", ["uvx", "db"]),
        ServerInfo(),
        ClientInfo("c", "1"),
        ClientInfo(),
        SensitiveField("/a", "secret", "rule", "3"),
        SensitiveField("/a", "secret", "rule"),
    ):
        assert value.to_dict() == dataclasses.asdict(value)


def test_server_command_is_copied_not_shared() -> None:
    command = ["uvx", "db"]
    body = full_event().body("s", 1)
    assert body["server"]["command"] == ["uvx", "mcp-server-db", "--readonly"]
    info = ServerInfo("db", None, command)
    assert info.to_dict()["command"] is not command


def test_body_canonical_bytes_are_pinned() -> None:
    # The digest of the stored bytes of a fully populated event, as produced before the
    # nested objects were built by hand: stored bytes must never change.
    body = canonical_bytes(full_event().body("host/1/stream", 42))
    assert hashlib.sha256(body).hexdigest() == PINNED
    minimal = AuditEvent(
        "id", "2026-11-25T10:00:00.000000Z", "lifecycle", Principal("u", "user", "os")
    )
    assert hashlib.sha256(canonical_bytes(minimal.body("s", 1))).hexdigest() == PINNED_MINIMAL


PINNED = "00e597ff0c753ee4fa553b91871ab834cf20194c3f8779841644b93f7ade6e1d"
PINNED_MINIMAL = "0f3720ab6dbf2796fd5bcf19d24d561fdf98eaf0fea22614b1c04891cb915ac1"
