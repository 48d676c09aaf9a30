"""`wrap` is invisible on the wire: a raw JSON-lines client (no SDK) sends hand-written bytes,
including ones a strict parser would reject, and the bytes are compared on both sides of wrap.

The server runs as `sh -c 'tee server.in | server | tee server.out'` inside wrap, so:
  bytes the client sent      == bytes the server read   (server.in)
  bytes the client received  == bytes the server wrote  (server.out)
Process handling is checked with real processes: child crash mid-call, client EOF, SIGTERM,
exit-code propagation.
"""

from __future__ import annotations

import os
import random
import signal
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e_notary import (
    Notary,
    assert_started_and_stopped,
    assert_well_formed,
    calls,
    fake_aws_key_id,
    lifecycle,
    lifecycle_phase,
    module_argv,
    single_stream,
    store_bytes,
    store_size,
    teed_argv,
)
from e2e_rawclient import RawPipeClient, pid_alive, wait_until

pytestmark = pytest.mark.timeout(120)

INIT = (
    # odd key order, a vendor field inside params, id 0
    '{"params":{"clientInfo":{"version":"0.0.1","name":"raw-e2e"},"x-vendor-field":{"k":[1,2]},'
    '"capabilities":{},"protocolVersion":"2025-06-18"},"id":0,"method":"initialize","jsonrpc":"2.0"}'
)
INITIALIZED = '{"jsonrpc":"2.0","method":"notifications/initialized"}'
LIST_TOOLS = '{"jsonrpc":"2.0","id":"req-\u03b1","method":"tools/list"}'  # non-ASCII string id
ECHO_META = (
    # whitespace, `_meta` with a progress token and vendor keys, arguments before name
    '{"jsonrpc": "2.0", "id": "abc", "method": "tools/call", "params": {"_meta": '
    '{"progressToken": "p-1", "com.example/trace": {"z": 1, "a": [true, null]}}, '
    '"arguments": {"message": "hi"}, "name": "echo"}}'
)
UNKNOWN_METHOD = '{"jsonrpc":"2.0","id":7,"method":"vendor/doesNotExist","params":{"q":1}}'
NON_UTF8 = b'\xff\xfe{"jsonrpc":"2.0","id":99,"method":"ping"}\n'


def random_word(n: int) -> str:
    return "".join(random.choices(string.ascii_letters, k=n))


@dataclass
class RawRun:
    workdir: Path
    store: Path
    secret_in_malformed: str
    huge_message: str
    sent: bytes = b""
    received: bytes = b""
    stderr: bytes = b""
    server_in: bytes = b""
    server_out: bytes = b""
    returncode: int | None = None
    responses: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


def _id_key(message_id: Any) -> str:
    return f"{type(message_id).__name__}:{message_id}"


@pytest.fixture(scope="module")
def raw_run(
    notary: Notary, everything_cmd: list[str], tmp_path_factory: pytest.TempPathFactory
) -> RawRun:
    workdir = tmp_path_factory.mktemp("raw")
    run = RawRun(
        workdir=workdir,
        store=workdir / "audit.db",
        secret_in_malformed=fake_aws_key_id(),
        huge_message=random_word(5 * 1024 * 1024),
    )
    argv = notary.wrap_argv(teed_argv(everything_cmd, workdir, "server"), store=run.store)
    with RawPipeClient(argv, notary.env(), cwd=workdir) as client:
        client.send(INIT)
        run.responses[_id_key(0)] = client.response_to(0)
        client.send(INITIALIZED)
        client.send(LIST_TOOLS)
        run.responses[_id_key("req-\u03b1")] = client.response_to("req-\u03b1")
        client.send(ECHO_META)
        run.responses[_id_key("abc")] = client.response_to("abc")
        client.send(UNKNOWN_METHOD)
        run.responses[_id_key(7)] = client.response_to(7)
        # Bytes that are not a message: not UTF-8, and a line cut short (carrying a credential).
        client.send_bytes(NON_UTF8)
        client.send_bytes(
            b'{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","arguments":'
            b'{"message":"key=' + run.secret_in_malformed.encode() + b'"\n'
        )
        # The same id as integer and as string, both in flight at once.
        client.send_bytes(
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"int"}}}\n'
            b'{"jsonrpc":"2.0","id":"1","method":"tools/call","params":{"name":"echo","arguments":{"message":"str"}}}\n'
        )
        run.responses[_id_key(1)] = client.response_to(1)
        run.responses[_id_key("1")] = client.response_to("1")
        # A line of more than 5 MiB each way.
        client.send(
            {
                "jsonrpc": "2.0",
                "id": 9,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": run.huge_message}},
            }
        )
        run.responses[_id_key(9)] = client.response_to(9, timeout=60)
        client.close_stdin()
        assert client.wait_eof(30), "wrap kept stdout open after the client closed stdin"
        run.returncode = client.wait(30)
        run.sent = bytes(client.sent)
        run.received = bytes(client.received)
        run.stderr = bytes(client.stderr)
    run.server_in = (workdir / "server.in").read_bytes()
    run.server_out = (workdir / "server.out").read_bytes()
    run.events = notary.events(run.store)
    return run


