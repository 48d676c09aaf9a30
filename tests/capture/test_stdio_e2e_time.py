"""mcp-server-time (PyPI, dual-era) behind `mcp-notary wrap`, driven by the official `mcp` 2.x
Python client in each protocol mode.

The bytes between client and wrap are captured with `tee` outside wrap (the server command that
wrap records stays `mcp-server-time`), and the events are checked against an independent pairing
of those bytes: one `call` event per request/response exchange, with the right method, tool, id,
outcome and protocol version.
"""

from __future__ import annotations

import getpass
import importlib.metadata
import json
import os
import pwd
import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from e2e_notary import (
    Notary,
    assert_started_and_stopped,
    assert_well_formed,
    by_stream,
    calls,
    contains_value,
    drop_append_only_triggers,
    fake_aws_key_id,
    mentions_seq,
    single_stream,
    store_bytes,
    store_files,
    teed_argv,
    wrap_events,
)
from e2e_wire import CLIENT_TO_SERVER, Exchange, exchanges, same_id
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

pytestmark = pytest.mark.timeout(120)


CLIENT_INFO = types.Implementation(name="e2e-time-client", version="1.2.3")
TIME_SERVER_VERSION = importlib.metadata.version("mcp-server-time")
EXPECTED_VERSION = {"legacy": "2025-11-25", "2026-07-28": "2026-07-28", "auto": "2026-07-28"}
TOOL_SEQUENCE = ["get_current_time", "convert_time", "get_current_time", "nope"]
OUTCOME_SEQUENCE = ["success", "success", "tool_error", "protocol_error"]


@dataclass
class TimeRun:
    mode: str
    store: Path
    workdir: Path
    # A credential-shaped bad timezone: the server quotes it back in its error text.
    bad_timezone: str = field(default_factory=lambda: f"Mars/{fake_aws_key_id()}")
    protocol_version: str = ""
    tool_names: list[str] = field(default_factory=list)
    results: list[types.CallToolResult] = field(default_factory=list)
    unknown_tool_error: MCPError | None = None
    client_bytes: bytes = b""
    server_bytes: bytes = b""
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def wire(self) -> list[Exchange]:
        return exchanges(self.client_bytes, self.server_bytes)


def teed_params(wrap_params: StdioServerParameters, workdir: Path) -> StdioServerParameters:
    """The client launches `tee | wrap ... | tee`: the bytes on the client side of wrap."""
    argv = teed_argv([wrap_params.command, *wrap_params.args], workdir, "client")
    return StdioServerParameters(
        command=argv[0], args=argv[1:], env=wrap_params.env, cwd=wrap_params.cwd
    )


async def drive_time_server(params: StdioServerParameters, run: TimeRun) -> None:
    with anyio.fail_after(60):
        async with Client(params, mode=run.mode, client_info=CLIENT_INFO) as client:
            run.protocol_version = client.protocol_version
            listed = await client.list_tools()
            run.tool_names = [t.name for t in listed.tools]
            run.results.append(
                await client.call_tool("get_current_time", {"timezone": "Europe/Paris"})
            )
            run.results.append(
                await client.call_tool(
                    "convert_time",
                    {
                        "source_timezone": "Europe/Paris",
                        "time": "12:00",
                        "target_timezone": "Asia/Tokyo",
                    },
                )
            )
            run.results.append(
                await client.call_tool("get_current_time", {"timezone": run.bad_timezone})
            )
            try:
                await client.call_tool("nope", {"x": 1})
            except MCPError as exc:
                run.unknown_tool_error = exc


def run_time_session(
    notary: Notary,
    time_cmd: list[str],
    workdir: Path,
    mode: str,
    *,
    store_via: str,
    options: tuple[str, ...] = (),
) -> TimeRun:
    workdir.mkdir(parents=True, exist_ok=True)
    run = TimeRun(mode=mode, store=workdir / "audit.db", workdir=workdir)
    params = notary.wrap_params(time_cmd, run.store, options=options, store_via=store_via)
    anyio.run(drive_time_server, teed_params(params, workdir), run)
    run.client_bytes = (workdir / "client.in").read_bytes()
    run.server_bytes = (workdir / "client.out").read_bytes()
    run.events = notary.events(run.store)
    return run


