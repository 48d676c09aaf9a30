"""The MCP Inspector CLI (npm @modelcontextprotocol/inspector 2.12.0, Node 22) as the client, with
`mcp-notary wrap` as its stdio server command.

The Inspector hands its stdio child only HOME, PATH, SHELL, TERM and what `-e KEY=VALUE` (or the
config file's `env`) adds, so the store is passed with `--store` or `-e MCP_NOTARY_STORE=...`.
The Inspector's option parser swallows the first `--` of the target, so the target is introduced
with its own `--`: `--cli --method M -- mcp-notary wrap --store S -- server...`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from e2e_notary import (
    Notary,
    assert_started_and_stopped,
    assert_well_formed,
    calls,
    single_stream,
)

pytestmark = pytest.mark.timeout(120)

INSPECTOR_CLIENT = {"name": "inspector-cli", "version": "2.12.0"}


def run_inspector(
    inspector_cmd: list[str], notary: Notary, args: list[str], workdir: Path
) -> subprocess.CompletedProcess[bytes]:
    home = workdir / "inspector-home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": notary.env()["PATH"],
        "HOME": str(home),
        "MCP_INSPECTOR_SECRET_STORE": "memory",
    }
    return subprocess.run(
        [*inspector_cmd, "--cli", *args],
        env=env,
        cwd=workdir,
        capture_output=True,
        timeout=60,
        check=False,
    )


def notary_env_flags(notary: Notary, **extra: str) -> list[str]:
    """`-e KEY=VALUE` for the wrap process: the isolated home of the session, plus `extra`."""
    env = notary.env(extra=extra)
    flags: list[str] = []
    for key in (
        "HOME",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "XDG_CACHE_HOME",
        *(["PYTHONPATH"] if "PYTHONPATH" in env else []),
        *extra,
    ):
        flags += ["-e", f"{key}={env[key]}"]
    return flags


def parse_output(proc: subprocess.CompletedProcess[bytes]) -> Any:
    assert proc.returncode == 0, (
        f"inspector exited {proc.returncode}\nstdout: {proc.stdout.decode()[-2000:]}\n"
        f"stderr: {proc.stderr.decode()[-3000:]}"
    )
    return json.loads(proc.stdout)


def test_inspector_tools_list_through_wrap(
    inspector_cmd: list[str], everything_cmd: list[str], notary: Notary, tmp_path: Path
) -> None:
    store = tmp_path / "audit.db"
    proc = run_inspector(
        inspector_cmd,
        notary,
        [
            *notary_env_flags(notary),
            "--method",
            "tools/list",
            "--",
            *notary.wrap_argv(everything_cmd, store=store),
        ],
        tmp_path,
    )
    listed = parse_output(proc)
    assert "echo" in {t["name"] for t in listed["tools"]}
    # the child's stderr passes through wrap (the Inspector prints its server's stderr)
    assert b"Starting default (STDIO) server" in proc.stderr, proc.stderr.decode()[-2000:]

    stream = single_stream(notary.events(store))
    assert_well_formed(stream)
    assert_started_and_stopped(stream)
    initialize = calls(stream, "initialize")
    assert len(initialize) == 1
    # The Inspector numbers from 0: an id of 0 is an id, not a missing one.
    assert initialize[0]["jsonrpc_id"] == 0 and type(initialize[0]["jsonrpc_id"]) is int
    assert initialize[0]["outcome"] == "success"
    listing = calls(stream, "tools/list")
    assert len(listing) == 1 and listing[0]["outcome"] == "success"
    assert listing[0]["direction"] == "client_to_server"
    assert listing[0]["client"] == INSPECTOR_CLIENT
    assert listing[0]["principal"]["source"] == "os"
    assert notary.verify(store).returncode == 0


def test_inspector_tools_call_echo_through_wrap(
    inspector_cmd: list[str], everything_cmd: list[str], notary: Notary, tmp_path: Path
) -> None:
    store = tmp_path / "audit.db"
    proc = run_inspector(
        inspector_cmd,
        notary,
        [
            *notary_env_flags(notary, MCP_NOTARY_STORE=str(store)),
            "--method",
            "tools/call",
            "--tool-name",
            "echo",
            "--tool-arg",
            "message=hi",
            "--",
            *notary.wrap_argv(everything_cmd),
        ],
        tmp_path,
    )
    result = parse_output(proc)
    assert result["content"][0]["text"] == "Echo: hi"

    stream = single_stream(notary.events(store))
    assert_well_formed(stream)
    echo = [e for e in calls(stream, "tools/call") if e["tool"] == "echo"]
    assert len(echo) == 1, calls(stream)
    event = echo[0]
    assert event["outcome"] == "success"
    assert event["client"] == INSPECTOR_CLIENT
    assert event["protocol_version"] == "2025-11-25"
    assert isinstance(event["jsonrpc_id"], int)
    assert event["server"]["name"] == "mcp-servers/everything"
    filtered = notary.events(store, "--tool", "echo")
    assert [e["event_id"] for e in filtered] == [event["event_id"]]
    assert notary.verify(store).returncode == 0


def test_inspector_modern_era_via_config_file(
    inspector_cmd: list[str], time_cmd: list[str], notary: Notary, tmp_path: Path
) -> None:
    """The Inspector's 2026-07-28 client (config `protocolEra: modern`) against the dual-era
    time server: string ids (`server-discover-probe-1`) and per-request `_meta` clientInfo."""
    store = tmp_path / "audit.db"
    argv = notary.wrap_argv(time_cmd, store=store)
    config = {
        "mcpServers": {
            "time-audited": {
                "command": argv[0],
                "args": argv[1:],
                "env": {k: v for k, v in notary.env().items() if k != "PATH"},
                "protocolEra": "modern",
            }
        }
    }
    config_path = tmp_path / "inspector.json"
    config_path.write_text(json.dumps(config))
    proc = run_inspector(
        inspector_cmd,
        notary,
        [
            "--config",
            str(config_path),
            "--server",
            "time-audited",
            "--method",
            "tools/call",
            "--tool-name",
            "get_current_time",
            "--tool-arg",
            "timezone=Etc/UTC",
        ],
        tmp_path,
    )
    result = parse_output(proc)
    assert result["structuredContent"]["timezone"] == "Etc/UTC"

    stream = single_stream(notary.events(store))
    assert_well_formed(stream)
    discover = calls(stream, "server/discover")
    assert len(discover) == 1, calls(stream)
    assert discover[0]["jsonrpc_id"] == "server-discover-probe-1"
    assert discover[0]["protocol_version"] == "2026-07-28"
    call = [e for e in calls(stream, "tools/call") if e["tool"] == "get_current_time"]
    assert len(call) == 1
    assert call[0]["outcome"] == "success"
    assert call[0]["protocol_version"] == "2026-07-28"
    assert call[0]["client"] == INSPECTOR_CLIENT
    assert call[0]["server"]["name"] == "mcp-time"
    assert notary.verify(store).returncode == 0
