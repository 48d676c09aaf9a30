"""Calls that end without a response, under real faults (issue 15, items 1 and 9).

A call that never gets its response is recorded when its end is seen: the client quits, the
server dies, an HTTP upstream or client drops mid-stream. That record is sequenced after
everything that happened meanwhile, so it must say when the end was seen, not only when the
request started: an untampered store must verify clean however long the call was open. The
verifier's time check must still catch the same record forged back to its start time.

And the outcome of such a call follows from what ended first, every time: the server going
away while the client was still there is a `transport_error`, the client leaving a `cancelled`.
"""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx2
import pytest
import rfc8785
from e2e_notary import Notary, drop_append_only_triggers, single_stream, sqlite_connect
from e2e_rawclient import INIT, RawPipeClient, child_pids, pid_alive, wait_until
from forge import rehash_from
from http_procs import free_port, mcpserver_argv, proxy_argv, running
from http_raw import call_body, call_headers

pytestmark = pytest.mark.timeout(150)

OTHER_CALLS_S = 3.5  # longer than the verifier's scheduling slack (2 s)
QUIT_AFTER_STEPS = 5  # server-everything reports one step a second


def _handshake(client: RawPipeClient) -> None:
    assert "result" in client.request(INIT)
    client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})


def _long_call(message_id: int, *, progress: bool) -> dict[str, Any]:
    params: dict[str, Any] = {
        "name": "trigger-long-running-operation",
        "arguments": {"duration": 60, "steps": 60},
    }
    if progress:
        params["_meta"] = {"progressToken": message_id}
    return {"jsonrpc": "2.0", "id": message_id, "method": "tools/call", "params": params}


def _echo(message_id: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": message_id,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": f"meanwhile {message_id}"}},
    }


def _progress_reached(step: int) -> Any:
    return lambda m: m.get("method") == "notifications/progress" and m["params"]["progress"] >= step


def _verify(notary: Notary, store: Path) -> tuple[int, dict[str, Any]]:
    proc = notary.verify(store, "--json")
    assert proc.stdout, proc.stderr.decode(errors="replace")
    return proc.returncode, json.loads(proc.stdout)


def _time_regressions(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["kind"] == "time_regression"]


def _assert_recorded_late_and_verifies(
    notary: Notary, store: Path, events: list[dict[str, Any]], call: dict[str, Any]
) -> None:
    """`call` was recorded after events that started more than the slack after it did (the
    fault this file is about), and the untouched store verifies clean."""
    later = [e for e in events if e["seq"] < call["seq"] and e["timestamp"] > call["timestamp"]]
    assert later, "the scenario must record events between the call's start and its end"
    status, report = _verify(notary, store)
    assert status == 0, report["findings"]
    assert _time_regressions(report) == []
    assert call["duration_ms"] is not None, call  # request start to the end the proxy saw


def _assert_forged_start_time_is_caught(notary: Notary, store: Path, call: dict[str, Any]) -> None:
    """The same store with the call's observed end taken away again (its end back at its
    start, before events sequenced earlier), re-chained as an attacker would."""
    db = sqlite_connect(store)
    try:
        drop_append_only_triggers(db)
        (body,) = db.execute(
            "SELECT body FROM events WHERE stream = ? AND seq = ?", (call["stream"], call["seq"])
        ).fetchone()
        forged = json.loads(body)
        forged["duration_ms"] = None
        db.execute(
            "UPDATE events SET body = ? WHERE stream = ? AND seq = ?",
            (rfc8785.dumps(forged), call["stream"], call["seq"]),
        )
        rehash_from(db, call["stream"], call["seq"])
        db.commit()
    finally:
        db.close()
    status, report = _verify(notary, store)
    assert status == 1, report
    assert [f["seq"] for f in _time_regressions(report)] == [call["seq"]], report["findings"]


# -- stdio: the client quits with a call open --------------------------------------------------


@pytest.mark.parametrize("durability", ["batched", "strict"])
def test_unanswered_call_while_other_calls_run(
    notary: Notary, everything_cmd: list[str], tmp_path: Path, durability: str
) -> None:
    store = tmp_path / "audit.db"
    argv = notary.wrap_argv(everything_cmd, store=store, options=("--durability", durability))
    with RawPipeClient(argv, notary.env(), cwd=tmp_path) as client:
        _handshake(client)
        client.send(_long_call(2, progress=False))
        started = time.monotonic()
        message_id = 10
        while time.monotonic() - started < OTHER_CALLS_S:
            reply = client.request(_echo(message_id))
            assert "result" in reply, reply
            message_id += 1
        client.close_stdin()  # the client quits; call 2 was never answered
        client.wait(60)
    events = single_stream(notary.events(store))
    (call,) = [e for e in events if e["kind"] == "call" and e["jsonrpc_id"] == 2]
    assert call["outcome"] == "cancelled", call
    _assert_recorded_late_and_verifies(notary, store, events, call)
    _assert_forged_start_time_is_caught(notary, store, call)


@pytest.mark.parametrize("durability", ["batched", "strict"])
def test_client_quits_during_long_running_operation(
    notary: Notary, everything_cmd: list[str], tmp_path: Path, durability: str
) -> None:
    store = tmp_path / "audit.db"
    argv = notary.wrap_argv(everything_cmd, store=store, options=("--durability", durability))
    with RawPipeClient(argv, notary.env(), cwd=tmp_path) as client:
        _handshake(client)
        client.send(_long_call(2, progress=True))
        client.wait_for(_progress_reached(QUIT_AFTER_STEPS), timeout=30)
        client.close_stdin()
        client.wait(60)
    events = single_stream(notary.events(store))
    (call,) = [e for e in events if e["kind"] == "call" and e["jsonrpc_id"] == 2]
    assert call["outcome"] == "cancelled", call
    progress = [e for e in events if e["method"] == "notifications/progress"]
    assert len(progress) >= QUIT_AFTER_STEPS
    assert all(p["parent_event_id"] == call["event_id"] for p in progress)
    _assert_recorded_late_and_verifies(notary, store, events, call)
    _assert_forged_start_time_is_caught(notary, store, call)


