"""The local spool: where a writer's rows go, fsync'd, while the shared store is unreachable.

`SpoolingStore` wraps a store. While the store accepts appends it is a pass-through. When an
append fails, the batch is written to the spool file (length, CRC-32, JSON record; fsync'd)
and the append succeeds: the rows are durable on local disk, already sequenced and chained, so
the chain has no gap and strict callers may proceed. Later batches go to the spool behind
them, so order is kept. Every `RETRY_INTERVAL_S` an append first tries to drain the spool, in
order, skipping rows the store already holds (a drain cut short by a crash is redone safely),
then truncates it.

Only `StoreUnavailableError` is spooled; any other store error (a duplicate seq) is raised
as it is. If the spool is full, the append raises `SpoolFullError` (a `StoreError`): the
ledger writer then keeps the rows in memory and retries them in order, failing their futures
at once, which is what makes strict mode refuse calls and batched mode carry on. Outage
transitions are reported to `on_outage` (``"degraded"`` with the error, ``"spool_full"``,
``"recovered"`` with the outage length and the number of spooled rows) and on stderr.

Each process owns its spool file under an exclusive `flock`; a spool left unlocked was
abandoned by a dead process and is drained by the next process that opens the store.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from mcp_notary.errors import StoreError
from mcp_notary.ledger.private import make_private_dir, open_private
from mcp_notary.ledger.store import (
    CheckpointRow,
    EventFilter,
    EventRow,
    LeafRecord,
    PrunedRange,
    Store,
    StreamHead,
    StreamInfo,
)

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
RETRY_INTERVAL_S = 1.0
DRAIN_CHUNK = 1000
_HEADER = struct.Struct(">II")  # payload length, CRC-32 of the payload
_BYTES_FIELDS = ("body", "leaf_hash", "chain_hash")


class StoreUnavailableError(StoreError):
    """The store cannot be reached (as opposed to refusing the data): the only failure the
    spool absorbs. A refused append, such as a duplicate seq, is never spooled."""


class SpoolFullError(StoreError):
    """The store is unreachable and the local spool has no room left."""


OutageHook = Callable[[str, dict[str, Any]], None]


def encode_row(row: EventRow) -> bytes:
    fields = dict(row.__dict__)
    for name in _BYTES_FIELDS:
        fields[name] = base64.b64encode(fields[name]).decode()
    payload = json.dumps(fields, separators=(",", ":")).encode()
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode_rows(data: bytes) -> list[EventRow]:
    """Every whole record of a spool file. A torn or corrupt tail (a crash mid-write, before
    the fsync that would have acknowledged it) ends the read."""
    rows: list[EventRow] = []
    at = 0
    while at + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, at)
        payload = data[at + _HEADER.size : at + _HEADER.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        fields = json.loads(payload)
        for name in _BYTES_FIELDS:
            fields[name] = base64.b64decode(fields[name])
        rows.append(EventRow(**fields))
        at += _HEADER.size + length
    return rows


class SpoolFile:
    """One process's spool: an append-only file it holds an exclusive lock on."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        make_private_dir(directory)
        self.max_bytes = max_bytes
        name = f"{os.getpid()}-{time.time_ns()}"
        temp = directory / f"{name}.tmp"
        fd = open_private(temp, os.O_RDWR | os.O_APPEND | os.O_EXCL)
        self._file: BinaryIO = os.fdopen(fd, "a+b")  # held for the process' life
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Renamed only once locked, so no other process ever sees it unlocked and alive.
        self.path = directory / f"{name}.spool"
        os.replace(temp, self.path)
        _fsync_dir(directory)
        self.size = 0

    def append(self, rows: Sequence[EventRow]) -> None:
        data = b"".join(encode_row(r) for r in rows)
        if self.size + len(data) > self.max_bytes:
            raise SpoolFullError(f"audit spool {self.path} is full ({self.max_bytes} bytes)")
        try:
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:  # e.g. the disk is full: treat as a full spool
            self._file.truncate(self.size)
            raise SpoolFullError(f"cannot write audit spool {self.path}: {exc}") from exc
        self.size += len(data)

    def rows(self) -> list[EventRow]:
        self._file.seek(0)
        return decode_rows(self._file.read())

    def clear(self) -> None:
        self._file.truncate(0)
        os.fsync(self._file.fileno())
        self.size = 0

    def close(self) -> None:
        """Remove the file if empty (a non-empty one is left for the next process)."""
        if self._file.closed:
            return
        if self.size == 0:
            self.path.unlink(missing_ok=True)
        self._file.close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def drain_rows(store: Store, rows: Sequence[EventRow]) -> int:
    """Append `rows` (in order) that the store does not hold yet; returns how many."""
    heads: dict[str, int] = {}
    todo: list[EventRow] = []
    for row in rows:
        if row.stream not in heads:
            heads[row.stream] = store.head(row.stream).seq
        if row.seq > heads[row.stream]:
            todo.append(row)
    for start in range(0, len(todo), DRAIN_CHUNK):
        store.append_batch(todo[start : start + DRAIN_CHUNK])
    return len(todo)


