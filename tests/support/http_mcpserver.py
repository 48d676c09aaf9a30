"""A small real `MCPServer` (the official SDK) served over Streamable HTTP, for the proxy tests.

Run: `python tests/support/http_mcpserver.py --port N [--json-response] [--stateless]`. The SDK
serves both protocol eras on one endpoint: a legacy client gets `initialize` and a session, a
2026-07-28 client gets stateless requests with per-request `_meta`.
"""

from __future__ import annotations

import argparse
import asyncio

from mcp.server.mcpserver import Context, MCPServer

mcp = MCPServer("notary-http-test", instructions="test server for mcp-notary")


@mcp.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@mcp.tool()
def fail(reason: str) -> str:
    """Always fails (a tool error, not a protocol error)."""
    raise ValueError(f"failed on purpose: {reason}")


@mcp.tool()
async def countdown(steps: int, ctx: Context) -> str:
    """Reports progress `steps` times, 50 ms apart, then answers (an SSE stream with
    notifications before the response)."""
    for step in range(steps):
        await ctx.report_progress(step + 1, steps, f"step {step + 1}")
        await asyncio.sleep(0.05)
    return f"done after {steps}"


@mcp.tool()
async def sleepy(seconds: float) -> str:
    """Sleeps, so a client can go away mid-call."""
    await asyncio.sleep(seconds)
    return "woke up"


@mcp.tool()
def seen_authorization(ctx: Context) -> str:
    """The Authorization header this server received (to check what the proxy forwards)."""
    headers = ctx.headers or {}
    return headers.get("authorization", "<none>")


@mcp.tool()
def blob(size: int) -> str:
    """A large text result (for bounded-memory checks)."""
    return "x" * size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--json-response", action="store_true")
    parser.add_argument("--stateless", action="store_true")
    args = parser.parse_args()
    mcp.run(
        transport="streamable-http",
        host="127.0.0.1",
        port=args.port,
        json_response=args.json_response,
        stateless_http=args.stateless,
    )


if __name__ == "__main__":
    main()