@pytest.fixture(scope="module", params=["legacy", "2026-07-28", "auto"])
def time_run(
    request: pytest.FixtureRequest,
    notary: Notary,
    time_cmd: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> TimeRun:
    mode = request.param
    # Alternate how the store is named: MCP_NOTARY_STORE for two modes, --store for one.
    store_via = "flag" if mode == "2026-07-28" else "env"
    return run_time_session(
        notary, time_cmd, tmp_path_factory.mktemp(f"time-{mode}"), mode, store_via=store_via
    )


def tool_calls(run: TimeRun) -> list[dict[str, Any]]:
    return calls(single_stream(run.events), "tools/call")


# -- the session itself worked through wrap ------------------------------------------------------
def test_client_session_works_through_wrap(time_run: TimeRun) -> None:
    assert time_run.protocol_version == EXPECTED_VERSION[time_run.mode]
    assert time_run.tool_names == ["get_current_time", "convert_time"]
    paris, converted, bad = time_run.results
    assert not paris.is_error and paris.structured_content["timezone"] == "Europe/Paris"
    assert not converted.is_error and converted.structured_content["time_difference"] == "+8.0h"
    assert bad.is_error and time_run.bad_timezone in bad.content[0].text
    assert time_run.unknown_tool_error is not None, "unknown tool did not raise"
    assert time_run.unknown_tool_error.code == -32602


# -- one call event per exchange, checked against the wire -----------------------------------------
def test_one_call_event_per_wire_exchange(time_run: TimeRun) -> None:
    stream = single_stream(time_run.events)
    call_events = calls(stream)
    wire = [x for x in time_run.wire if x.direction == CLIENT_TO_SERVER]
    assert wire, "nothing captured on the wire"
    for exchange in wire:
        matching = [
            e
            for e in call_events
            if same_id(e["jsonrpc_id"], exchange.id) and e["method"] == exchange.method
        ]
        assert len(matching) == 1, (
            f"expected exactly one call event for {exchange.method} id={exchange.id!r}, "
            f"got {len(matching)}: {matching}"
        )
        event = matching[0]
        assert event["direction"] == "client_to_server", event
        assert event["outcome"] == exchange.expected_outcome, (exchange, event)
        assert event["tool"] == exchange.tool, event
        if exchange.error_code is not None:
            assert event["error"] and event["error"]["code"] == exchange.error_code, event
        assert isinstance(event["duration_ms"], (int, float)) and event["duration_ms"] >= 0, event
    assert len(call_events) == len(wire), (
        "call events that match no request on the wire: "
        f"{[(e['method'], e['jsonrpc_id']) for e in call_events]} vs "
        f"{[(x.method, x.id) for x in wire]}"
    )


def test_tool_call_events(time_run: TimeRun) -> None:
    events = tool_calls(time_run)
    assert [e["tool"] for e in events] == TOOL_SEQUENCE
    assert [e["outcome"] for e in events] == OUTCOME_SEQUENCE
    wire_ids = [x.id for x in time_run.wire if x.method == "tools/call"]
    assert [e["jsonrpc_id"] for e in events] == wire_ids
    assert all(isinstance(e["jsonrpc_id"], int) for e in events), "the SDK sends integer ids"
    for event in events[:3]:
        assert event["error"] is None, event
    assert events[3]["error"]["code"] == -32602
    # non-tools/call events carry no tool
    others = [e for e in calls(single_stream(time_run.events)) if e["method"] != "tools/call"]
    assert all(e["tool"] is None for e in others), others


def test_protocol_version_recorded(time_run: TimeRun) -> None:
    for event in tool_calls(time_run):
        assert event["protocol_version"] == EXPECTED_VERSION[time_run.mode], event
    methods = [e["method"] for e in calls(single_stream(time_run.events))]
    if time_run.mode == "legacy":
        assert methods[0] == "initialize" and "server/discover" not in methods
    elif time_run.mode == "auto":
        assert methods[0] == "server/discover" and "initialize" not in methods
    else:
        assert "initialize" not in methods and "server/discover" not in methods


def test_stream_is_well_formed_with_lifecycle(time_run: TimeRun) -> None:
    stream = single_stream(time_run.events)
    assert_well_formed(stream)
    assert_started_and_stopped(stream)
    kinds = {e["kind"] for e in stream}
    assert "anomaly" not in kinds, [e for e in stream if e["kind"] == "anomaly"]
    # events --json is oldest first
    stamps = [e["timestamp"] for e in time_run.events]
    assert stamps == sorted(stamps)


def test_server_client_principal_recorded(time_run: TimeRun, time_cmd: list[str]) -> None:
    user = pwd.getpwuid(os.getuid()).pw_name
    for event in tool_calls(time_run):
        server = event["server"]
        command = server["command"]
        command_text = " ".join(command) if isinstance(command, list) else str(command)
        assert time_cmd[0] in command_text, server
        assert "tee" not in command_text, "wrap must record its own child, not the client's shell"
        assert server["name"] == "mcp-time", server
        assert server["version"] == TIME_SERVER_VERSION, server
        # self-reported, display only
        assert event["client"] == {"name": "e2e-time-client", "version": "1.2.3"}, event["client"]
        principal = event["principal"]
        assert principal["source"] == "os", principal
        assert principal["id"] in (user, str(os.getuid()), getpass.getuser()), principal
        assert principal["id"] != "e2e-time-client"


def test_arguments_recorded_in_audit_form(time_run: TimeRun) -> None:
    paris, convert, bad, _unknown = tool_calls(time_run)
    for event in (paris, convert, bad):
        assert event["arguments"] is not None, event
        assert isinstance(event["arguments"], dict), event["arguments"]
    assert contains_value(paris["arguments"], "timezone"), paris["arguments"]
    assert contains_value(convert["arguments"], "target_timezone"), convert["arguments"]
    assert isinstance(paris["sensitive_fields"], list)


def test_credential_in_arguments_and_error_text_not_stored(time_run: TimeRun) -> None:
    secret = time_run.bad_timezone.split("/", 1)[1]
    assert secret.encode() in time_run.client_bytes and secret.encode() in time_run.server_bytes
    assert secret.encode() not in store_bytes(time_run.store), "credential found in the store files"
    assert not contains_value(time_run.events, secret)
    bad = tool_calls(time_run)[2]
    assert bad["outcome"] == "tool_error"
    assert bad["sensitive_fields"], "nothing reported as redacted"


def test_verify_intact_store(time_run: TimeRun, notary: Notary) -> None:
    proc = notary.verify(time_run.store)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    proc = notary.verify(time_run.store, "--json")
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    text = proc.stdout.decode().strip()
    assert text, "verify --json printed nothing"
    try:
        json.loads(text)
    except json.JSONDecodeError:
        for line in text.splitlines():
            json.loads(line)  # JSON Lines then


# -- read side, once -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def legacy_run(
    notary: Notary, time_cmd: list[str], tmp_path_factory: pytest.TempPathFactory
) -> TimeRun:
    return run_time_session(
        notary, time_cmd, tmp_path_factory.mktemp("time-read"), "legacy", store_via="env"
    )


