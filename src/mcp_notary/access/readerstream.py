"""The store's shared reader stream: where short-lived readers (every `mcp-notary events`,
`show`, `export`, `report`... run) append their `audit_access` records, so the number of
streams follows the long-lived writers, not the reads.

Any number of reader processes, on any host, append to the newest stream named
``readers/<id>``. An append is optimistic: read the stream's head, chain the record onto it
and insert; if another reader took that seq first, the store refuses the insert (the
primary key) and the record is chained again onto the new head. Each record is durable
before the read it records is answered, as with a stream of one's own. On close, the reader
signs a checkpoint of the stream as stored (:func:`seal_stream`, which first checks the
stream still matches its latest checkpoint, so it never signs over tampering), covering its
own records and any a crashed reader left unsigned. Past `MAX_EVENTS` records a new stream
is started, so sealing (which rereads the stream) stays cheap.
"""

from __future__ import annotations

import os
import random
import socket
import sys
import threading
import time
from concurrent.futures import Future
from typing import Any

from mcp_notary.errors import NotaryError, StoreError
from mcp_notary.events.build import CaptureContext
from mcp_notary.events.model import EventDraft, Principal, payload_free_event
from mcp_notary.ids import new_event_id, utc_timestamp
from mcp_notary.ledger.checkpointer import CheckpointSettings, seal_stream
from mcp_notary.ledger.store import EventRow, Store, StreamInfo, as_hashed, prepare_row
from mcp_notary.recorder import process_start_token
from mcp_notary.vocabulary import Direction, Kind, Outcome

__all__ = ["MAX_EVENTS", "READER_PREFIX", "SharedReaderStream"]

READER_PREFIX = "readers/"
READER_LABEL = "mcp-notary reads"
MAX_EVENTS = 10_000
_READ_KINDS = frozenset({"audit_access", "retention", "legal_hold", "erasure"})
_ATTEMPTS = 200


class SharedReaderStream:
    """The recorder half of a reader (what `ReadAuditor` calls), on the shared stream."""

    def __init__(
        self,
        store: Store,
        context: CaptureContext,
        *,
        label: str,
        checkpointing: CheckpointSettings | None = None,
    ) -> None:
        self.store = store
        self.context = context
        self.label = label
        self.checkpointing = checkpointing
        self.stream = ""
        self._lock = threading.Lock()
        self._appended = False

    def start(self, *, announce: bool = False) -> None:
        """Find the stream to append to (or start one). Readers make no lifecycle records."""
        self.stream = self._current() or self._create()

    def _current(self) -> str | None:
        # The names come from the events as much as from the streams table, and only a
        # stream that holds nothing but readers' records is joined: an edited registration
        # cannot steer reads into a capture process's stream.
        names = [s for s in self.store.stream_names() if s.startswith(READER_PREFIX)]
        for name in sorted(names, reverse=True):
            head = self.store.head(name)
            if head.seq >= MAX_EVENTS:
                return None
            first = next(iter(self.store.scan(name)), None)
            if first is None or as_hashed(first).kind in _READ_KINDS:
                return name
        return None

    def _create(self) -> str:
        stream = READER_PREFIX + new_event_id()
        pid = os.getpid()
        self.store.create_stream(
            StreamInfo(
                stream, utc_timestamp(), socket.gethostname(), pid, process_start_token(pid),
                READER_LABEL,
            )
        )  # fmt: skip
        return stream

    def record_event(
        self,
        kind: Kind,
        details: dict[str, Any],
        *,
        principal: Principal | None = None,
        method: str | None = None,
        outcome: Outcome | None = None,
        tool: str | None = None,
        jsonrpc_id: str | int | None = None,
        direction: Direction | None = None,
    ) -> Future[Any]:
        """Append a payload-free record now; the future is already resolved (or failed)."""
        done: Future[Any] = Future()
        try:
            event = payload_free_event(
                EventDraft(
                    kind=kind,
                    timestamp=utc_timestamp(),
                    principal=principal or self.context.principal,
                    transport=self.context.transport,
                    method=method,
                    tool=tool,
                    jsonrpc_id=jsonrpc_id,
                    direction=direction,
                    outcome=outcome,
                    details=details,
                )
            )
            with self._lock:
                done.set_result(self._append(event))
        except Exception as exc:
            done.set_exception(exc)
        return done

    def _append(self, event: Any) -> EventRow:
        last_error: StoreError | None = None
        for _ in range(_ATTEMPTS):
            head = self.store.head(self.stream)
            row = prepare_row(event, self.stream, head)
            try:
                self.store.append_batch([row])
            except StoreError as exc:
                if self.store.head(self.stream).seq == head.seq:
                    raise  # not a lost race: the store refused for another reason
                last_error = exc
                time.sleep(random.uniform(0, 0.005))  # another reader took the seq: again
                continue
            self._appended = True
            return row
        raise StoreError(f"too many concurrent readers on {self.stream}: {last_error}")

    def close(self, reason: str = "reader_closed", details: dict[str, Any] | None = None) -> None:
        """Sign a checkpoint of the stream as stored, if this reader appended to it."""
        if not self._appended or self.checkpointing is None:
            return
        self._appended = False
        try:
            seal_stream(self.store, self.stream, self.checkpointing)
        except NotaryError as exc:
            print(
                f"mcp-notary: cannot checkpoint the reader stream {self.stream}: {exc}",
                file=sys.stderr,
                flush=True,
            )
