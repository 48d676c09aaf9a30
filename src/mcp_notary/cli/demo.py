"""`mcp-notary demo`: the whole loop in one command, on real parts.

Starts the real `mcp-server-time` behind `wrap`, drives calls through it with the official MCP
Python client in both protocol eras, then prints the audit trail and the verify result.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click
from rich.console import Console

from mcp_notary.errors import ConfigError


def _server_command() -> str:
    found = shutil.which("mcp-server-time") or str(Path(sys.executable).parent / "mcp-server-time")
    if not Path(found).exists():
        raise ConfigError("mcp-server-time is not installed: pip install mcp-server-time")
    return found


async def _drive(store: str, console: Console) -> None:
    from mcp import Client, StdioServerParameters

    env = {**os.environ, "MCP_NOTARY_STORE": store}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_notary", "wrap", "--server-name", "time", "--", _server_command()],
        env=env,
    )
    for mode in ("legacy", "2026-07-28"):
        async with Client(params, mode=mode) as client:
            console.print(f"[bold]client connected[/] (protocol era: {mode})")
            tools = await client.list_tools()
            console.print(f"  tools/list -> {[t.name for t in tools.tools]}")
            result = await client.call_tool("get_current_time", {"timezone": "Europe/Paris"})
            console.print(f"  get_current_time(Europe/Paris) -> isError={result.is_error}")
            result = await client.call_tool(
                "convert_time",
                {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
            )
            console.print(f"  convert_time(12:00 UTC -> Asia/Tokyo) -> isError={result.is_error}")
            result = await client.call_tool("get_current_time", {"timezone": "Mars/Olympus"})
            console.print(f"  get_current_time(Mars/Olympus) -> isError={result.is_error}")


@click.command()
@click.option(
    "--store",
    default=None,
    metavar="PATH",
    help="Where to keep the demo trail (default: a new temporary directory).",
)
def demo(store: str | None) -> None:
    """Audit a real MCP server end to end and show the trail."""
    console = Console()
    store = store or str(Path(tempfile.mkdtemp(prefix="mcp-notary-demo-")) / "audit.db")
    console.rule("mcp-notary demo")
    console.print(f"audit store: {store}\nserver: mcp-server-time behind `mcp-notary wrap`\n")
    asyncio.run(_drive(store, console))
    me = [sys.executable, "-m", "mcp_notary"]
    console.rule("audit trail: mcp-notary events")
    subprocess.run([*me, "events", "--store", store], check=True)
    console.rule("integrity: mcp-notary verify")
    verified = subprocess.run([*me, "verify", "--store", store], check=False)
    console.print(
        f"\nExplore: mcp-notary events --store {store} --json | "
        f"mcp-notary show EVENT_ID --store {store}"
    )
    sys.exit(verified.returncode)
