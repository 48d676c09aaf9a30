"""The ledger writer: one thread per process drains a queue and appends in group commits.

Invariants:
- *submitted*: the event is in the queue. `submit` returns at once unless the writer is
  behind (backpressure): while `BacklogLimit.events` submitted events are not yet durable, or
  the oldest of them was submitted `BacklogLimit.seconds` ago, `submit` waits until the writer
  catches up, so what a crash can lose stays bounded. It never waits on the writer's own
  thread, nor while the store is failing (an outage must not stop traffic).
- *sequenced*: the writer thread gave it the stream's next seq and chain hash; seq order is
  submit order.
- *durable*: its batch committed; the future returned by `submit` resolves then, and
  `on_committed` (if given) sees the batch, in seq order, before the next batch is written
  (this is how the checkpointer learns of new leaves).
If the store fails, sequenced events stay queued in order and are retried, so the chain never
gets a gap; their futures fail at once, so strict callers can refuse the call.
"""

from __future__ import annotations

import collections
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from mcp_notary.errors import StoreError
from mcp_notary.events.model import AuditEvent
from mcp_notary.ledger.store import EventRow, Store, StreamHead, prepare_row

BATCH_MAX_EVENTS = 256
BATCH_MAX_WAIT_S = 0.010
RETRY_INTERVAL_S = 0.5
# Backpressure: how far the writer may fall behind before `submit` waits. Two full batches,
# or five batch windows of time (a batch is normally durable within one window and a commit).
MAX_BEHIND_EVENTS = 2 * BATCH_MAX_EVENTS
MAX_BEHIND_S = 0.050
# A waiting submitter rechecks this often that the writer thread still runs.
_WAIT_CHECK_S = 0.5

_STOP = object()
_Submitted = tuple[AuditEvent, "Future[EventRow]"]


@dataclass(frozen=True)
class BacklogLimit:
    """How far behind the writer may fall (events submitted but not yet durable) before
    `submit` waits: a count, and the age of the oldest one."""

    events: int = MAX_BEHIND_EVENTS
    seconds: float = MAX_BEHIND_S

    def __post_init__(self) -> None:
        if self.events < 1 or self.seconds <= 0:
            raise ValueError("a backlog limit needs at least one event and a positive time")


@dataclass(frozen=True)
class Backpressure:
    """One wait of a submitter for the writer: how far behind it was when the wait began."""

    behind_events: int
    behind_s: float
    limit: BacklogLimit


@dataclass
class _Pending:
    row: EventRow
    future: Future[EventRow]


