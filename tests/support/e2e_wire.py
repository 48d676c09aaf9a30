"""An independent oracle for what `wrap` should have recorded: parse the bytes that actually
crossed the pipe (captured with `tee`) and pair requests with responses ourselves."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

CLIENT_TO_SERVER = "client_to_server"
SERVER_TO_CLIENT = "server_to_client"


def parse_lines(data: bytes) -> list[Any]:
    """JSON-RPC messages of a JSON-lines byte stream (unparseable lines are skipped)."""
    messages = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            messages.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
    return messages


@dataclass
class Exchange:
    """One request and its response, as seen on the wire."""

    direction: str  # of the request
    id: Any
    method: str
    params: Any
    response: dict[str, Any] | None

    @property
    def tool(self) -> str | None:
        if self.method == "tools/call" and isinstance(self.params, dict):
            return self.params.get("name")
        return None

    @property
    def expected_outcome(self) -> str:
        if self.response is None:
            return "transport_error"
        if "error" in self.response:
            return "protocol_error"
        result = self.response.get("result")
        if isinstance(result, dict):
            if result.get("isError") is True:
                return "tool_error"
            if result.get("resultType") == "input_required":
                return "input_required"
            if result.get("resultType") == "task":
                return "task"
        return "success"

    @property
    def error_code(self) -> int | None:
        if self.response and isinstance(self.response.get("error"), dict):
            return self.response["error"].get("code")
        return None


def _key(message_id: Any) -> tuple[str, Any]:
    # 1 and "1" are different JSON-RPC ids; so are 0 and false.
    return (type(message_id).__name__, message_id)


def exchanges(client_bytes: bytes, server_bytes: bytes) -> list[Exchange]:
    """All requests in both directions with their responses, in request order per direction
    (client requests first)."""
    sent = parse_lines(client_bytes)
    received = parse_lines(server_bytes)
    result: list[Exchange] = []
    for direction, requests, replies in (
        (CLIENT_TO_SERVER, sent, received),
        (SERVER_TO_CLIENT, received, sent),
    ):
        responses: dict[tuple[str, Any], list[dict[str, Any]]] = {}
        for msg in replies:
            if isinstance(msg, dict) and "method" not in msg and "id" in msg:
                responses.setdefault(_key(msg["id"]), []).append(msg)
        for msg in requests:
            if isinstance(msg, dict) and "method" in msg and "id" in msg:
                queue = responses.get(_key(msg["id"])) or []
                result.append(
                    Exchange(
                        direction=direction,
                        id=msg["id"],
                        method=msg["method"],
                        params=msg.get("params"),
                        response=queue.pop(0) if queue else None,
                    )
                )
    return result


def notifications(data: bytes) -> list[dict[str, Any]]:
    return [m for m in parse_lines(data) if isinstance(m, dict) and "method" in m and "id" not in m]


def same_id(a: Any, b: Any) -> bool:
    """JSON-RPC id equality that keeps the type (1 != "1", 0 != False)."""
    return type(a) is type(b) and a == b
