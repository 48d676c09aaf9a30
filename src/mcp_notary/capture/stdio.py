"""The stdio relay: an MCP client starts `mcp-notary wrap -- server ...` instead of the server.

Bytes are forwarded exactly as read; the audit works on parsed copies. Each direction has its
own thread doing blocking I/O, which keeps the added latency to a parse and a queue put:
in batched mode a message is forwarded before its event is built, and in strict mode only
after its record is durable (or answered with a JSON-RPC error when the store fails).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, BinaryIO, Literal, Protocol

from mcp_notary.capture.framing import DEFAULT_MAX_AUDITED_LINE, Frame, LineFramer
from mcp_notary.capture.pairing import (
    EndedBy,
    Exchange,
    Pairer,
    SessionFacts,
    WireMessage,
    parse_line,
)
from mcp_notary.vocabulary import Direction

READ_SIZE = 1 << 20
STRICT_COMMIT_TIMEOUT_S = 10.0
SHUTDOWN_GRACE_S = 5.0
# JSON-RPC server error the proxy answers with when it cannot make a durable record (strict).
AUDIT_UNAVAILABLE_CODE = -32003
Side = Literal["client", "server"]


class ExchangeSink(Protocol):
    """Where the relay sends what it saw (the audit pipeline)."""

    def record(self, exchange: Exchange, session: SessionFacts) -> Future[Any]: ...

    def lifecycle(self, phase: str, details: dict[str, Any]) -> Future[Any]: ...


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _error_reply(request_id: Any, reason: str) -> bytes:
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {
            "code": AUDIT_UNAVAILABLE_CODE,
            "message": "mcp-notary: audit store unavailable, call refused",
            "data": {"reason": reason[:300]},
        },
    }
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


class StdioRelay:
    """Relays one child MCP server over stdio and reports every exchange to `sink`."""

    def __init__(
        self,
        command: Sequence[str],
        sink: ExchangeSink,
        *,
        strict: bool = False,
        max_line: int = DEFAULT_MAX_AUDITED_LINE,
        client_in: BinaryIO | None = None,
        client_out: BinaryIO | None = None,
    ) -> None:
        self.command = list(command)
        self.sink = sink
        self.strict = strict
        self.max_line = max_line
        self._client_in = (client_in or sys.stdin.buffer).fileno()
        self._client_out = (client_out or sys.stdout.buffer).fileno()
        self._pairer = Pairer()
        self._lock = threading.Lock()
        self._out_lock = threading.Lock()  # strict-mode refusals also write to the client
        self._child: subprocess.Popen[bytes] | None = None
        # How calls left open end is decided by cause (see `ended_by`): which side went away
        # first, and whether a signal wrap never sent killed the child.
        self._first_gone: Side | None = None
        self._signalled = False

    # -- process control -------------------------------------------------------------------

    def run(self) -> int:
        """Run until the child exits; return its `returncode` (negative: killed by that signal)."""
        try:
            self._child = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
            )
        except OSError as exc:
            self.sink.lifecycle("spawn_failed", {"error": str(exc)[:500]})
            print(f"mcp-notary: cannot start {self.command[0]!r}: {exc}", file=sys.stderr)
            return 127 if isinstance(exc, FileNotFoundError) else 126
        self.sink.lifecycle("child_started", {"child_pid": self._child.pid})
        previous = {
            sig: signal.signal(sig, self._forward_signal)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        upstream = threading.Thread(target=self._pump_client_to_server, daemon=True)
        downstream = threading.Thread(target=self._pump_server_to_client, daemon=True)
        upstream.start()
        downstream.start()
        try:
            status = self._child.wait()
            self._gone("server")
            # A grandchild may hold the child's stdout open; don't wait for it forever.
            downstream.join(SHUTDOWN_GRACE_S)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        with self._lock:
            cause = ended_by(self._first_gone, status, signalled=self._signalled)
            leftovers = self._pairer.close(cause, time.time())
            session = self._pairer.session
        for exchange in leftovers:
            self.sink.record(exchange, session)
        self.sink.lifecycle("child_exited", {"status": status})
        return status

    def _gone(self, side: Side) -> None:
        """Note that one side went away (the first one counts)."""
        with self._lock:
            if self._first_gone is not None:
                return
            if side == "client" and self._child_has_exited():
                side = "server"  # it died before the client left, we just saw that first
            self._first_gone = side

    def _child_has_exited(self) -> bool:
        """Whether the child has exited, reaped or not, without reaping it (`run` does)."""
        child = self._child
        if child is None:
            return False
        if child.returncode is not None:
            return True
        try:
            return os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True  # already reaped by `run`

    def _forward_signal(self, signum: int, _frame: object) -> None:
        child = self._child
        if child is None or child.poll() is not None:
            return
        self._signalled = True
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)
        if signum == signal.SIGTERM:
            threading.Thread(target=self._kill_after_grace, daemon=True).start()

    def _kill_after_grace(self) -> None:
        child = self._child
        if child is None:
            return
        try:
            child.wait(SHUTDOWN_GRACE_S)
        except subprocess.TimeoutExpired:
            self._signalled = True
            with contextlib.suppress(ProcessLookupError):
                child.kill()

    def _escalate_shutdown(self) -> None:
        """stdin closed -> wait -> SIGTERM -> wait -> SIGKILL (the stdio transport's shutdown)."""
        child = self._child
        if child is None:
            return
        try:
            child.wait(SHUTDOWN_GRACE_S)
        except subprocess.TimeoutExpired:
            self._signalled = True
            with contextlib.suppress(ProcessLookupError):
                child.terminate()
            self._kill_after_grace()

    # -- the two directions ----------------------------------------------------------------

    def _pump(self, source: int, direction: Direction, destination: int) -> None:
        """Relay `source` to `destination` frame by frame until end of input. Once the
        destination is gone, frames are still audited: the peer did send them."""
        framer = LineFramer(self.max_line)
        broken = False
        while True:
            try:
                chunk = os.read(source, READ_SIZE)
            except OSError:
                chunk = b""
            for frame in framer.feed(chunk) if chunk else _finished(framer):
                if broken:
                    self._audit_only(frame, direction)
                else:
                    broken = not self._handle(frame, direction, destination)
            if not chunk:
                return

    def _pump_client_to_server(self) -> None:
        assert self._child is not None and self._child.stdin is not None
        self._pump(self._client_in, "client_to_server", self._child.stdin.fileno())
        # Client closed its end: shut the child down the way the spec tells a client to.
        self._gone("client")
        with contextlib.suppress(OSError):
            self._child.stdin.close()
        self._escalate_shutdown()

    def _pump_server_to_client(self) -> None:
        assert self._child is not None and self._child.stdout is not None
        self._pump(self._child.stdout.fileno(), "server_to_client", self._client_out)
        self._gone("server")  # its output ended: it can answer nothing more

    # -- per frame -------------------------------------------------------------------------

    def _parse(self, frame: Frame, direction: Direction) -> list[WireMessage]:
        now = time.time()
        if frame.complete:
            return parse_line(frame.data, direction, now)
        if frame.line_size:  # the last piece of an oversized line
            return [WireMessage(direction, now, frame.line_size, problem="oversized")]
        return []

    def _handle(self, frame: Frame, direction: Direction, out_fd: int) -> bool:
        """Forward one frame and audit it. Returns False once the destination is gone."""
        messages = self._parse(frame, direction)
        with self._lock:
            done = [exchange for m in messages for exchange in self._pairer.feed(m)]
            session = self._pairer.session
            started = (
                [s for m in messages if (s := self._pairer.started(m)) is not None]
                if self.strict
                else []
            )
        if self.strict and (started or any(e.kind == "call" for e in done)):
            return self._handle_strict(frame, messages, done, started, session, out_fd)
        ok = self._forward(out_fd, frame.data)
        for exchange in done:
            self.sink.record(exchange, session)
        return ok

    def _forward(self, fd: int, data: bytes) -> bool:
        if not data:
            return True
        try:
            with self._out_lock:
                _write_all(fd, data)
        except OSError:  # the reader is gone: the bytes fail exactly as they would without us
            return False
        return True

    def _audit_only(self, frame: Frame, direction: Direction) -> None:
        with self._lock:
            done = [e for m in self._parse(frame, direction) for e in self._pairer.feed(m)]
            session = self._pairer.session
        for exchange in done:
            self.sink.record(exchange, session)

    def _handle_strict(
        self,
        frame: Frame,
        messages: list[WireMessage],
        done: list[Exchange],
        started: list[Exchange],
        session: SessionFacts,
        out_fd: int,
    ) -> bool:
        """Forward only once the records are durable; otherwise answer with an error."""
        futures = [self.sink.record(e, session) for e in (*started, *done)]
        try:
            for future in futures:
                future.result(timeout=STRICT_COMMIT_TIMEOUT_S)
        except Exception as exc:
            return self._refuse(messages, done, session, out_fd, str(exc))
        return self._forward(out_fd, frame.data)

    def _refuse(
        self,
        messages: list[WireMessage],
        done: list[Exchange],
        session: SessionFacts,
        out_fd: int,
        reason: str,
    ) -> bool:
        back_fd = self._client_out if out_fd != self._client_out else self._child_in_fd()
        for m in messages:
            obj = m.obj or {}
            if "method" in obj and "id" in obj:
                # A request we could not record: answer it ourselves, never forward it.
                reply = _error_reply(obj["id"], reason)
                with self._lock:
                    closed = self._pairer.refuse(
                        m,
                        WireMessage(
                            _reverse(m.direction), time.time(), len(reply), obj=json.loads(reply)
                        ),
                    )
                if closed is not None:
                    self.sink.record(closed, session)
                self._forward(back_fd, reply)
        for exchange in done:
            response = exchange.response.obj if exchange.response else None
            if exchange.kind == "call" and response is not None and "id" in response:
                # A result we could not record is withheld; its caller gets an error instead.
                self.sink.lifecycle(
                    "response_withheld", {"event_id": exchange.event_id, "reason": reason[:200]}
                )
                self._forward(out_fd, _error_reply(response["id"], reason))
        return True

    def _child_in_fd(self) -> int:
        assert self._child is not None and self._child.stdin is not None
        return self._child.stdin.fileno()


def ended_by(first_gone: Side | None, status: int, *, signalled: bool) -> EndedBy:
    """How calls still open when the child is gone ended, by cause rather than by what is
    true when they are finally closed (seconds later if a grandchild holds the pipes, when
    the client may well have quit too): the client leaving while the server was still there
    cancels them; the server ending first (exit, crash, its output closed), or dying after
    the client left of a signal wrap never sent (a crash, not our shutdown), is a transport
    error."""
    crashed = status < 0 and not signalled
    return "cancelled" if first_gone == "client" and not crashed else "transport_error"


def _reverse(direction: Direction) -> Direction:
    return "server_to_client" if direction == "client_to_server" else "client_to_server"


def _finished(framer: LineFramer) -> list[Frame]:
    tail = framer.finish()
    return [tail] if tail is not None else []