def _first_difference(a: bytes, b: bytes) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            lo, hi = max(0, i - 40), i + 40
            return f"first difference at byte {i}: {a[lo:hi]!r} vs {b[lo:hi]!r}"
    return f"lengths differ: {len(a)} vs {len(b)}"


def test_bytes_to_server_identical(raw_run: RawRun) -> None:
    assert raw_run.server_in == raw_run.sent, _first_difference(raw_run.server_in, raw_run.sent)


def test_bytes_to_client_identical(raw_run: RawRun) -> None:
    assert len(raw_run.received) > 10 * 1024 * 1024 // 2
    assert raw_run.received == raw_run.server_out, _first_difference(
        raw_run.received, raw_run.server_out
    )


def test_responses_reach_the_client(raw_run: RawRun) -> None:
    r = raw_run.responses
    assert r["int:0"]["result"]["protocolVersion"] == "2025-06-18"
    assert any(t["name"] == "echo" for t in r["str:req-\u03b1"]["result"]["tools"])
    assert r["str:abc"]["result"]["content"][0]["text"] == "Echo: hi"
    assert r["int:7"]["error"]["code"] == -32601
    assert r["int:1"]["result"]["content"][0]["text"] == "Echo: int"
    assert r["str:1"]["result"]["content"][0]["text"] == "Echo: str"
    assert r["int:9"]["result"]["content"][0]["text"] == "Echo: " + raw_run.huge_message


def test_exit_and_stderr_passthrough(raw_run: RawRun) -> None:
    assert raw_run.returncode == 0, raw_run.stderr.decode(errors="replace")[-3000:]
    assert b"Starting default (STDIO) server" in raw_run.stderr


def test_ids_methods_outcomes_recorded(raw_run: RawRun) -> None:
    stream = single_stream(raw_run.events)
    assert_well_formed(stream)
    assert_started_and_stopped(stream)

    def one(method: str, message_id: Any) -> dict[str, Any]:
        found = [
            e
            for e in calls(stream, method)
            if type(e["jsonrpc_id"]) is type(message_id) and e["jsonrpc_id"] == message_id
        ]
        assert len(found) == 1, f"{method} id {message_id!r}: {found}"
        return found[0]

    init = one("initialize", 0)
    assert init["outcome"] == "success" and init["client"] == {
        "name": "raw-e2e",
        "version": "0.0.1",
    }
    assert one("tools/list", "req-\u03b1")["outcome"] == "success"
    echo = one("tools/call", "abc")
    assert echo["tool"] == "echo" and echo["outcome"] == "success"
    unknown = one("vendor/doesNotExist", 7)
    assert unknown["outcome"] == "protocol_error"
    assert unknown["error"]["code"] == -32601
    as_int, as_str = one("tools/call", 1), one("tools/call", "1")
    assert as_int["event_id"] != as_str["event_id"]
    assert as_int["outcome"] == as_str["outcome"] == "success"
    huge = one("tools/call", 9)
    assert huge["outcome"] == "success" and huge["tool"] == "echo"
    for event in calls(stream, "tools/call"):
        assert event["protocol_version"] == "2025-06-18", event


def test_anomalies_recorded(raw_run: RawRun) -> None:
    stream = single_stream(raw_run.events)
    anomalies = [e for e in stream if e["kind"] == "anomaly"]
    assert len(anomalies) >= 2, (
        f"expected anomalies for the non-UTF-8 and malformed lines: {anomalies}"
    )
    assert all(a["direction"] == "client_to_server" for a in anomalies), anomalies
    # the lines that were not messages produced no call events
    assert not [e for e in calls(stream) if e["jsonrpc_id"] in (8, 99)]


def test_unparseable_bytes_not_stored(raw_run: RawRun) -> None:
    assert raw_run.secret_in_malformed.encode() not in store_bytes(raw_run.store)


def test_huge_payload_summarised_not_stored(raw_run: RawRun) -> None:
    assert store_size(raw_run.store) < len(raw_run.huge_message), "the 5 MiB argument was stored"
    middle = len(raw_run.huge_message) // 2
    assert raw_run.huge_message[middle : middle + 64].encode() not in store_bytes(raw_run.store)


