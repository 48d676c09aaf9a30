"""Real processes for the HTTP proxy tests: upstream MCP servers and `mcp-notary proxy`, all on
loopback, each started on a free port, waited for, and stopped by its own pid."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
MCPSERVER_SCRIPT = SUPPORT / "http_mcpserver.py"
EVERYTHING_SCRIPT = SUPPORT / "http_everything_server.py"
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"process exited with {proc.returncode} before listening:\n{out}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {LOOPBACK}:{port} after {timeout}s")


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    path: str = "/mcp"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{self.path}"

    @property
    def origin(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def output(self) -> str:
        """What the process printed so far (a file, so a chatty process never blocks)."""
        return self.log.read_text(errors="replace")


def stop(proc: subprocess.Popen[bytes], grace: float = 8.0) -> int:
    """SIGTERM (graceful: the proxy flushes its audit), then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    port: int,
    *,
    path: str = "/mcp",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[Running]:
    with tempfile.NamedTemporaryFile(prefix=f"proc-{port}-", suffix=".log", delete=False) as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    log_path = Path(log.name)
    try:
        wait_for_port(port, proc, log_path)
        yield Running(proc, port, log_path, path)
    finally:
        stop(proc)
        log_path.unlink(missing_ok=True)


def mcpserver_argv(port: int, *options: str) -> list[str]:
    return [sys.executable, str(MCPSERVER_SCRIPT), "--port", str(port), *options]


def everything_py_argv(port: int) -> list[str]:
    return [sys.executable, str(EVERYTHING_SCRIPT), "--port", str(port), "--log-level", "WARNING"]


def proxy_argv(
    notary_argv: Sequence[str], upstream: str, port: int, store: Path, *options: str
) -> list[str]:
    return [
        *notary_argv,
        "proxy",
        "--upstream",
        upstream,
        "--listen",
        f"{LOOPBACK}:{port}",
        "--store",
        str(store),
        *options,
    ]
