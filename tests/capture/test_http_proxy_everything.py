"""`mcp-notary proxy` in front of npm `@modelcontextprotocol/server-everything` (TS SDK, legacy
era) in `streamableHttp` and in the deprecated HTTP+SSE (`sse`) mode, driven by the official
Python client and by the MCP Inspector CLI (`--transport http` / `sse`)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from e2e_notary import Notary
from http_events import calls, http, wait_events
from http_procs import Running, free_port, proxy_argv, running
from mcp.client import Client
from mcp.client.sse import sse_client

pytestmark = pytest.mark.timeout(150)
PATHS = {"streamableHttp": "/mcp", "sse": "/sse"}


@pytest.fixture(scope="module", params=["streamableHttp", "sse"])
def everything_http(request: pytest.FixtureRequest, everything_cmd: list[str]) -> Iterator[Running]:
    port = free_port()
    mode = request.param
    with running([*everything_cmd, mode], port, path=PATHS[mode], env={"PORT": str(port)}) as srv:
        yield srv


@pytest.fixture
def proxied(
    everything_http: Running, notary: Notary, tmp_path: Path
) -> Iterator[tuple[Running, Path]]:
    store = tmp_path / "audit.db"
    port = free_port()
    with running(
        proxy_argv(notary.argv, everything_http.url, port, store), port, path=everything_http.path
    ) as proxy:
        yield proxy, store


async def _python_client(url: str, sse: bool) -> list[Any]:
    server: Any = sse_client(url) if sse else url
    async with Client(server, mode="legacy") as client:
        echo = await client.call_tool("echo", {"message": "über proxy"})
        total = await client.call_tool("get-sum", {"a": 20, "b": 22})
        env = await client.call_tool("get-env", {})
        return [echo.content[0].text, total.content[0].text, env.content[0].text]  # type: ignore[union-attr]


def test_python_client_through_proxy(
    everything_http: Running, proxied: tuple[Running, Path], notary: Notary
) -> None:
    proxy, store = proxied
    sse = everything_http.path == "/sse"
    direct = anyio.run(_python_client, everything_http.url, sse)
    via = anyio.run(_python_client, proxy.url, sse)
    assert via[:2] == direct[:2]
    assert "über proxy" in via[0] and "42" in via[1]
    events = wait_events(notary, store, lambda evs: len(calls(evs)) >= 3)
    tool_calls = calls(events)
    assert [e["tool"] for e in tool_calls] == ["echo", "get-sum", "get-env"]
    assert all(e["outcome"] == "success" for e in tool_calls)
    assert all(e["protocol_version"] for e in tool_calls)
    assert {e["server"]["name"] for e in tool_calls} == {"mcp-servers/everything"}
    init = calls(events, "initialize")
    assert len(init) == 1 and init[0]["outcome"] == "success"
    if sse:
        # the POST endpoint the SSE stream announced carries the session in its query: only
        # the parameter's name is kept
        posts = [http(e) for e in tool_calls]
        assert all(p["path"].startswith("/message") for p in posts)
        assert all(p["query_keys"] == ["sessionId"] for p in posts)


def test_inspector_cli_through_proxy(
    everything_http: Running,
    proxied: tuple[Running, Path],
    inspector_cmd: list[str],
    notary: Notary,
    tmp_path: Path,
) -> None:
    proxy, store = proxied
    transport = "sse" if everything_http.path == "/sse" else "http"
    home = tmp_path / "inspector-home"
    home.mkdir()
    env = {"PATH": notary.env()["PATH"], "HOME": str(home), "MCP_INSPECTOR_SECRET_STORE": "memory"}
    proc = subprocess.run(
        [*inspector_cmd, "--cli", proxy.url, "--transport", transport,
         "--method", "tools/call", "--tool-name", "get-sum",
         "--tool-arg", "a=1", "--tool-arg", "b=2", "--format", "json"],
        env=env, cwd=tmp_path, capture_output=True, timeout=90, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    output = json.loads(proc.stdout)
    assert "3" in json.dumps(output)
    events = wait_events(notary, store, lambda evs: len(calls(evs)) >= 1)
    call = calls(events)[0]
    assert call["tool"] == "get-sum" and call["outcome"] == "success"
    assert call["client"]["name"] == "inspector-cli"