def test_verify_after_raw_session(raw_run: RawRun, notary: Notary) -> None:
    proc = notary.verify(raw_run.store)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_server_stdout_noise_relayed_and_flagged(
    notary: Notary, time_cmd: list[str], tmp_path: Path
) -> None:
    """A server that prints a non-JSON line on stdout before speaking MCP: the line reaches the
    client unchanged, an anomaly is recorded for it, and the session goes on."""
    store = tmp_path / "audit.db"
    noisy = ["sh", "-c", 'printf "booting... not json\\n"; exec "$@"', "sh", *time_cmd]
    with RawPipeClient(notary.wrap_argv(noisy, store=store), notary.env(), cwd=tmp_path) as client:
        client.send(INIT)
        response = client.response_to(0)
        assert response["result"]["serverInfo"]["name"] == "mcp-time"
        client.close_stdin()
        assert client.wait(30) == 0
        assert bytes(client.received).startswith(b"booting... not json\n")
    stream = single_stream(notary.events(store))
    anomalies = [e for e in stream if e["kind"] == "anomaly"]
    assert len(anomalies) == 1, anomalies
    assert anomalies[0]["direction"] == "server_to_client"
    assert calls(stream, "initialize")[0]["outcome"] == "success"


# -- process handling ------------------------------------------------------------------------------
def _init_legacy(client: RawPipeClient) -> None:
    client.send(
        {
            "jsonrpc": "2.0",
            "id": 100,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "raw-e2e", "version": "0.0.1"},
            },
        }
    )
    client.response_to(100)
    client.send(INITIALIZED)


def _long_call(client: RawPipeClient, message_id: int) -> None:
    client.send(
        {
            "jsonrpc": "2.0",
            "id": message_id,
            "method": "tools/call",
            "params": {
                "name": "trigger-long-running-operation",
                "arguments": {"duration": 30, "steps": 30},
                "_meta": {"progressToken": message_id},
            },
        }
    )
    client.wait_for(lambda m: m.get("method") == "notifications/progress", timeout=15)


def test_server_crash_mid_call(notary: Notary, everything_cmd: list[str], tmp_path: Path) -> None:
    store = tmp_path / "audit.db"
    with RawPipeClient(
        notary.wrap_argv(everything_cmd, store=store), notary.env(), cwd=tmp_path
    ) as client:
        _init_legacy(client)
        _long_call(client, 2)
        children = client.children()
        assert len(children) == 1, f"wrap should have exactly one child, has {children}"
        os.kill(children[0], signal.SIGKILL)
        assert client.wait_eof(15), "the client never saw EOF after the server died"
        code = client.wait(15)
        stderr = bytes(client.stderr)
    assert b"Traceback" not in stderr, stderr.decode(errors="replace")
    # the child's status is propagated: killed by SIGKILL
    assert code in (-signal.SIGKILL, 128 + signal.SIGKILL), f"wrap exited {code}"
    stream = single_stream(notary.events(store))
    assert_well_formed(stream)
    open_call = [e for e in calls(stream, "tools/call") if e["jsonrpc_id"] == 2]
    assert len(open_call) == 1, calls(stream)
    assert open_call[0]["outcome"] == "transport_error", open_call[0]
    assert open_call[0]["tool"] == "trigger-long-running-operation"
    assert "stop" in lifecycle_phase(lifecycle(stream)[-1])
    assert notary.verify(store).returncode == 0


def test_client_eof_closes_child_stdin_and_waits(notary: Notary, tmp_path: Path) -> None:
    """The client closes stdin: wrap closes the child's stdin, keeps relaying what the child
    still writes, and exits with the child's code."""
    store = tmp_path / "audit.db"
    received_by_child = tmp_path / "child.in"
    goodbye = (
        '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"bye"}}'
    )
    child = [
        "sh",
        "-c",
        f"cat > \"$1\"; sleep 1; printf '%s\\n' '{goodbye}'; exit 5",
        "sh",
        str(received_by_child),
    ]
    with RawPipeClient(notary.wrap_argv(child, store=store), notary.env(), cwd=tmp_path) as client:
        client.send(INITIALIZED)
        client.close_stdin()
        assert client.wait_eof(20)
        code = client.wait(20)
        received = bytes(client.received)
    assert code == 5, f"wrap exited {code}, the child exited 5"
    assert received == goodbye.encode() + b"\n", received
    assert received_by_child.read_bytes() == INITIALIZED.encode() + b"\n"
    stream = single_stream(notary.events(store))
    assert_well_formed(stream)
    assert_started_and_stopped(stream)
    notes = [e for e in stream if e["kind"] == "notification"]
    assert [(n["method"], n["direction"]) for n in notes] == [
        ("notifications/initialized", "client_to_server"),
        ("notifications/message", "server_to_client"),
    ]