class LedgerWriter:
    """Appends `AuditEvent`s to one stream of a store.

    `on_recovered` is called (on the writer thread) with the outage's first error and duration
    after a failed store accepts writes again, so the caller can record the outage.
    `on_committed` is called (on the writer thread) with every durable batch; it must be quick
    and must not raise (an exception is reported to stderr and otherwise ignored, so a broken
    observer never stops the audit trail).
    `on_backpressure` is called (on the submitting thread, before it waits) when a submitter
    has to wait for the writer; it may submit with ``wait=False`` and must not raise."""

    def __init__(
        self,
        store: Store,
        stream: str,
        *,
        head: StreamHead | None = None,
        on_recovered: Callable[[str, float], None] | None = None,
        on_committed: Callable[[Sequence[EventRow]], None] | None = None,
        max_wait_s: float = BATCH_MAX_WAIT_S,
        backlog: BacklogLimit | None = None,
        on_backpressure: Callable[[Backpressure], None] | None = None,
    ) -> None:
        self.store = store
        self.stream = stream
        self._head = head if head is not None else store.head(stream)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._on_recovered = on_recovered
        self._on_committed = on_committed
        # How long to hold a batch open for more events. Strict callers wait on every commit,
        # so they pass 0: a batch is then whatever queued up during the previous commit.
        self._max_wait_s = max_wait_s
        self.backlog = backlog or BacklogLimit()
        self._on_backpressure = on_backpressure
        # Submit times (monotonic) of the events not yet durable, oldest first: the backlog.
        self._behind: collections.deque[float] = collections.deque()
        self._backlog_cond = threading.Condition()
        self._waiting = 0  # submitters waiting for the backlog to shrink
        self._outage = False
        self.waits = 0
        """How many times a submitter waited for the writer (backpressure)."""
        self.waited_s = 0.0
        """How long submitters waited for the writer, in all."""
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mcp-notary-writer", daemon=True)
        self._thread.start()

    @property
    def head(self) -> StreamHead:
        """The last sequenced (not necessarily durable) position of the stream."""
        return self._head

    def submit(self, event: AuditEvent, *, wait: bool = True) -> Future[EventRow]:
        """Queue an event; the future resolves with its row once it is durable. Waits first
        while the writer is too far behind (see `BacklogLimit`), unless ``wait=False``."""
        future: Future[EventRow] = Future()
        if self._closed:
            future.set_exception(StoreError("ledger writer is closed"))
            return future
        with self._backlog_cond:
            if wait and threading.current_thread() is not self._thread:
                self._wait_for_writer()
                if self._closed:  # closed while we waited: nothing would write it now
                    future.set_exception(StoreError("ledger writer is closed"))
                    return future
            self._behind.append(time.monotonic())
        self._queue.put((event, future))
        return future

    def _too_far_behind(self) -> bool:
        if self._outage or self._closed or not self._behind:
            return False
        return (
            len(self._behind) >= self.backlog.events
            or time.monotonic() - self._behind[0] >= self.backlog.seconds
        )

    def _wait_for_writer(self) -> None:
        """Backpressure (called holding `_backlog_cond`): wait until the writer is within its
        backlog limit, the store fails, or the writer stops."""
        if not self._too_far_behind():
            return
        started = time.monotonic()
        pressure = Backpressure(len(self._behind), started - self._behind[0], self.backlog)
        if self._on_backpressure is not None:
            self._backlog_cond.release()  # the observer submits an event itself
            try:
                self._on_backpressure(pressure)
            except Exception as exc:  # an observer must never stop the relay
                print(f"mcp-notary: on_backpressure failed: {exc!r}", file=sys.stderr)
            finally:
                self._backlog_cond.acquire()
        self._waiting += 1
        try:
            while self._too_far_behind() and self._thread.is_alive():
                self._backlog_cond.wait(_WAIT_CHECK_S)
        finally:
            self._waiting -= 1
        self.waits += 1
        self.waited_s += time.monotonic() - started

    def _settle(self, count: int, *, outage: bool) -> None:
        """`count` more submitted events are durable (or failed for good); note the store's
        state; wake waiting submitters."""
        with self._backlog_cond:
            for _ in range(min(count, len(self._behind))):
                self._behind.popleft()
            self._outage = outage
            self._backlog_cond.notify_all()

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush everything queued, then stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._backlog_cond:
            self._backlog_cond.notify_all()  # nobody waits for a writer that is closing
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _sequence(self, item: _Submitted, pending: list[_Pending]) -> None:
        event, future = item
        try:
            row = prepare_row(event, self.stream, self._head)
        except Exception as exc:  # an unserialisable event must not kill the writer
            future.set_exception(exc)
            return
        self._head = StreamHead(row.seq, row.chain_hash)
        pending.append(_Pending(row, future))

    def _run(self) -> None:
        pending: list[_Pending] = []
        taken = 0  # events taken from the queue since the last commit
        stopping = False
        outage: tuple[str, float] | None = None
        shutdown_failures = 0
        while not (stopping and not pending):
            if not stopping:
                # Block for the first event, then gather more for up to `max_wait_s`.
                try:
                    item = self._queue.get(timeout=RETRY_INTERVAL_S if pending else None)
                except queue.Empty:
                    item = None
                deadline = time.monotonic() + self._max_wait_s
                while item is not None:
                    if item is _STOP:
                        stopping = True
                        break
                    self._sequence(item, pending)  # type: ignore[arg-type]
                    taken += 1
                    if len(pending) >= BATCH_MAX_EVENTS:
                        break
                    # A submitter waits for this batch: commit it now, hold nothing open.
                    remaining = 0.0 if self._waiting else deadline - time.monotonic()
                    try:
                        item = (
                            self._queue.get(timeout=remaining)
                            if remaining > 0
                            else self._queue.get_nowait()
                        )
                    except queue.Empty:
                        item = None
            if not pending:
                if taken:  # none of them could be sequenced; they are settled (failed)
                    self._settle(taken, outage=outage is not None)
                    taken = 0
                continue
            try:
                self.store.append_batch([p.row for p in pending])
            except Exception as exc:
                if outage is None:
                    self._settle(0, outage=True)  # submitters stop waiting for a failed store
                    outage = (str(exc), time.monotonic())
                    print(f"mcp-notary: audit store unavailable: {exc}", file=sys.stderr)
                for p in pending:
                    if not p.future.done():
                        p.future.set_exception(StoreError(f"audit store unavailable: {exc}"))
                if stopping:
                    # Give a failing store a few last chances on shutdown, then give up.
                    shutdown_failures += 1
                    if shutdown_failures >= 3:
                        return
                    time.sleep(RETRY_INTERVAL_S)
                continue
            if self._on_committed is not None:
                try:
                    self._on_committed([p.row for p in pending])
                except Exception as exc:  # an observer must never stop the trail
                    print(f"mcp-notary: on_committed failed: {exc!r}", file=sys.stderr)
            for p in pending:
                if not p.future.done():
                    p.future.set_result(p.row)
            pending = []
            self._settle(taken, outage=False)
            taken = 0
            if outage is not None:
                error, started = outage
                outage = None
                print("mcp-notary: audit store recovered", file=sys.stderr)
                if self._on_recovered is not None:
                    self._on_recovered(error, time.monotonic() - started)