def drain_abandoned(store: Store, directory: Path) -> int:
    """Drain and remove spools of dead processes (the ones nobody holds a lock on)."""
    if not directory.is_dir():
        return 0
    drained = 0
    for path in sorted(directory.glob("*.spool")):
        try:
            handle = open(path, "r+b")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            continue  # drained by another process just now
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its writer is alive
            drained += drain_rows(store, decode_rows(handle.read()))
            path.unlink(missing_ok=True)
    return drained


def _warn(message: str) -> None:
    print(f"mcp-notary: {message}", file=sys.stderr, flush=True)


class SpoolingStore:
    """A `Store` whose appends survive the inner store being unreachable (see module doc)."""

    def __init__(
        self,
        inner: Store,
        directory: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_outage: OutageHook | None = None,
    ) -> None:
        self.inner = inner
        self.directory = directory
        self.on_outage = on_outage
        self._lock = threading.Lock()
        drained = drain_abandoned(inner, directory)
        if drained:
            _warn(f"drained {drained} spooled events of an earlier process into the store")
        self._spool = SpoolFile(directory, max_bytes)
        self._outage_started: float | None = None
        self._next_try = 0.0
        self._full_reported = False

    @property
    def degraded(self) -> bool:
        return self._outage_started is not None

    def _report(self, what: str, details: dict[str, Any]) -> None:
        _warn(f"audit {what}: {json.dumps(details)}")
        if self.on_outage is not None:
            try:
                self.on_outage(what, details)
            except Exception as exc:  # a broken observer must not lose events
                _warn(f"outage hook failed: {exc!r}")

    def _due(self) -> bool:
        """Whether to try the inner store now: always when healthy, once per retry interval
        during an outage (a down database must not slow every append)."""
        return self._outage_started is None or time.monotonic() >= self._next_try

    def _failed(self, exc: StoreUnavailableError) -> None:
        self._next_try = time.monotonic() + RETRY_INTERVAL_S
        if self._outage_started is None:
            self._outage_started = time.monotonic()
            self._full_reported = False
            self._report("degraded", {"error": str(exc)[:500]})

    def _drain(self) -> None:
        """Move spooled rows into the inner store, in order (caller holds the lock)."""
        if self._spool.size:
            spooled = drain_rows(self.inner, self._spool.rows())
            self._spool.clear()
            self._recovered(spooled)

    def append_batch(self, rows: Sequence[EventRow]) -> None:
        with self._lock:
            if self._due():
                try:
                    self._drain()
                    self.inner.append_batch(rows)
                    self._recovered(0)
                    return
                except StoreUnavailableError as exc:
                    self._failed(exc)
            try:
                self._spool.append(rows)
            except SpoolFullError as exc:
                if not self._full_reported:
                    self._full_reported = True
                    self._report("spool_full", {"error": str(exc)[:500]})
                raise

    def _settled(self) -> Store:
        """The inner store, once no spooled rows are missing from it: a read never sees a
        stream with a hole where spooled rows will go (a checkpointer would call that
        tampering)."""
        if self._spool.size:
            with self._lock:
                if not self._due():
                    raise StoreUnavailableError("the audit store is unavailable; retrying soon")
                try:
                    self._drain()
                except StoreUnavailableError as exc:
                    self._failed(exc)
                    raise
        return self.inner

    def _recovered(self, spooled: int) -> None:
        if self._outage_started is None:
            return
        seconds = time.monotonic() - self._outage_started
        self._outage_started = None
        self._report("recovered", {"outage_s": round(seconds, 3), "spooled_events": spooled})

    # -- everything else reads or writes the inner store directly ------------------------------

    def create_stream(self, info: StreamInfo) -> None:
        self.inner.create_stream(info)

    def streams(self) -> list[StreamInfo]:
        return self._settled().streams()

    def head(self, stream: str) -> StreamHead:
        return self._settled().head(stream)

    def scan(self, stream: str, from_seq: int = 1) -> Iterator[EventRow]:
        return self._settled().scan(stream, from_seq)

    def find(self, where: EventFilter, limit: int | None = None) -> list[EventRow]:
        return self._settled().find(where, limit)

    def get(self, event_id: str) -> EventRow | None:
        return self._settled().get(event_id)

    def count(self, stream: str | None = None) -> int:
        return self._settled().count(stream)

    def stream_names(self) -> list[str]:
        return self._settled().stream_names()

    def scan_leaves(
        self, stream: str, from_seq: int = 1, to_seq: int | None = None, *, bodies: bool = True
    ) -> Iterator[list[LeafRecord]]:
        return self._settled().scan_leaves(stream, from_seq, to_seq, bodies=bodies)

    def leaf_hashes(self, stream: str, from_seq: int, to_seq: int) -> list[tuple[int, bytes]]:
        return self._settled().leaf_hashes(stream, from_seq, to_seq)

    def append_checkpoint(self, row: CheckpointRow) -> None:
        self.inner.append_checkpoint(row)

    def prune(self, ranges: Mapping[str, Sequence[tuple[int, int]]], run_id: str) -> int:
        return self._settled().prune(ranges, run_id)

    def pruned_ranges(self, stream: str | None = None) -> list[PrunedRange]:
        return self._settled().pruned_ranges(stream)

    def put_subject_key(self, key_id: str, wrapped: bytes, created_at: str) -> bytes:
        return self.inner.put_subject_key(key_id, wrapped, created_at)

    def subject_key(self, key_id: str) -> bytes | None:
        return self.inner.subject_key(key_id)

    def subject_key_ids(self, prefix: str) -> list[str]:
        return self.inner.subject_key_ids(prefix)

    def delete_subject_key(self, key_id: str) -> bool:
        return self.inner.delete_subject_key(key_id)

    def checkpoints(self, stream: str | None = None, min_size: int = 0) -> list[CheckpointRow]:
        return self._settled().checkpoints(stream, min_size)

    def latest_checkpoint(self, stream: str) -> CheckpointRow | None:
        return self._settled().latest_checkpoint(stream)

    def close(self) -> None:
        """Try once more to drain; a spool that cannot be drained stays for the next process."""
        with self._lock:
            if self._spool.size:
                try:
                    spooled = drain_rows(self.inner, self._spool.rows())
                    self._spool.clear()
                    self._recovered(spooled)
                except StoreError as exc:
                    _warn(f"audit spool {self._spool.path} kept for the next start: {exc}")
            self._spool.close()
            with contextlib.suppress(OSError):  # only if empty: other processes' spools stay
                self.directory.rmdir()
        self.inner.close()
