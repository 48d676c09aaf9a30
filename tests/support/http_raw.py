"""Hand-made 2026-07-28 requests (stateless: one POST is one call), for tests that need to
control every header, such as a bad token or a malformed body."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx2

VERSION = "2026-07-28"


def call_body(tool: str, arguments: dict[str, Any], request_id: int | str = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": tool,
            "arguments": arguments,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": VERSION,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "0"},
            },
        },
    }


def call_headers(tool: str, token: str | None = None) -> dict[str, str]:
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": VERSION,
        "mcp-method": "tools/call",
        "mcp-name": tool,
    }
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


@dataclass
class Reply:
    status: int
    headers: httpx2.Headers
    body: bytes

    def message(self) -> dict[str, Any] | None:
        """The JSON-RPC answer, from a JSON body or the last SSE `data:` line."""
        text = self.body.decode(errors="replace")
        if self.headers.get("content-type", "").startswith("text/event-stream"):
            data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
            data = [d for d in data if d]
            return json.loads(data[-1]) if data else None
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def text(self) -> str | None:
        message = self.message() or {}
        result = message.get("result") or {}
        content = result.get("content") or [{}]
        return content[0].get("text")


def post_call(
    url: str,
    tool: str,
    arguments: dict[str, Any],
    *,
    token: str | None = None,
    timeout: float = 15.0,
) -> Reply:
    response = httpx2.post(
        url,
        content=json.dumps(call_body(tool, arguments)).encode(),
        headers=call_headers(tool, token),
        timeout=timeout,
        trust_env=False,
    )
    return Reply(response.status_code, response.headers, response.content)
