"""The ledger writer: one thread per process drains a queue and appends in group commits.

Invariants:
- *submitted*: the event is in the queue; `submit` never blocks the relay.
- *sequenced*: the writer thread gave it the stream's next seq and chain hash; seq order is
  submit order.
- *durable*: its batch committed; the future returned by `submit` resolves then, and
  `on_committed` (if given) sees the batch, in seq order, before the next batch is written
  (this is how the checkpointer learns of new leaves).
If the store fails, sequenced events stay queued in order and are retried, so the chain never
gets a gap; their futures fail at once, so strict callers can refuse the call.
"""

from __future__ import annotations

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

_STOP = object()
_Submitted = tuple[AuditEvent, "Future[EventRow]"]


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
    observer never stops the audit trail)."""

    def __init__(
        self,
        store: Store,
        stream: str,
        *,
        head: StreamHead | None = None,
        on_recovered: Callable[[str, float], None] | None = None,
        on_committed: Callable[[Sequence[EventRow]], None] | None = None,
        max_wait_s: float = BATCH_MAX_WAIT_S,
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
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mcp-notary-writer", daemon=True)
        self._thread.start()

    @property
    def head(self) -> StreamHead:
        """The last sequenced (not necessarily durable) position of the stream."""
        return self._head

    def submit(self, event: AuditEvent) -> Future[EventRow]:
        """Queue an event; the future resolves with its row once it is durable."""
        future: Future[EventRow] = Future()
        if self._closed:
            future.set_exception(StoreError("ledger writer is closed"))
            return future
        self._queue.put((event, future))
        return future

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush everything queued, then stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
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
                    if len(pending) >= BATCH_MAX_EVENTS:
                        break
                    remaining = deadline - time.monotonic()
                    try:
                        item = (
                            self._queue.get(timeout=remaining)
                            if remaining > 0
                            else self._queue.get_nowait()
                        )
                    except queue.Empty:
                        item = None
            if not pending:
                continue
            try:
                self.store.append_batch([p.row for p in pending])
            except Exception as exc:
                if outage is None:
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
            if outage is not None:
                error, started = outage
                outage = None
                print("mcp-notary: audit store recovered", file=sys.stderr)
                if self._on_recovered is not None:
                    self._on_recovered(error, time.monotonic() - started)
