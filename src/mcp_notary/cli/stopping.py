"""Stopping a long-running command (proxy, serve) cleanly on SIGINT or SIGTERM.

uvicorn shuts down gracefully on those signals, then re-raises the signal to the handler that
was there before it. With the default SIGTERM handler the process would die right there, before
its audit stream is flushed and sealed; with this one the signal becomes an exception, so the
command's `finally` still records the stop and writes the final checkpoint.
"""

from __future__ import annotations

import signal


class Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise(signum: int, _frame: object) -> None:
    raise Stopped(signum)


def stop_on_signals() -> None:
    """Turn SIGINT and SIGTERM into `Stopped` (call before starting the server)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise)
