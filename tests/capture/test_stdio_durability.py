"""Durability of `wrap` with real processes: crashes, several writers on one store, strict mode
when the store fails."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
from pathlib import Path

from e2e_notary import Notary
from e2e_rawclient import RawPipeClient, handshake, stored, time_call, wait_until


def test_kill9_is_found_and_recorded_by_the_next_start(
    notary: Notary, time_cmd: list[str], store_path: Path
) -> None:
    with RawPipeClient(notary.wrap_argv(time_cmd, store=store_path), notary.env()) as first:
        handshake(first)
        for i in range(1, 6):
            assert "result" in first.request(time_call(i))
        assert wait_until(
            lambda: (
                store_path.exists()
                and sum(e["method"] == "tools/call" for e in stored(store_path)) == 5
            )
        )
        first.kill_tree()  # SIGKILL: no chance to flush or record a stop
    dead = {e["stream"] for e in stored(store_path)}
    assert len(dead) == 1
    last_seq = max(e["seq"] for e in stored(store_path))

    with RawPipeClient(notary.wrap_argv(time_cmd, store=store_path), notary.env()) as second:
        handshake(second)
        second.close_stdin()
        assert second.wait(30) == 0

    events = stored(store_path)
    (closing,) = [e for e in events if (e["details"] or {}).get("phase") == "ended_uncleanly"]
    assert closing["stream"] in dead and closing["seq"] == last_seq + 1
    assert closing["details"]["last_seq"] == last_seq
    (report,) = [e for e in events if (e["details"] or {}).get("phase") == "previous_run_unclean"]
    assert report["stream"] not in dead
    assert report["details"] == {
        "phase": "previous_run_unclean",
        "stream": closing["stream"],
        "last_seq": last_seq,
    }
    assert notary.verify(store_path).returncode == 0


def test_several_wraps_write_one_store_without_breaking_any_chain(
    notary: Notary, time_cmd: list[str], store_path: Path
) -> None:
    calls_each, writers = 40, 4
    errors: list[BaseException] = []

    def one_writer() -> None:
        try:
            with RawPipeClient(notary.wrap_argv(time_cmd, store=store_path), notary.env()) as c:
                handshake(c)
                for i in range(1, calls_each + 1):
                    assert "result" in c.request(time_call(i))
                c.close_stdin()
                assert c.wait(30) == 0
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=one_writer) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    events = stored(store_path)
    streams = {e["stream"] for e in events}
    assert len(streams) == writers
    for stream in streams:
        mine = sorted(e["seq"] for e in events if e["stream"] == stream)
        assert mine == list(range(1, len(mine) + 1))
        assert (
            sum(e["stream"] == stream and e["tool"] == "get_current_time" for e in events)
            == calls_each
        )
    result = notary.verify(store_path, "--json")
    assert result.returncode == 0, result.stdout
    assert json.loads(result.stdout)["events"] == len(events)


def test_strict_mode_refuses_calls_while_the_store_is_locked(
    notary: Notary, time_cmd: list[str], store_path: Path
) -> None:
    url = f"sqlite://{store_path}?busy_timeout_ms=300"
    argv = notary.wrap_argv(time_cmd, options=["--store", url, "--durability", "strict"])
    with RawPipeClient(argv, notary.env()) as client:
        handshake(client)
        assert "result" in client.request(time_call(1))
        locker = sqlite3.connect(store_path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            refused = client.request(time_call(2), timeout=30)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert refused["error"]["code"] == -32003
        assert "audit store unavailable" in refused["error"]["message"]
        assert "locked" in refused["error"]["data"]["reason"]  # why, for the operator
        assert "result" in client.request(time_call(3), timeout=30)
        client.close_stdin()
        assert client.wait(30) == 0
    events = stored(store_path)
    calls = {e["jsonrpc_id"]: e for e in events if e["kind"] == "call" and e["tool"]}
    assert calls[1]["outcome"] == "success" and calls[3]["outcome"] == "success"
    assert calls[2]["outcome"] == "protocol_error" and calls[2]["error"]["code"] == -32003
    assert any((e["details"] or {}).get("phase") == "store_recovered" for e in events)
    started = [e for e in events if e["kind"] == "call_started"]
    assert {e["parent_event_id"] for e in started} >= {calls[1]["event_id"], calls[3]["event_id"]}
    assert notary.verify(store_path).returncode == 0


def test_sigterm_flushes_and_records_the_stop(
    notary: Notary, time_cmd: list[str], store_path: Path
) -> None:
    with RawPipeClient(notary.wrap_argv(time_cmd, store=store_path), notary.env()) as client:
        handshake(client)
        for i in range(1, 4):
            assert "result" in client.request(time_call(i))
        client.signal(signal.SIGTERM)
        client.wait(30)
    events = stored(store_path)
    assert sum(e["tool"] == "get_current_time" for e in events) == 3
    assert events[-1]["details"]["phase"] == "stopped"