def test_sigterm_to_wrap(notary: Notary, everything_cmd: list[str], tmp_path: Path) -> None:
    store = tmp_path / "audit.db"
    with RawPipeClient(
        notary.wrap_argv(everything_cmd, store=store), notary.env(), cwd=tmp_path
    ) as client:
        _init_legacy(client)
        done = client.request(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": "before-term"}},
            }
        )
        assert done["result"]["content"][0]["text"] == "Echo: before-term"
        _long_call(client, 3)
        children = client.children()
        assert len(children) == 1, children
        client.signal(signal.SIGTERM)
        assert client.wait_eof(15), "stdout still open 15 s after SIGTERM"
        code = client.wait(15)
        assert wait_until(lambda: not pid_alive(children[0]), 10), "the child outlived wrap"
        assert b"Traceback" not in bytes(client.stderr), bytes(client.stderr).decode()
    # node dies of the forwarded SIGTERM, and wrap reports that status
    assert code in (-signal.SIGTERM, 128 + signal.SIGTERM), f"wrap exited {code}"
    stream = single_stream(notary.events(store))
    assert_well_formed(stream)
    assert_started_and_stopped(stream)
    echo = [e for e in calls(stream, "tools/call") if e["jsonrpc_id"] == 2]
    assert len(echo) == 1 and echo[0]["outcome"] == "success", calls(stream)
    in_flight = [e for e in calls(stream, "tools/call") if e["jsonrpc_id"] == 3]
    assert len(in_flight) == 1, "the call in flight at SIGTERM was lost"
    # the server went away (of the forwarded signal) while the client was still there
    assert in_flight[0]["outcome"] == "transport_error", in_flight[0]
    proc = notary.verify(store)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_client_cancellation_recorded(
    notary: Notary, everything_cmd: list[str], tmp_path: Path
) -> None:
    """notifications/cancelled from the client ends the call as `cancelled`; the notification
    is recorded as a child of the call it cancels, and the session goes on."""
    store = tmp_path / "audit.db"
    with RawPipeClient(
        notary.wrap_argv(everything_cmd, store=store), notary.env(), cwd=tmp_path
    ) as client:
        _init_legacy(client)
        client.send(
            {
                "jsonrpc": "2.0",
                "id": 5,
                "method": "tools/call",
                "params": {
                    "name": "trigger-long-running-operation",
                    "arguments": {"duration": 3, "steps": 3},
                    "_meta": {"progressToken": "tok-5"},
                },
            }
        )
        client.wait_for(lambda m: m.get("method") == "notifications/progress", timeout=15)
        client.send(
            {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": 5, "reason": "user gave up"},
            }
        )
        after = client.request(
            {
                "jsonrpc": "2.0",
                "id": 6,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": "after-cancel"}},
            }
        )
        assert after["result"]["content"][0]["text"] == "Echo: after-cancel"
        # let the server finish the abandoned operation so that it exits on EOF by itself
        client.wait_for(lambda m: (m.get("params") or {}).get("progress") == 3, timeout=15)
        client.close_stdin()
        assert client.wait(20) == 0
    stream = single_stream(notary.events(store))
    assert_well_formed(stream)
    (call,) = [e for e in calls(stream, "tools/call") if e["jsonrpc_id"] == 5]
    assert call["outcome"] == "cancelled", call
    (cancel,) = [e for e in stream if e["method"] == "notifications/cancelled"]
    assert cancel["kind"] == "notification" and cancel["direction"] == "client_to_server"
    assert cancel["parent_event_id"] == call["event_id"]
    (echo,) = [e for e in calls(stream, "tools/call") if e["jsonrpc_id"] == 6]
    assert echo["outcome"] == "success"
    assert notary.verify(store).returncode == 0


@pytest.mark.parametrize("entry", ["console_script", "python_-m"])
def test_exit_code_propagated(notary: Notary, tmp_path: Path, entry: str) -> None:
    store = tmp_path / "audit.db"
    argv = notary.wrap_argv(
        ["sh", "-c", "echo to-stderr >&2; exit 3"],
        store=store,
        argv=module_argv() if entry == "python_-m" else None,
    )
    with RawPipeClient(argv, notary.env(), cwd=tmp_path) as client:
        code = client.wait(30)
        assert b"to-stderr" in bytes(client.stderr)
        assert b"Traceback" not in bytes(client.stderr)
        assert bytes(client.received) == b""
    assert code == 3
    stream = single_stream(notary.events(store))
    assert_started_and_stopped(stream)


def test_missing_command_fails_cleanly(notary: Notary, tmp_path: Path) -> None:
    store = tmp_path / "audit.db"
    missing = str(tmp_path / "no-such-server")
    with RawPipeClient(
        notary.wrap_argv([missing], store=store), notary.env(), cwd=tmp_path
    ) as client:
        code = client.wait(30)
        err = bytes(client.stderr).decode(errors="replace")
        assert bytes(client.received) == b"", "nothing but server bytes may reach stdout"
    assert code != 0
    assert "no-such-server" in err, err
    assert "Traceback" not in err, err
