"""Retention on a schedule, for the long-running commands (`proxy`, `serve`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mcp_notary.ledger.checkpointer import DEFAULT_ORIGIN_PREFIX, KeySigner
from mcp_notary.ledger.keys import load_or_create_signing_key
from mcp_notary.ledger.store import Store
from mcp_notary.lifecycle.archive import open_archive
from mcp_notary.lifecycle.policy import RetentionPolicy
from mcp_notary.lifecycle.retention import run_retention

__all__ = ["RetentionSchedule", "scheduled_retention"]


class RetentionSchedule:
    """Runs `run` every `every_s` seconds on a daemon thread (first run after one interval);
    a failed run is reported through `on_error` and retried at the next tick."""

    def __init__(
        self, every_s: float, run: Callable[[], object], on_error: Callable[[str], None]
    ) -> None:
        self.every_s = every_s
        self._run = run
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mcp-notary-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self._run()
            except Exception as exc:  # the schedule must outlive one bad run
                self._on_error(f"scheduled retention failed: {exc}")

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)


def scheduled_retention(
    policy: RetentionPolicy,
    every_hours: float,
    store: Store,
    record: Callable[[dict[str, Any]], object],
    on_error: Callable[[str], None],
) -> RetentionSchedule:
    """A started schedule that applies `policy` to `store` (the proxy's or `serve`'s own store),
    recording each run through `record` and signing segments with the checkpoint key file."""
    archive = open_archive(policy.archive) if policy.archive else None

    def run_once() -> None:
        run_retention(
            store,
            policy,
            datetime.now(UTC),
            archive=archive,
            signer=lambda: KeySigner(load_or_create_signing_key(None)),
            origin_prefix=DEFAULT_ORIGIN_PREFIX,
            record=record,
        )

    schedule = RetentionSchedule(every_hours * 3600, run_once, on_error)
    schedule.start()
    return schedule
