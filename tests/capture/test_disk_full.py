"""`wrap` with its SQLite store on a small filesystem that fills up: batched mode keeps the
traffic flowing, strict mode refuses calls with -32003 while appends fail, and once space is
freed the writer recovers (a `store_recovered` event) and the store verifies.

Needs to mount a filesystem (root): a 2 MiB tmpfs, else a 4 MiB ext4 loop file; skipped if
neither is allowed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_notary import Notary
from e2e_rawclient import RawPipeClient, handshake, stored, time_call, wait_until
from small_fs import fill, small_filesystem


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with small_filesystem(tmp_path) as mountpoint:
        yield mountpoint


def recovered(store: Path) -> list[dict[str, Any]]:
    return [e for e in stored(store) if (e["details"] or {}).get("phase") == "store_recovered"]


def finish(client: RawPipeClient, store: Path, notary: Notary) -> list[dict[str, Any]]:
    client.close_stdin()
    code = client.wait(60)
    assert code == 0, bytes(client.stderr[-3000:]).decode(errors="replace")
    events = stored(store)
    result = notary.verify(store)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return events


def test_batched_mode_keeps_serving_when_the_disk_fills_and_recovers(
    notary: Notary, time_cmd: list[str], small_fs: Path
) -> None:
    store = small_fs / "audit.db"
    argv = notary.wrap_argv(time_cmd, options=["--store", str(store), "--durability", "batched"])
    with RawPipeClient(argv, notary.env()) as client:
        handshake(client)
        for i in range(1, 4):
            assert "result" in client.request(time_call(i))
        assert wait_until(lambda: sum(e["kind"] == "call" for e in stored(store)) >= 3)
        filler = fill(small_fs)
        # The disk is full: every call is still answered and wrap stays up.
        for i in range(4, 64):
            assert "result" in client.request(time_call(i), timeout=30), i
        assert client.proc.poll() is None, bytes(client.stderr).decode(errors="replace")
        filler.unlink()
        assert wait_until(lambda: bool(recovered(store)), timeout=30), bytes(client.stderr)
        assert "result" in client.request(time_call(64))
        events = finish(client, store, notary)
    (recovery,) = [e for e in events if (e["details"] or {}).get("phase") == "store_recovered"]
    assert "full" in recovery["details"]["error"]
    # Nothing was lost: the calls made while the disk was full were kept and written later.
    ids = {e["jsonrpc_id"] for e in events if e["kind"] == "call" and e["tool"]}
    assert ids == set(range(1, 65))


def test_strict_mode_refuses_calls_while_the_disk_is_full_and_recovers(
    notary: Notary, time_cmd: list[str], small_fs: Path
) -> None:
    store = small_fs / "audit.db"
    argv = notary.wrap_argv(time_cmd, options=["--store", str(store), "--durability", "strict"])
    with RawPipeClient(argv, notary.env()) as client:
        handshake(client)
        for i in range(1, 4):
            assert "result" in client.request(time_call(i))
        filler = fill(small_fs)
        refused = None
        i = 4
        for i in range(4, 200):
            reply = client.request(time_call(i), timeout=30)
            if "error" in reply:
                refused = reply
                break
            assert "result" in reply
        assert refused is not None, "appends never failed on a full disk"
        assert refused["error"]["code"] == -32003
        assert "audit store unavailable" in refused["error"]["message"]
        again = client.request(time_call(i + 1), timeout=30)
        assert again["error"]["code"] == -32003  # still full: still refused, cleanly
        assert client.proc.poll() is None
        filler.unlink()
        answered = None
        for j in range(i + 2, i + 40):
            reply = client.request(time_call(j), timeout=30)
            if "result" in reply:
                answered = j
                break
            assert reply["error"]["code"] == -32003
        assert answered is not None, "strict mode did not recover after space was freed"
        events = finish(client, store, notary)
    assert any((e["details"] or {}).get("phase") == "store_recovered" for e in events)
    calls = {e["jsonrpc_id"]: e for e in events if e["kind"] == "call" and e["tool"]}
    assert calls[i]["outcome"] == "protocol_error" and calls[i]["error"]["code"] == -32003
    assert calls[answered]["outcome"] == "success"