def test_events_filters_and_show(legacy_run: TimeRun, notary: Notary) -> None:
    store = legacy_run.store
    everything = [e for e in notary.events(store) if e["kind"] != "audit_access"]

    only_convert = notary.events(store, "--tool", "convert_time")
    assert [e["tool"] for e in only_convert] == ["convert_time"]

    tool_errors = notary.events(store, "--outcome", "tool_error")
    assert [(e["tool"], e["outcome"]) for e in tool_errors] == [("get_current_time", "tool_error")]

    protocol_errors = notary.events(store, "--outcome", "protocol_error")
    assert [e["tool"] for e in protocol_errors if e["method"] == "tools/call"] == ["nope"]

    user = single_stream(everything)[-1]["principal"]["id"]
    mine = notary.events(store, "--principal", user)
    assert {e["event_id"] for e in calls(everything)} <= {e["event_id"] for e in mine}
    assert notary.events(store, "--principal", "nobody-at-all") == []

    last_two = notary.events(store, "--limit", "2")
    assert len(last_two) == 2
    assert [e["event_id"] for e in last_two] == [e["event_id"] for e in everything[-2:]]

    convert = only_convert[0]
    since = notary.events(store, "--since", convert["timestamp"])
    assert since and all(e["timestamp"] >= convert["timestamp"] for e in since)
    assert convert["event_id"] in {e["event_id"] for e in since}
    until = notary.events(store, "--until", convert["timestamp"])
    # --until is exclusive (documented in `events --help`)
    assert until and all(e["timestamp"] < convert["timestamp"] for e in until)
    assert convert["event_id"] not in {e["event_id"] for e in until}

    shown = notary.run("show", convert["event_id"], store=store)
    assert shown.returncode == 0, shown.stderr.decode()
    out = shown.stdout.decode()
    assert convert["event_id"] in out and "convert_time" in out

    missing = notary.run("show", "01890000-0000-7000-8000-000000000000", store=store)
    assert missing.returncode != 0


