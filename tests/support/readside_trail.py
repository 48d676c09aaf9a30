"""Trails for the read-side tests, produced the real way: `mcp-notary wrap` around the real
`mcp-server-time`, driven by a raw JSON-lines client that pipelines its requests (thousands of
calls in seconds, and every one of them a real exchange through the relay)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e_notary import Notary
from e2e_rawclient import RawPipeClient

ZONES = (
    "Europe/London",
    "Europe/Paris",
    "Asia/Tokyo",
    "America/New_York",
    "Australia/Sydney",
    "Africa/Lagos",
    "America/Sao_Paulo",
    "Asia/Kolkata",
)
BAD_ZONES = ("Mars/Olympus_Mons", "Atlantis/Poseidonia")


@dataclass(frozen=True)
class Call:
    """One request the client sent: what a search over the trail must be able to find."""

    id: int
    tool: str
    arguments: dict[str, Any]


def planned_calls(count: int) -> Iterator[Call]:
    """A deterministic mix: current time in many zones, conversions, invalid zones (tool
    errors), and an unknown tool (protocol errors)."""
    for i in range(1, count + 1):
        if i % 50 == 0:
            yield Call(i, "no_such_tool", {"why": f"probe {i}"})
        elif i % 10 == 0:
            yield Call(i, "get_current_time", {"timezone": BAD_ZONES[i % len(BAD_ZONES)]})
        elif i % 3 == 0:
            source, target = ZONES[i % len(ZONES)], ZONES[(i // 3) % len(ZONES)]
            yield Call(
                i,
                "convert_time",
                {"source_timezone": source, "time": f"{i % 24:02d}:{i % 60:02d}",
                 "target_timezone": target},
            )  # fmt: skip
        else:
            yield Call(i, "get_current_time", {"timezone": ZONES[i % len(ZONES)]})


@contextmanager
def live_wrap(
    notary: Notary, time_cmd: list[str], store: Path | None, *, principal: str | None = None
) -> Iterator[RawPipeClient]:
    """A `wrap` process around `mcp-server-time` (on `store`, or the default store if None),
    initialized and yielded while it runs; on exit its stdin is closed and it must exit 0."""
    options = ["--principal", principal] if principal else []
    argv = notary.wrap_argv(time_cmd, store=store, options=options)
    env = notary.env(extra={"PYTHONWARNINGS": "ignore"})
    with RawPipeClient(argv, env, cwd=notary.home) as client:
        client.request(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "readside-trail", "version": "1"},
                },
            },
            timeout=60,
        )
        client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        yield client
        client.close_stdin()
        assert client.wait(60) == 0, bytes(client.stderr[-2000:]).decode(errors="replace")


def run_trail(
    notary: Notary,
    time_cmd: list[str],
    store: Path | None,
    calls: int,
    *,
    principal: str | None = None,
    chunk: int = 500,
) -> list[Call]:
    """Drive `calls` tool calls through one `wrap` process and wait for it to exit cleanly."""
    plan = list(planned_calls(calls))
    with live_wrap(notary, time_cmd, store, principal=principal) as client:
        for start in range(0, len(plan), chunk):
            batch = plan[start : start + chunk]
            data = b"".join(
                json.dumps(
                    {"jsonrpc": "2.0", "id": c.id, "method": "tools/call",
                     "params": {"name": c.tool, "arguments": c.arguments}},
                    separators=(",", ":"),
                ).encode()
                + b"\n"
                for c in batch
            )  # fmt: skip
            client.send_bytes(data)
            # Bounded pipelining: wait for the chunk's last answer before sending more.
            client.response_to(batch[-1].id, timeout=120)
    return plan


def quiet_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "MCP_NOTARY_STORE"}
