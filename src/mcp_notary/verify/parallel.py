"""Step 1 of verification spread over several processes, for big SQLite streams.

Reading and hashing a million stored events is bound by SQLite reads and SHA-256, both of
which hold the GIL, so one process tops out well below what the hardware can do. Here each
worker process opens the store read-only, checks one range of rows with a chunk
:class:`~mcp_notary.verify.trail.StreamChecker`, and returns its findings and leaf hashes;
the parent absorbs the chunks in seq order into the stream's tree, so the result is the same
as a sequential pass. Chunks hold a power-of-two number of rows, so while the stream is
intact each chunk's leaves form one perfect subtree of the stream's tree: a worker hashes its
subtree and the parent only combines a few dozen subtree roots. The one approximation: a
time regression is measured against the event just before a chunk rather than the latest
start before it.

This module does I/O (it opens the store in each worker); the checks themselves stay pure.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mcp_notary.ledger.canonical import GENESIS_HASH
from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.verify.chain import Finding
from mcp_notary.verify.trail import ChunkResult, StreamChecker

__all__ = ["PARALLEL_MIN_ROWS", "ParallelRowChecker"]

PARALLEL_MIN_ROWS = 200_000
"""Streams smaller than this are checked in-process: starting workers costs more."""
CHUNK_ROWS = 1 << 16


def _check_chunk(
    path: str, stream: str, first_seq: int, last_seq: int, wanted: list[int]
) -> ChunkResult:
    store = SQLiteStore(path, readonly=True)
    try:
        prev, high = store.row_before(stream, first_seq) or (GENESIS_HASH, "")
        checker = StreamChecker(stream, wanted, chunk_start=(first_seq, prev, high))
        findings: list[Finding] = []
        for page in store.scan_leaves(stream, first_seq, last_seq):
            findings += checker.feed(page)
        return checker.chunk_result(findings)
    finally:
        store.close()


class ParallelRowChecker:
    """Runs step 1 of one stream over worker processes (``workers`` default: CPU count)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        workers: int | None = None,
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        if chunk_rows < 1 or chunk_rows & (chunk_rows - 1):
            raise ValueError("chunk_rows must be a power of two (chunks are perfect subtrees)")
        self.path = str(Path(path))
        self.workers = workers or os.cpu_count() or 1
        self.chunk_rows = chunk_rows
        self._pool: ProcessPoolExecutor | None = None

    def _boundaries(self, stream: str) -> list[int]:
        """The seq of every CHUNK_ROWS-th stored row: chunks start on stored rows."""
        store = SQLiteStore(self.path, readonly=True)
        try:
            return store.seq_boundaries(stream, self.chunk_rows)
        finally:
            store.close()

    def run(
        self,
        stream: str,
        wanted: set[int],
        on_rows: Callable[[int], None] | None = None,
    ) -> tuple[StreamChecker, list[Finding]]:
        """A checker that has seen every row of ``stream``, and its findings."""
        checker = StreamChecker(stream, wanted)
        findings: list[Finding] = []
        starts = self._boundaries(stream)
        if not starts:
            return checker, findings
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn")
            )
        ranges = [
            (first, (starts[i + 1] - 1) if i + 1 < len(starts) else 2**62)
            for i, first in enumerate(starts)
        ]
        futures = [
            self._pool.submit(
                _check_chunk,
                self.path,
                stream,
                first,
                last,
                sorted(s for s in wanted if first <= s <= last),
            )
            for first, last in ranges
        ]
        for future in futures:
            chunk = future.result()
            findings += checker.absorb(chunk)
            if on_rows is not None:
                on_rows(chunk.rows)
        return checker, findings

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> ParallelRowChecker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