def test_principal_server_name_and_strict_durability(
    notary: Notary, time_cmd: list[str], tmp_path: Path
) -> None:
    run = run_time_session(
        notary,
        time_cmd,
        tmp_path / "strict",
        "legacy",
        store_via="flag",
        options=(
            "--durability",
            "strict",
            "--principal",
            "alice@example.com",
            "--server-name",
            "time-prod",
        ),
    )
    stream = single_stream(run.events)
    assert_well_formed(stream)
    for event in calls(stream):
        assert event["principal"]["id"] == "alice@example.com", event["principal"]
        assert event["principal"]["source"] == "config", event["principal"]
    assert contains_value(stream, "time-prod"), "--server-name is recorded nowhere"
    # strict: each request is committed (call_started) before it is forwarded, then completed
    for event in calls(stream, "tools/call"):
        started = [
            s
            for s in stream
            if s["kind"] == "call_started"
            and s["method"] == "tools/call"
            and same_id(s["jsonrpc_id"], event["jsonrpc_id"])
        ]
        assert len(started) == 1, f"no call_started for {event['tool']} id {event['jsonrpc_id']}"
        assert started[0]["seq"] < event["seq"]
        assert started[0]["tool"] == event["tool"]
    assert notary.verify(run.store).returncode == 0


def test_concurrent_wraps_share_one_store(
    notary: Notary, time_cmd: list[str], tmp_path: Path
) -> None:
    """Two wrap processes on one store at once: each writes its own stream, both complete."""
    store = tmp_path / "shared.db"
    runs = [TimeRun(mode=mode, store=store, workdir=tmp_path) for mode in ("legacy", "auto")]

    async def both() -> None:
        async with anyio.create_task_group() as tg:
            for run in runs:
                tg.start_soon(drive_time_server, notary.wrap_params(time_cmd, store), run)

    anyio.run(both)
    streams = by_stream(wrap_events(notary.events(store)))
    assert len(streams) == 2, sorted(streams)
    for stream in streams.values():
        assert_well_formed(stream)
        assert_started_and_stopped(stream)
        assert [e["tool"] for e in calls(stream, "tools/call")] == TOOL_SEQUENCE
    versions = sorted(calls(s, "tools/call")[0]["protocol_version"] for s in streams.values())
    assert versions == ["2025-11-25", "2026-07-28"]
    assert notary.verify(store).returncode == 0


# -- tampering -------------------------------------------------------------------------------------
def copy_store(source: Path, dest_dir: Path) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    for path in store_files(source):
        shutil.copy2(path, dest_dir / path.name)
    return dest_dir / source.name