# -- HTTP: the upstream or the client drops mid-SSE ---------------------------------------------

STEPS = 400  # the SDK server's `countdown` reports a step every 50 ms
DROP_AT_STEP = 60  # about 3 s into the call


def _progress_of(line: str) -> int | None:
    if not line.startswith("data:"):
        return None
    message = json.loads(line[5:])
    if message.get("method") != "notifications/progress":
        return None
    return int(message["params"]["progress"])


def _legacy_session(url: str) -> dict[str, str]:
    """Headers of a 2025-11-25 session (initialize, then initialized) for raw requests."""
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    reply = httpx2.post(url, json=INIT, headers=headers, timeout=15, trust_env=False)
    assert reply.status_code == 200, reply.text
    headers["mcp-session-id"] = reply.headers["mcp-session-id"]
    headers["mcp-protocol-version"] = INIT["params"]["protocolVersion"]
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    reply = httpx2.post(url, json=initialized, headers=headers, timeout=15, trust_env=False)
    assert reply.status_code == 202, reply.text
    return headers


@pytest.mark.parametrize(
    ("era", "who"),
    [
        ("stateless", "upstream_killed"),
        ("stateless", "client_disconnects"),
        # in a session the broken call stays open (the stream could be resumed) until the
        # session ends: here when the proxy stops, long after the events of the meantime
        ("session", "upstream_killed"),
    ],
)
def test_http_stream_dropped_mid_call(notary: Notary, tmp_path: Path, era: str, who: str) -> None:
    store = tmp_path / "audit.db"
    upstream_port, proxy_port = free_port(), free_port()
    with (
        running(mcpserver_argv(upstream_port), upstream_port) as upstream,
        running(
            proxy_argv(notary.argv, upstream.url, proxy_port, store),
            proxy_port,
            env=notary.env(),  # its signing key where `verify` looks for it
        ) as via,
    ):
        call = call_body("countdown", {"steps": STEPS})
        headers = call_headers("countdown")
        if era == "session":
            headers = _legacy_session(via.url)
            del call["params"]["_meta"]
        call["params"].setdefault("_meta", {})["progressToken"] = "countdown"
        body = json.dumps(call).encode()
        seen = 0
        try:
            with httpx2.stream(
                "POST", via.url, content=body, headers=headers, timeout=30, trust_env=False
            ) as response:
                assert response.status_code == 200
                for line in response.iter_lines():
                    seen = max(seen, _progress_of(line) or 0)
                    if seen >= DROP_AT_STEP:
                        if who == "client_disconnects":
                            break  # leaving the block closes the connection mid-stream
                        upstream.proc.kill()  # the server dies mid-stream (SIGKILL)
                        upstream.proc.wait(10)
        except httpx2.HTTPError:
            assert who == "upstream_killed"  # the client sees the break, as it would directly
        assert seen >= DROP_AT_STEP
    # the proxy stopped (SIGTERM, a clean stop): everything it recorded is in the store
    events = [e for e in notary.events(store) if e["kind"] != "audit_access"]
    (call,) = [e for e in events if e["kind"] == "call" and e["tool"] == "countdown"]
    assert call["outcome"] == ("transport_error" if who == "upstream_killed" else "cancelled")
    _assert_recorded_late_and_verifies(notary, store, events, call)
    _assert_forged_start_time_is_caught(notary, store, call)


# -- item 9: the outcome follows from what ended first -----------------------------------------


@pytest.mark.parametrize("attempt", range(5))
@pytest.mark.parametrize("server", ["direct", "launcher"])
def test_server_death_then_client_quit_is_transport_error(
    notary: Notary, everything_cmd: list[str], tmp_path: Path, server: str, attempt: int
) -> None:
    """The server wrap started dies mid-call, and only then does the client quit. The server
    went first: `transport_error`, every time, however quickly the client follows. With a
    launcher (a shell, as `npx` or a wrapper script would be) the dead launcher's own child
    keeps the pipes open for a while, which is when a client most often gives up."""
    store = tmp_path / "audit.db"
    command = everything_cmd if server == "direct" else ["sh", "-c", '"$@"; exit $?', "sh"]
    if server == "launcher":
        command = [*command, *everything_cmd]
    lingering: list[int] = []
    with RawPipeClient(
        notary.wrap_argv(command, store=store), notary.env(), cwd=tmp_path
    ) as client:
        try:
            _handshake(client)
            client.send(_long_call(2, progress=True))
            client.wait_for(_progress_reached(1), timeout=30)
            (child,) = client.children()
            lingering = child_pids(child)
            os.kill(child, signal.SIGKILL)
            assert wait_until(lambda: not pid_alive(child), 10)
            client.close_stdin()
            client.wait(60)
        finally:
            for pid in lingering:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    events = single_stream(notary.events(store))
    (call,) = [e for e in events if e["kind"] == "call" and e["jsonrpc_id"] == 2]
    assert call["outcome"] == "transport_error", call
    status, report = _verify(notary, store)
    assert status == 0, report["findings"]
