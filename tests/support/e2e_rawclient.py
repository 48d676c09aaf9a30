"""A JSON-lines MCP client with no SDK: bytes in, bytes out, over subprocess pipes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class RawPipeClient:
    """Spawns a command and talks to it over raw pipes. Everything read from the child's stdout
    is kept byte-for-byte in `received`; everything written is kept in `sent`."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            bufsize=0,
            start_new_session=True,  # so a test can signal wrap alone, like a client would
        )
        self.sent = bytearray()
        self.received = bytearray()
        self.stderr = bytearray()
        # (size of `received` after a read, monotonic time of that read): when bytes arrived.
        self.arrivals: list[tuple[int, float]] = []
        self._cond = threading.Condition()
        self._eof = False
        self._threads = [
            threading.Thread(target=self._pump_stdout, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # -- pumps -------------------------------------------------------------------------------------
    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        while True:
            chunk = self.proc.stdout.read(1 << 16)
            with self._cond:
                if not chunk:
                    self._eof = True
                    self._cond.notify_all()
                    return
                self.received += chunk
                self.arrivals.append((len(self.received), time.monotonic()))
                self._cond.notify_all()

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        while True:
            chunk = self.proc.stderr.read(1 << 16)
            if not chunk:
                return
            with self._cond:
                self.stderr += chunk

    # -- writing -----------------------------------------------------------------------------------
    def send_bytes(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()
        self.sent += data

    def send(self, message: dict[str, Any] | str) -> None:
        """Send one message as one line. A str is sent verbatim (hand-written JSON)."""
        text = message if isinstance(message, str) else json.dumps(message, separators=(",", ":"))
        self.send_bytes(text.encode("utf-8") + b"\n")

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    # -- reading -----------------------------------------------------------------------------------
    def messages(self) -> list[Any]:
        with self._cond:
            data = bytes(self.received)
        out = []
        for line in data.split(b"\n"):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    out.append(line)
        return out

    def answered_at(self) -> dict[Any, float]:
        """When the response to each request id arrived (monotonic; the read that completed
        its line)."""
        with self._cond:
            data, arrivals = bytes(self.received), list(self.arrivals)
        out: dict[Any, float] = {}
        start, i = 0, 0
        while (end := data.find(b"\n", start)) >= 0:
            while arrivals[i][0] <= end:
                i += 1
            with contextlib.suppress(ValueError):
                msg = json.loads(data[start:end])
                if isinstance(msg, dict) and "id" in msg and "method" not in msg:
                    out[msg["id"]] = arrivals[i][1]
            start = end + 1
        return out

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> Any:
        """The first received message matching `predicate`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.messages():
                if isinstance(msg, dict) and predicate(msg):
                    return msg
            with self._cond:
                if self._eof:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.2))
        # One last look after EOF/timeout.
        for msg in self.messages():
            if isinstance(msg, dict) and predicate(msg):
                return msg
        raise AssertionError(
            f"no matching message within {timeout}s (eof={self._eof}); "
            f"received {len(self.received)} bytes; last lines: "
            f"{bytes(self.received[-600:])!r}; stderr tail: {bytes(self.stderr[-1500:])!r}"
        )

    def response_to(self, message_id: Any, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait_for(
            lambda m: (
                "method" not in m
                and "id" in m
                and type(m["id"]) is type(message_id)
                and m["id"] == message_id
            ),
            timeout,
        )

    def request(self, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        self.send(message)
        return self.response_to(message["id"], timeout)

    def wait_eof(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._eof:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(5)
        return code

    # -- process tree ----------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        return self.proc.pid

    def children(self) -> list[int]:
        return child_pids(self.proc.pid)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        os.kill(self.proc.pid, signum)

    def kill_tree(self) -> None:
        """Last-resort cleanup: kill everything this test started, by pid."""
        for pid in descendants(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def __enter__(self) -> RawPipeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill_tree()


class PipelinedLoad:
    """Keeps `depth` requests in flight on `client` (ids from `first_id` up) until stopped: a
    fast client that sends the next call as soon as an answer comes back."""

    def __init__(
        self, client: RawPipeClient, make: Any, *, depth: int = 64, first_id: int = 1
    ) -> None:
        self.client, self.make, self.depth = client, make, depth
        self.next_id = first_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PipelinedLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        client, answered, scanned, sent = self.client, 0, 0, 0
        while not self._stop.is_set():
            want = answered + self.depth - sent
            if want > 0:
                lines = [self.make(self.next_id + k) for k in range(want)]
                data = b"".join(
                    json.dumps(m, separators=(",", ":")).encode() + b"\n" for m in lines
                )
                try:
                    client.send_bytes(data)
                except OSError:
                    return  # the peer is gone (killed)
                self.next_id += want
                sent += want
            with client._cond:
                if len(client.received) == scanned and not client._eof:
                    client._cond.wait(0.2)
                if client._eof:
                    return
                # Every line the server sends here is an answer (no notifications are asked for).
                answered += client.received.count(b"\n", scanned)
                scanned = len(client.received)


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc)."""
    found: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tasks = list(task_dir.iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        found.extend(int(p) for p in text.split())
    return sorted(set(found))


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    stack = [pid]
    while stack:
        for child in child_pids(stack.pop()):
            out.append(child)
            stack.append(child)
    return out


def pid_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# -- canned traffic for mcp-server-time --------------------------------------------------------
INIT: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "mcp-notary-tests", "version": "1"},
    },
}


def time_call(i: int) -> dict[str, Any]:
    """`tools/call get_current_time` with JSON-RPC id `i`."""
    return {
        "jsonrpc": "2.0",
        "id": i,
        "method": "tools/call",
        "params": {"name": "get_current_time", "arguments": {"timezone": "UTC"}},
    }


def handshake(client: RawPipeClient) -> None:
    """The legacy-era initialize exchange, answered, then `notifications/initialized`."""
    assert "result" in client.request(INIT)
    client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})


def stored(store: Path) -> list[dict[str, Any]]:
    """Every stored event body of a SQLite store, in insertion order (read-only)."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return [json.loads(b) for (b,) in db.execute("SELECT body FROM events ORDER BY rowid")]
    finally:
        db.close()