def event_rows(db: sqlite3.Connection, stream: str) -> dict[int, bytes]:
    return {
        seq: bytes(body)
        for seq, body in db.execute(
            "SELECT seq, body FROM events WHERE stream=? ORDER BY seq", (stream,)
        )
    }


@pytest.fixture(scope="module")
def tamper_source(legacy_run: TimeRun) -> tuple[Path, str, int]:
    """The legacy store, its stream, and the seq of the convert_time call event."""
    stream = single_stream(legacy_run.events)
    convert = next(e for e in stream if e["kind"] == "call" and e["tool"] == "convert_time")
    assert convert["seq"] + 1 <= stream[-1]["seq"]
    return legacy_run.store, convert["stream"], convert["seq"]


def _verify_names_failure(notary: Notary, store: Path, seq: int) -> None:
    proc = notary.verify(store)
    text = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == 1, (
        f"verify exited {proc.returncode}, expected 1 (integrity failure):\n{text}"
    )
    assert mentions_seq(text, seq), f"verify does not name seq {seq}:\n{text}"
    proc_json = notary.verify(store, "--json")
    assert proc_json.returncode == 1, proc_json.stdout.decode() + proc_json.stderr.decode()
    assert mentions_seq(proc_json.stdout.decode(), seq), (
        f"verify --json does not name seq {seq}:\n{proc_json.stdout.decode()}"
    )


def test_verify_control_copy_is_intact(
    tamper_source: tuple[Path, str, int], notary: Notary, tmp_path: Path
) -> None:
    store, _, _ = tamper_source
    copy = copy_store(store, tmp_path / "control")
    proc = notary.verify(copy)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_verify_detects_one_changed_byte(
    tamper_source: tuple[Path, str, int], notary: Notary, tmp_path: Path
) -> None:
    store, stream, seq = tamper_source
    copy = copy_store(store, tmp_path / "byte")
    db = sqlite3.connect(str(copy), isolation_level=None)
    schema = "\n".join(
        r[0] for r in db.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")
    )
    assert (
        re.search(r"CREATE TABLE\s+\"?events\"?", schema)
        and "body" in schema
        and "chain_hash" in schema
    ), schema
    drop_append_only_triggers(db)
    body = event_rows(db, stream)[seq]
    # Change one digit of the microseconds: still valid JSON, still the same seq.
    match = re.search(rb'"timestamp":"[^"]*?(\d)Z"', body)
    assert match, body[:300]
    pos = match.start(1)
    new_digit = b"7" if body[pos : pos + 1] != b"7" else b"3"
    tampered = body[:pos] + new_digit + body[pos + 1 :]
    json.loads(tampered)
    db.execute("UPDATE events SET body=? WHERE stream=? AND seq=?", (tampered, stream, seq))
    db.close()
    _verify_names_failure(notary, copy, seq)


def test_verify_detects_deleted_row(
    tamper_source: tuple[Path, str, int], notary: Notary, tmp_path: Path
) -> None:
    store, stream, seq = tamper_source
    copy = copy_store(store, tmp_path / "delete")
    db = sqlite3.connect(str(copy), isolation_level=None)
    drop_append_only_triggers(db)
    db.execute("DELETE FROM events WHERE stream=? AND seq=?", (stream, seq))
    db.close()
    _verify_names_failure(notary, copy, seq)


def test_verify_detects_swapped_bodies(
    tamper_source: tuple[Path, str, int], notary: Notary, tmp_path: Path
) -> None:
    store, stream, seq = tamper_source
    copy = copy_store(store, tmp_path / "swap")
    db = sqlite3.connect(str(copy), isolation_level=None)
    drop_append_only_triggers(db)
    rows = event_rows(db, stream)
    db.execute("UPDATE events SET body=? WHERE stream=? AND seq=?", (rows[seq + 1], stream, seq))
    db.execute("UPDATE events SET body=? WHERE stream=? AND seq=?", (rows[seq], stream, seq + 1))
    db.close()
    _verify_names_failure(notary, copy, seq)
