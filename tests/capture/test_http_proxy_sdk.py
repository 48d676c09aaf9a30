"""`mcp-notary proxy` in front of a real `MCPServer` (official SDK, Streamable HTTP, SSE and JSON
responses), driven by the official Python client in both protocol eras. The client must get
exactly what it gets directly, and the store must hold the same events the stdio relay would
record, with HTTP facts and without any credential."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from e2e_notary import Notary
from http_events import calls, http, store_bytes, wait_events
from http_procs import Running, free_port, mcpserver_argv, proxy_argv, running
from mcp.client import Client

pytestmark = pytest.mark.timeout(120)

CLIENT_INFO = types.Implementation(name="http-e2e-client", version="4.5.6")
PLAN: list[tuple[str, dict[str, Any]]] = [
    ("echo", {"text": "hello"}),
    ("add", {"a": 2, "b": 40}),
    ("countdown", {"steps": 3}),
    ("fail", {"reason": "because"}),
    ("nope", {}),
]
EXPECTED = ["success", "success", "success", "tool_error", "tool_error"]
VERSION = {"legacy": "2025-11-25", "2026-07-28": "2026-07-28"}


@pytest.fixture(scope="module", params=["sse", "json"])
def upstream(request: pytest.FixtureRequest) -> Iterator[Running]:
    port = free_port()
    options = ["--json-response"] if request.param == "json" else []
    with running(mcpserver_argv(port, *options), port) as server:
        yield server


@pytest.fixture
def proxied(upstream: Running, notary: Notary, tmp_path: Path) -> Iterator[tuple[Running, Path]]:
    store = tmp_path / "audit.db"
    port = free_port()
    with running(proxy_argv(notary.argv, upstream.url, port, store), port) as proxy:
        yield proxy, store


async def _drive(url: str, mode: str) -> tuple[list[dict[str, Any]], list[float]]:
    results: list[dict[str, Any]] = []
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with Client(url, mode=mode, client_info=CLIENT_INFO) as client:
        for name, arguments in PLAN:
            result = await client.call_tool(name, arguments, progress_callback=on_progress)
            body = result.model_dump(by_alias=True, exclude_none=True)
            body.pop("_meta", None)  # serverInfo rides here; the same either way
            results.append(body)
    return results, progress


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_results_identical_and_calls_recorded(
    mode: str, upstream: Running, proxied: tuple[Running, Path], notary: Notary
) -> None:
    proxy, store = proxied
    direct, direct_progress = anyio.run(_drive, upstream.url, mode)
    via, via_progress = anyio.run(_drive, proxy.url, mode)
    assert via == direct
    assert via_progress == direct_progress  # [1, 2, 3] on SSE; JSON responses carry none

    events = wait_events(notary, store, lambda evs: len(calls(evs)) >= len(PLAN))
    tool_calls = calls(events)
    assert [e["tool"] for e in tool_calls] == [name for name, _ in PLAN]
    assert [e["outcome"] for e in tool_calls] == EXPECTED
    for event in tool_calls:
        assert event["transport"] == "http"
        assert event["protocol_version"] == VERSION[mode]
        assert event["client"] == {"name": "http-e2e-client", "version": "4.5.6"}
        assert event["server"]["name"] == "notary-http-test"
        assert event["principal"]["type"] == "unknown"  # no token validation configured
        facts = http(event)
        assert facts["status"] == 200 and facts["method"] == "POST" and facts["path"] == "/mcp"
        assert facts["peer"].startswith("127.0.0.1:")
        assert event["duration_ms"] is not None and event["duration_ms"] >= 0
        # legacy sessions are joined by a digest of the session id; 2026 has no sessions
        assert ("session" in facts) == (mode == "legacy")
        if mode == "2026-07-28":
            assert facts["mcp_method"] == "tools/call" and facts["mcp_name_matches"] is True
    countdown = next(e for e in tool_calls if e["tool"] == "countdown")
    progress = [e for e in events if e["method"] == "notifications/progress"]
    assert len(progress) == len(direct_progress)
    assert {e["parent_event_id"] for e in progress} <= {countdown["event_id"]}
    if mode == "legacy":
        sessions = {http(e)["session"] for e in tool_calls}
        assert len(sessions) == 1
        init = calls(events, "initialize")
        assert len(init) == 1 and init[0]["outcome"] == "success"


def test_credentials_and_session_ids_never_stored(
    proxied: tuple[Running, Path], notary: Notary
) -> None:
    """Authorization, Cookie, Mcp-Param-* values and the legacy session id pass through to the
    upstream but never reach the store (only their names or a digest)."""
    proxy, store = proxied
    secrets = {
        "authorization": "Bearer tok-SECRET-aaaa1111",
        "cookie": "sid=COOKIE-SECRET-bbbb2222",
        "mcp-param-region": "PARAM-SECRET-cccc3333",
    }
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        **secrets,
    }
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }
    with httpx2.Client(timeout=10) as client:
        first = client.post(proxy.url, json=init, headers=headers)
        assert first.status_code == 200
        session = first.headers["mcp-session-id"]
        if first.headers["content-type"].startswith("text/event-stream"):
            assert first.headers.get("x-accel-buffering") == "no"  # upstream headers pass
        assert len(first.headers.get_list("date")) == 1  # the upstream's, not a second one
        follow = {**headers, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert client.post(proxy.url, json=note, headers=follow).status_code == 202
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}
        call["params"] = {"name": "echo", "arguments": {"text": "hi"}}
        assert client.post(proxy.url, json=call, headers=follow).status_code == 200
        gone = client.delete(proxy.url, headers=follow)
        assert gone.status_code in (200, 204)
        after = client.post(proxy.url, json=call, headers=follow)
        assert after.status_code == 404  # the session really ended upstream

    events = wait_events(notary, store, lambda evs: len(calls(evs)) >= 2)
    echo = calls(events)[0]
    facts = http(echo)
    assert facts["auth_scheme"] == "bearer" and facts["cookies_sent"] is True
    assert facts["param_headers"] == ["mcp-param-region"]
    assert facts["session"].startswith("sha256:")
    stored = store_bytes(store)
    for value in [*secrets.values(), session]:
        for piece in value.split():
            assert piece.encode() not in stored or piece == "Bearer", piece
    init_event = calls(events, "initialize")[0]
    assert init_event["jsonrpc_id"] == 0  # id 0 is an id, not "absent"
