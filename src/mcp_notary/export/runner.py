"""The export loop: read events after the cursor, format, send, then advance the cursor."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from mcp_notary.export.cursor import Cursor
from mcp_notary.export.mapping import Formatter
from mcp_notary.export.sinks import Sink
from mcp_notary.ledger.store import EventRow, Store

BATCH = 500
Select = Callable[[EventRow], bool]


def _everything(row: EventRow) -> bool:
    return True


def export_once(
    store: Store,
    fmt: Formatter,
    sink: Sink,
    cursor: Cursor,
    *,
    since: str | None = None,
    select: Select = _everything,
) -> int:
    """Send every event past the cursor, stream by stream in seq order; returns how many were
    sent. Events filtered out (`since`, `select`) still move the cursor past them."""
    sent = 0
    for stream in store.stream_names():
        records: list[bytes] = []
        last = cursor.get(stream)
        for row in store.scan(stream, from_seq=cursor.get(stream) + 1):
            last = row.seq
            if (since is None or row.timestamp >= since) and select(row):
                records.append(fmt(json.loads(row.body)))
            if len(records) >= BATCH:
                sink.send(records)
                sent += len(records)
                records = []
                cursor.advance({stream: last})
        if records:
            sink.send(records)
            sent += len(records)
        if last != cursor.get(stream):
            cursor.advance({stream: last})
    return sent


def follow(
    store: Store,
    fmt: Formatter,
    sink: Sink,
    cursor: Cursor,
    stop: threading.Event,
    *,
    since: str | None = None,
    select: Select = _everything,
    interval: float = 1.0,
) -> int:
    """`export_once` every `interval` seconds until `stop` is set; returns the total sent."""
    total = 0
    while True:
        total += export_once(store, fmt, sink, cursor, since=since, select=select)
        if stop.wait(interval):
            return total
