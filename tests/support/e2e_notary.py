"""Helpers for the end-to-end suite: run the real `mcp-notary` CLI, read its store, build the
commands and environments that put `wrap` between a real client and a real server.

Nothing here imports `mcp_notary`: the e2e suite tests the installed command, as a client
configuration would launch it.
"""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
import string
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp.client.stdio import StdioServerParameters

VENV_BIN = Path(sys.executable).parent

EVENT_FIELDS = (
    "schema_version",
    "event_id",
    "stream",
    "seq",
    "timestamp",
    "kind",
    "method",
    "tool",
    "target",
    "principal",
    "client",
    "server",
    "transport",
    "direction",
    "protocol_version",
    "jsonrpc_id",
    "arguments",
    "outcome",
    "response_summary",
    "sensitive_fields",
    "duration_ms",
    "error",
    "trace_id",
    "parent_event_id",
    "details",
)
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
UUID7_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def notary_argv() -> list[str]:
    """The installed console script, as an MCP client configuration would name it."""
    script = VENV_BIN / "mcp-notary"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "mcp_notary"]


def module_argv() -> list[str]:
    """The `python -m mcp_notary` form of the same command."""
    return [sys.executable, "-m", "mcp_notary"]


@dataclass
class Notary:
    """Runs `mcp-notary` subcommands in an isolated home directory."""

    home: Path
    argv: list[str] = field(default_factory=notary_argv)

    # -- environments -------------------------------------------------------------------------
    def env(self, store: Path | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
        """A complete environment (no inheritance beyond PATH): the SDK's stdio client and
        the Inspector both hand their children an allow-listed environment, so be explicit."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
        }
        if os.environ.get("PYTHONPATH"):  # run the same code the test runner was pointed at
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        if store is not None:
            env["MCP_NOTARY_STORE"] = str(store)
        if extra:
            env.update(extra)
        return env

    # -- wrap ------------------------------------------------------------------------------------
    def wrap_argv(
        self,
        server_cmd: Sequence[str],
        *,
        store: Path | None = None,
        options: Sequence[str] = (),
        argv: Sequence[str] | None = None,
    ) -> list[str]:
        """`mcp-notary wrap [--store S] [options] -- server_cmd...`."""
        cmd = [*(argv or self.argv), "wrap"]
        if store is not None:
            cmd += ["--store", str(store)]
        cmd += [*options, "--", *server_cmd]
        return cmd

    def wrap_params(
        self,
        server_cmd: Sequence[str],
        store: Path,
        *,
        options: Sequence[str] = (),
        extra_env: dict[str, str] | None = None,
        store_via: str = "env",
        cwd: Path | None = None,
    ) -> StdioServerParameters:
        """`StdioServerParameters` that launch `wrap` around `server_cmd`; the store is passed
        through MCP_NOTARY_STORE (`store_via="env"`) or `--store` (`store_via="flag"`)."""
        argv = self.wrap_argv(
            server_cmd, store=store if store_via == "flag" else None, options=options
        )
        env = self.env(store if store_via == "env" else None, extra_env)
        return StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=cwd or self.home)

    # -- read side -------------------------------------------------------------------------------
    def run(
        self, *args: str, store: Path | None = None, timeout: float = 60, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        cmd = [*self.argv, *args]
        if store is not None:
            cmd += ["--store", str(store)]
        return subprocess.run(
            cmd,
            env=self.env(),
            cwd=self.home,
            capture_output=True,
            timeout=timeout,
            input=input,
            check=False,
        )

    def events_raw(self, store: Path, *filters: str) -> subprocess.CompletedProcess[bytes]:
        return self.run("events", "--json", *filters, store=store)

    def events(self, store: Path, *filters: str) -> list[dict[str, Any]]:
        """`mcp-notary events --json` parsed: one JSON object per line, oldest first."""
        proc = self.events_raw(store, *filters)
        assert proc.returncode == 0, (
            f"`mcp-notary events --json {' '.join(filters)}` exited {proc.returncode}\n"
            f"stderr: {proc.stderr.decode(errors='replace')[-3000:]}"
        )
        events = []
        for number, line in enumerate(proc.stdout.splitlines(), 1):
            if not line.strip():
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as exc:  # pragma: no cover - failure path
                raise AssertionError(
                    f"events --json line {number} is not JSON: {line[:300]!r}"
                ) from exc
        return events

    def verify(self, store: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
        return self.run("verify", *args, store=store)


# -- fake credentials (random per run, shaped like the real thing) ------------------------------
def fake_aws_key_id() -> str:
    return "AKIA" + "".join(random.choices(string.ascii_uppercase + "234567", k=16))


def fake_aws_secret() -> str:
    return "".join(random.choices(string.ascii_letters + string.digits + "/+", k=40))


# -- event helpers -------------------------------------------------------------------------------
def wrap_events(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events written by wrap processes (drops audit-of-audit records of our own reads)."""
    return [e for e in events if e.get("kind") not in ("audit_access",)]


def by_stream(events: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    streams: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        streams[event["stream"]].append(event)
    return {name: sorted(evs, key=lambda e: e["seq"]) for name, evs in streams.items()}


def single_stream(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events of the one wrap stream in a store that saw one wrap process."""
    streams = by_stream(wrap_events(events))
    assert len(streams) == 1, f"expected one wrap stream, found {sorted(streams)}"
    return next(iter(streams.values()))


def assert_well_formed(stream_events: Sequence[dict[str, Any]]) -> None:
    """Schema v1 shape, contiguous seq from 1, unique UUIDv7 ids, RFC 3339 UTC timestamps."""
    assert stream_events, "no events"
    seqs = [e["seq"] for e in stream_events]
    assert seqs == list(range(1, len(seqs) + 1)), f"seq not contiguous from 1: {seqs}"
    ids = [e["event_id"] for e in stream_events]
    assert len(set(ids)) == len(ids), "duplicate event_id"
    for event in stream_events:
        missing = [f for f in EVENT_FIELDS if f not in event]
        assert not missing, f"event seq {event['seq']} lacks fields {missing}: {event}"
        assert event["schema_version"] == "1", event
        assert UUID7_RE.match(event["event_id"]), event["event_id"]
        assert TIMESTAMP_RE.match(event["timestamp"]), event["timestamp"]
        assert event["transport"] == "stdio", event


def calls(events: Iterable[dict[str, Any]], method: str | None = None) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "call" and (method is None or e["method"] == method)]


def lifecycle(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "lifecycle"]


def lifecycle_phase(event: dict[str, Any]) -> str:
    """What a lifecycle event says happened ("start", "stop", ...), wherever wrap put it."""
    details = event.get("details") or {}
    for key in ("phase", "event", "action", "state", "type", "lifecycle"):
        value = details.get(key)
        if isinstance(value, str):
            return value
    return str(event.get("method") or event.get("target") or "")


def assert_started_and_stopped(stream_events: Sequence[dict[str, Any]]) -> None:
    life = lifecycle(stream_events)
    assert len(life) >= 2, f"expected lifecycle start and stop, got {life}"
    assert "start" in lifecycle_phase(life[0]).lower(), f"first lifecycle event: {life[0]}"
    assert "stop" in lifecycle_phase(life[-1]).lower(), f"last lifecycle event: {life[-1]}"
    assert stream_events[0] is life[0] or stream_events[0] == life[0], (
        "the first event of a stream should be its lifecycle start"
    )
    assert stream_events[-1] == life[-1], "the last event of a stream should be its lifecycle stop"


def contains_value(tree: Any, needle: str) -> bool:
    """True if `needle` occurs as (part of) any string or key anywhere in a JSON tree."""
    if isinstance(tree, str):
        return needle in tree
    if isinstance(tree, dict):
        return any(needle in k or contains_value(v, needle) for k, v in tree.items())
    if isinstance(tree, list):
        return any(contains_value(v, needle) for v in tree)
    return False


# -- raw store access ------------------------------------------------------------------------------
def store_files(store: Path) -> list[Path]:
    """The database and its journal side files."""
    candidates = [store, *(Path(f"{store}{suffix}") for suffix in ("-wal", "-shm", "-journal"))]
    return [p for p in candidates if p.exists()]


def store_bytes(store: Path) -> bytes:
    return b"".join(p.read_bytes() for p in store_files(store))


def store_size(store: Path) -> int:
    return sum(p.stat().st_size for p in store_files(store))


def sqlite_connect(store: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(store), isolation_level=None)


def drop_append_only_triggers(db: sqlite3.Connection) -> list[str]:
    """An attacker with write access to the file removes the guard triggers first."""
    names = [
        row[0]
        for row in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall()
    ]
    for name in names:
        db.execute(f'DROP TRIGGER "{name}"')
    return names


def mentions_seq(output: str, seq: int) -> bool:
    """Whether verify's output names `seq` (JSON field whose key contains "seq", or text)."""

    def walk(tree: Any) -> bool:
        if isinstance(tree, dict):
            for key, value in tree.items():
                if "seq" in key.lower() and (
                    value == seq or (isinstance(value, list) and seq in value)
                ):
                    return True
                if walk(value):
                    return True
        elif isinstance(tree, list):
            return any(walk(v) for v in tree)
        return False

    for line in output.splitlines():
        try:
            if walk(json.loads(line)):
                return True
        except json.JSONDecodeError:
            pass
    try:
        if walk(json.loads(output)):
            return True
    except json.JSONDecodeError:
        pass
    return re.search(rf"\bseq(?:uence)?\b\D{{0,12}}\b{seq}\b", output, re.IGNORECASE) is not None


# -- byte capture ----------------------------------------------------------------------------------
# `tee IN | COMMAND | tee OUT`, except that when COMMAND exits the input tee is stopped too (a
# plain pipeline would keep the client's stdin open and hide COMMAND's death from the client).
TEE_SCRIPT = (
    'in=$1; out=$2; fifo=$3; shift 3; mkfifo "$fifo" || exit 97; '
    'exec 4<&0; tee "$in" <&4 >"$fifo" & tp=$!; exec 4<&-; '
    '"$@" <"$fifo" | tee "$out"; '
    "kill $tp 2>/dev/null; wait $tp 2>/dev/null; exit 0"
)


def teed_argv(command: Sequence[str], workdir: Path, name: str) -> list[str]:
    """`command` with its stdin copied to WORKDIR/NAME.in and stdout to WORKDIR/NAME.out."""
    return [
        "sh",
        "-c",
        TEE_SCRIPT,
        "sh",
        str(workdir / f"{name}.in"),
        str(workdir / f"{name}.out"),
        str(workdir / f"{name}.fifo"),
        *command,
    ]
