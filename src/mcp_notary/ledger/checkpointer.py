"""Signed checkpoints of one stream, issued on a schedule and at close.

The writer hands every durable batch to :meth:`Checkpointer.committed` (on the writer
thread: O(log n) per leaf, no I/O). A checkpointer thread then publishes, Tessera style:

- *integrated*: the leaf is in the in-memory :class:`CompactRange`; nothing is rebuilt.
- *checkpointed*: a C2SP checkpoint ``<origin>\\n<size>\\n<root>\\n`` is signed and appended to
  the store's ``checkpoints`` table. This happens at most every ``interval_s`` (1 s) while
  the tree grows, at least every ``heartbeat_s`` (10 min) while it does not, and at close.
- *anchored*: each publisher (anchor directory, S3 Object Lock bucket, ...) received a copy.

Before signing, the checkpointer reads back what it wrote (``self_check``: by default the
newest row's leaf and chain hash, which any consistent rewrite or cut tail changes): if it is
not what this process wrote, ``on_alert`` is told (a break is never silent) and the
checkpoint still commits to what was written, so the verifier will name the modified rows.
Nothing here ever raises into the writer or the relay: failures go to ``on_error`` and are
retried at the next tick.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from mcp_notary.errors import IntegrityError
from mcp_notary.ids import utc_timestamp
from mcp_notary.ledger.checkpoint import Checkpoint, SignedNote
from mcp_notary.ledger.merkle import CompactRange, leaf_hash
from mcp_notary.ledger.signing import NoteSigner, sign_note
from mcp_notary.ledger.store import CheckpointRow, EventRow, Store

__all__ = [
    "DEFAULT_HEARTBEAT_S",
    "DEFAULT_INTERVAL_S",
    "DEFAULT_ORIGIN_PREFIX",
    "CheckpointSettings",
    "CheckpointSigner",
    "Checkpointer",
    "KeySigner",
    "Publisher",
    "seal_stream",
    "stream_origin",
]

SelfCheck = Literal["head", "full", "off"]
"""What the checkpointer reads back before signing: ``head`` (default) the newest row's
hashes, O(1); ``full`` the position and leaf hash of every row since the last checkpoint
(catches a deleted or edited row that was not rehashed, at a few percent of ingest CPU);
``off`` nothing."""

DEFAULT_INTERVAL_S = 1.0
DEFAULT_HEARTBEAT_S = 600.0
DEFAULT_ORIGIN_PREFIX = "mcp-notary"


def stream_origin(stream: str, prefix: str = DEFAULT_ORIGIN_PREFIX) -> str:
    """The checkpoint origin of a stream: ``<prefix>/<stream>``. Streams are never reused,
    so neither are origins (c2sp.org/tlog-checkpoint requires that)."""
    return f"{prefix.rstrip('/')}/{stream}"


class CheckpointSigner(Protocol):
    """Something that signs checkpoints: a key file in this process, or a separate signer."""

    @property
    def key_name(self) -> str:
        """The signed-note key name its signatures carry."""
        ...

    def sign_checkpoint(self, checkpoint: Checkpoint, new_leaves: Sequence[bytes]) -> SignedNote:
        """Sign ``checkpoint``. ``new_leaves`` are the leaf hashes appended since the last
        checkpoint this signer signed for the same origin, so a signer that keeps its own
        tree can refuse one that is not an extension of what it signed before."""
        ...


class KeySigner:
    """Signs with a private key held in this process (loaded from the key file)."""

    def __init__(self, signer: NoteSigner) -> None:
        self._signer = signer

    @property
    def key_name(self) -> str:
        return self._signer.name

    @property
    def vkey(self) -> str:
        return self._signer.vkey

    def sign_checkpoint(self, checkpoint: Checkpoint, new_leaves: Sequence[bytes]) -> SignedNote:
        return sign_note(checkpoint.to_body(), [self._signer])

    def __repr__(self) -> str:
        return f"KeySigner({self._signer!r})"


class Publisher(Protocol):
    """Where a stored checkpoint is copied next (an anchor). May do network I/O; runs on the
    checkpointer thread, never on the writer's or the relay's."""

    name: str

    def publish(self, row: CheckpointRow) -> None: ...


class Checkpointer:
    """Keeps one stream's tree and issues its checkpoints. See the module docstring."""

    def __init__(
        self,
        store: Store,
        stream: str,
        signer: CheckpointSigner,
        *,
        origin: str | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        publishers: Sequence[Publisher] = (),
        on_alert: Callable[[str], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        self_check: SelfCheck = "head",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.stream = stream
        self.origin = origin or stream_origin(stream)
        self.signer = signer
        self.interval_s = interval_s
        self.heartbeat_s = heartbeat_s
        self.publishers = list(publishers)
        self.self_check = self_check
        self._on_alert = on_alert
        self._on_error = on_error
        self._clock = clock
        self._cond = threading.Condition()
        self._tree = CompactRange()
        self._new_leaves: list[bytes] = []  # since the last signed checkpoint
        self._signed_size = 0  # an empty tree needs no checkpoint
        self._signed_at = clock()
        self._last: CheckpointRow | None = None
        self._closing = False
        self._failing: str | None = None
        self._thread: threading.Thread | None = None
        self._sign_lock = threading.Lock()
        self._last_row: tuple[int, bytes, bytes] | None = None

    # -- feeding --------------------------------------------------------------------------------

    def committed(self, rows: Sequence[EventRow]) -> None:
        """Take a durable batch (writer thread). Rows must continue the stream in seq order."""
        with self._cond:
            idle = self._tree.size == self._signed_size
            for row in rows:
                if row.seq != self._tree.size + 1:
                    self._alert(
                        f"checkpointer of {self.stream} expected seq {self._tree.size + 1} "
                        f"but the writer committed seq {row.seq}"
                    )
                    return
                self._tree.append(row.leaf_hash)
                self._new_leaves.append(row.leaf_hash)
            if rows:
                self._last_row = (rows[-1].seq, rows[-1].leaf_hash, rows[-1].chain_hash)
            if idle:
                # Only the first growth after a checkpoint moves the next one closer (from the
                # heartbeat to the interval); waking the thread on every batch would cost the
                # writer a GIL hand-off per batch for nothing.
                self._cond.notify()

    @property
    def size(self) -> int:
        """Leaves integrated so far."""
        with self._cond:
            return self._tree.size

    @property
    def last(self) -> CheckpointRow | None:
        """The last checkpoint this checkpointer stored."""
        return self._last

    # -- running --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the checkpointer thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="mcp-notary-checkpointer", daemon=True
            )
            self._thread.start()

    def close(self, timeout: float = 30.0) -> CheckpointRow | None:
        """Stop the thread and issue the final checkpoint (call after the writer flushed).
        Idempotent; returns the last stored checkpoint."""
        with self._cond:
            already = self._closing
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        if not already:
            self._issue(force=False)
        return self._last

    def _due_in(self, now: float) -> float:
        if self._tree.size != self._signed_size:
            return self._signed_at + self.interval_s - now
        return self._signed_at + self.heartbeat_s - now

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing:
                    wait = self._due_in(self._clock())
                    if wait <= 0:
                        break
                    self._cond.wait(min(wait, self.heartbeat_s))
                if self._closing:
                    return
            if not self._issue(force=True) and self._failing is not None:
                # Failed: back off one interval so a broken store or key is not hammered.
                with self._cond:
                    self._signed_at = self._clock()

    def checkpoint_now(self) -> CheckpointRow | None:
        """Sign and store a checkpoint of the current tree right away (tests, tools)."""
        self._issue(force=True)
        return self._last

    # -- issuing --------------------------------------------------------------------------------

    def _issue(self, *, force: bool) -> bool:
        """Sign, store and publish a checkpoint of the current tree. Without ``force`` only if
        the tree grew since the last one (or none was ever issued). True on success."""
        with self._sign_lock:
            with self._cond:
                size = self._tree.size
                if not force and size == self._signed_size:
                    return True
                root = self._tree.root()
                new_leaves = list(self._new_leaves)
                last_row = self._last_row
            try:
                if self.self_check == "full" and new_leaves:
                    self._check_stored(size - len(new_leaves), new_leaves)
                elif self.self_check == "head" and new_leaves and last_row is not None:
                    self._check_head(*last_row)
                checkpoint = Checkpoint(self.origin, size, root)
                note = self.signer.sign_checkpoint(checkpoint, new_leaves)
                row = CheckpointRow(
                    stream=self.stream,
                    origin=self.origin,
                    size=size,
                    root=root,
                    note=note.render(),
                    created_at=utc_timestamp(),
                )
                self.store.append_checkpoint(row)
            except Exception as exc:
                self._error(f"checkpoint of {self.stream} at size {size} failed: {exc}")
                return False
            with self._cond:
                del self._new_leaves[: len(new_leaves)]
                self._signed_size = size
                self._signed_at = self._clock()
                self._last = row
            if self._failing is not None:
                self._failing = None
            for publisher in self.publishers:
                try:
                    publisher.publish(row)
                except Exception as exc:
                    self._error(f"anchor {publisher.name} failed for size {size}: {exc}")
            return True

    def _check_head(self, seq: int, leaf: bytes, chain: bytes) -> None:
        """O(1) probe: the newest row this process wrote must still be in the store with the
        leaf and chain hash it was written with. Any consistent rewrite of the stream (an edit
        with the hashes recomputed onwards), or a cut tail, changes that row."""
        found = [
            r for page in self.store.scan_leaves(self.stream, seq, seq, bodies=False) for r in page
        ]
        if not found:
            self._alert(
                f"stream {self.stream}: seq {seq}, written by this process, vanished from the store"
            )
        elif found[0][3] != leaf or found[0][4] != chain:
            self._alert(
                f"stream {self.stream}: the stored hashes at seq {seq} are not the ones this "
                "process wrote (the stream was rewritten)"
            )

    def _check_stored(self, first_index: int, leaves: Sequence[bytes]) -> None:
        """Read back the positions and leaf hashes behind ``leaves`` and compare them with what
        this process wrote; alert on any difference. Bodies are not reread (that would cost
        as much as writing them): an edited body under an intact leaf hash is the watcher's
        and the verifier's to find, a consistently rehashed one is found here."""
        expected_seq = first_index + 1
        last_seq = first_index + len(leaves)
        stored = self.store.leaf_hashes(self.stream, expected_seq, last_seq)
        if (
            len(stored) == len(leaves)
            and stored[0][0] == expected_seq
            and stored[-1][0] == last_seq
            and b"".join([leaf for _, leaf in stored]) == b"".join(leaves)
        ):
            return  # the common case, compared in one go
        for seq, stored_leaf in stored:
            if seq != expected_seq:
                self._alert(
                    f"stream {self.stream}: seq {expected_seq}..{seq - 1} vanished from "
                    "the store after they were written"
                )
            if stored_leaf != leaves[seq - 1 - first_index]:
                self._alert(
                    f"stream {self.stream}: the stored event at seq {seq} is not the one "
                    "this process wrote"
                )
            expected_seq = seq + 1
        if expected_seq <= last_seq:
            self._alert(
                f"stream {self.stream}: seq {expected_seq}..{last_seq} vanished from the store "
                "after they were written"
            )

    def _alert(self, message: str) -> None:
        if self._on_alert is not None:
            with contextlib.suppress(Exception):
                self._on_alert(message)

    def _error(self, message: str) -> None:
        first = self._failing is None
        self._failing = message
        if first and self._on_error is not None:
            with contextlib.suppress(Exception):
                self._on_error(message)


@dataclass(frozen=True)
class CheckpointSettings:
    """How a process checkpoints its stream: who signs, how often, where copies go."""

    signer: CheckpointSigner
    origin_prefix: str = DEFAULT_ORIGIN_PREFIX
    interval_s: float = DEFAULT_INTERVAL_S
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    publishers: tuple[Publisher, ...] = ()

    def checkpointer(
        self,
        store: Store,
        stream: str,
        *,
        on_alert: Callable[[str], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> Checkpointer:
        return Checkpointer(
            store,
            stream,
            self.signer,
            origin=stream_origin(stream, self.origin_prefix),
            interval_s=self.interval_s,
            heartbeat_s=self.heartbeat_s,
            publishers=self.publishers,
            on_alert=on_alert,
            on_error=on_error,
        )


def seal_stream(store: Store, stream: str, settings: CheckpointSettings) -> CheckpointRow | None:
    """Checkpoint another (dead) process's stream after a closing record was appended to it.

    The stream's tree is rebuilt from the stored bytes, and must reproduce the root of the
    stream's latest stored checkpoint first: a stream whose stored events no longer match what
    its own process signed is never signed over (that would launder the tampering). Raises
    IntegrityError in that case; returns None if the stream is empty.
    """
    latest = store.latest_checkpoint(stream)
    origin = latest.origin if latest is not None else stream_origin(stream, settings.origin_prefix)
    tree = CompactRange()
    expected = 1
    leaves: list[bytes] = []
    for page in store.scan_leaves(stream):
        for seq, _ts, body, stored_leaf, _chain in page:
            leaf = leaf_hash(body) if body is not None else stored_leaf  # pruned by retention
            if seq != expected or leaf != stored_leaf:
                raise IntegrityError(
                    f"stream {stream} is damaged at seq {expected}; not signing over it"
                )
            tree.append(leaf)
            if latest is None or tree.size > latest.size:
                leaves.append(leaf)
            if latest is not None and tree.size == latest.size and tree.root() != latest.root:
                raise IntegrityError(
                    f"stream {stream} no longer matches its checkpoint of size {latest.size}; "
                    "not signing over it"
                )
            expected += 1
    if tree.size == 0:
        return None
    if latest is not None and tree.size < latest.size:
        raise IntegrityError(
            f"stream {stream} holds {tree.size} events but was checkpointed at {latest.size}"
        )
    if latest is not None and tree.size == latest.size:
        return latest
    root = tree.root()
    note = settings.signer.sign_checkpoint(Checkpoint(origin, tree.size, root), leaves)
    row = CheckpointRow(stream, origin, tree.size, root, note.render(), utc_timestamp())
    store.append_checkpoint(row)
    for publisher in settings.publishers:
        publisher.publish(row)
    return row
