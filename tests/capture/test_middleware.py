"""In-process audit: `mcp_notary.install(server)` on a real `MCPServer` (official SDK) and a real
FastMCP server, driven by their own clients in memory. Same events and outcomes as the relay and
the proxy, principal from the SDK's authenticated access token, and the `capture_events` helper
for embedders' tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer

import mcp_notary
from mcp_notary.capture.middleware import SDKAuditMiddleware, principal_from_access_token
from mcp_notary.ledger.stores import open_store
from mcp_notary.testing import capture_events

pytestmark = pytest.mark.timeout(60)


def make_server() -> MCPServer:
    server = MCPServer("embedded-test")

    @server.tool()
    def echo(text: str) -> str:
        return text

    @server.tool()
    def explode(reason: str) -> str:
        raise ValueError(reason)

    @server.tool()
    def login(user: str, password: str) -> str:
        return f"hello {user}"

    return server


def stored(path: Path) -> list[dict[str, Any]]:
    store = open_store(str(path), readonly=True)
    try:
        return [json.loads(row.body) for info in store.streams() for row in store.scan(info.stream)]
    finally:
        store.close()


async def drive(server: Any, mode: str) -> list[Any]:
    async with Client(server, mode=mode) as client:
        return [
            await client.call_tool("echo", {"text": "hi"}),
            await client.call_tool("explode", {"reason": "boom"}),
            await client.call_tool("login", {"user": "ann", "password": "hunter2-SECRET"}),
        ]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_install_on_mcpserver_records_calls(mode: str, tmp_path: Path) -> None:
    server = make_server()
    store = tmp_path / "audit.db"
    middleware = mcp_notary.install(server, store=str(store))
    assert isinstance(middleware, SDKAuditMiddleware)
    assert server.middleware[-1] is middleware
    results = anyio.run(drive, server, mode)
    assert results[0].content[0].text == "hi" and results[1].is_error
    middleware.sink.close("test_done")  # flush the group commit
    events = stored(store)
    tool_calls = [e for e in events if e["kind"] == "call" and e["method"] == "tools/call"]
    assert [(e["tool"], e["outcome"]) for e in tool_calls] == [
        ("echo", "success"),
        ("explode", "tool_error"),
        ("login", "success"),
    ]
    for event in tool_calls:
        assert event["transport"] == "inprocess"
        assert event["principal"]["source"] == "os"  # no token: the process owner
        assert event["server"]["name"] == "embedded-test"
        assert event["duration_ms"] is not None
    assert b"hunter2-SECRET" not in store.read_bytes()
    kinds = {e["kind"] for e in events}
    assert {"lifecycle", "call"} <= kinds


def test_principal_from_sdk_access_token() -> None:
    """With an authenticated request (the SDK's auth context set by its auth middleware), the
    event's principal is the token's `iss#sub`, not the process owner."""
    server = make_server()
    token = AccessToken(
        token="opaque-never-stored",
        client_id="cli-1",
        scopes=["mcp:tools"],
        subject="bob",
        claims={"iss": "https://issuer.test", "act": {"sub": "agent"}},
        resource="https://mcp.test/mcp",
    )

    async def main() -> list[dict[str, Any]]:
        with capture_events() as events:
            reset = auth_context_var.set(AuthenticatedUser(token))
            try:
                async with Client(server, mode="legacy") as client:
                    await client.call_tool("echo", {"text": "x"})
            finally:
                auth_context_var.reset(reset)
        return events

    server.middleware.append(SDKAuditMiddleware(_NullSink()))
    events = anyio.run(main)
    call = next(e for e in events if e["method"] == "tools/call")
    assert call["principal"] == {
        "id": "https://issuer.test#bob",
        "type": "user",
        "source": "token",
        "details": {
            "client_id": "cli-1",
            "scopes": ["mcp:tools"],
            "act": {"sub": "agent"},
            "aud": "https://mcp.test/mcp",
        },
    }
    assert "opaque-never-stored" not in json.dumps(events)
    service = principal_from_access_token(
        AccessToken(token="t", client_id="svc", scopes=[], subject="svc")
    )
    assert service is not None and service.type == "service"


def test_capture_events_helper_sees_redacted_events() -> None:
    server = make_server()
    server.middleware.append(SDKAuditMiddleware(_NullSink()))
    with capture_events(server_name="embedded-test") as events:
        anyio.run(drive, server, "2026-07-28")
    calls = [e for e in events if e["method"] == "tools/call"]
    assert [e["outcome"] for e in calls] == ["success", "tool_error", "success"]
    assert "hunter2-SECRET" not in json.dumps(events)
    assert calls[2]["sensitive_fields"], "the password argument is reported as removed"
    with capture_events() as later:
        pass
    assert later == []  # a capture ends with its block


def test_install_on_fastmcp(tmp_path: Path) -> None:
    fastmcp = pytest.importorskip("fastmcp")
    server = fastmcp.FastMCP("fast-embedded")

    @server.tool
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool
    def refuse(reason: str) -> str:
        raise fastmcp.exceptions.ToolError(reason)

    store = tmp_path / "audit.db"
    middleware = mcp_notary.install(server, store=str(store))
    assert middleware in server.middleware

    async def main() -> list[Any]:
        async with fastmcp.Client(server) as client:
            ok = await client.call_tool("add", {"a": 1, "b": 2})
            bad = await client.call_tool("refuse", {"reason": "no"}, raise_on_error=False)
            return [ok, bad]

    ok, bad = anyio.run(main)
    assert ok.data == 3 and bad.is_error
    middleware.sink.close("test_done")
    events = stored(store)
    tool_calls = [e for e in events if e["method"] == "tools/call"]
    assert [(e["tool"], e["outcome"]) for e in tool_calls] == [
        ("add", "success"),
        ("refuse", "tool_error"),
    ]
    assert all(e["transport"] == "inprocess" for e in tool_calls)
    assert any(e["method"] == "tools/list" for e in events) or len(tool_calls) == 2


def test_install_rejects_unknown_servers() -> None:
    with pytest.raises(TypeError, match="cannot install"):
        mcp_notary.install(object(), recorder=_NullSink())


class _NullSink:
    def record(self, exchange: Any, session: Any, **_: Any) -> None:
        return None

    def record_event(self, kind: Any, details: Any, **_: Any) -> None:
        return None
