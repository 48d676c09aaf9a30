"""Full trail verification: stored rows + trusted checkpoints -> findings. Pure: storage reads
are passed in as a function, and nothing here prints, opens or exits.

For each stream, in order:

1. **Rows** (:class:`StreamChecker`), one pass over the stored bytes:
   (1a) seq is contiguous from 1 (``missing``, ``reordered``);
   (1b) the leaf hash recomputes from the bytes (``modified``);
   (1c) the chain hash follows from the previous row and these bytes (``modified``);
   (1d) the event names the stream and seq it is stored under, and the indexed ``timestamp``
        column is the event's own (``reordered``, ``modified``);
   (1e) no event ends before an earlier-sequenced event started (``time_regression``).
   The recomputed leaf hashes feed an RFC 6962 compact range, which yields the root at every
   checkpointed size without ever holding the whole tree.
2. **Checkpoints** (:func:`check_stream_checkpoints`), against those roots:
   (2a) two trusted roots for one size (``fork``);
   (2b) a checkpoint larger than the stored stream (``tail_truncated``);
   (2c) a root the stored events do not produce: contradicted by a later checkpoint the
        events do match (``inconsistent_checkpoint``), else the events changed since
        (``modified``, naming the range between the last matching checkpoint and this one);
   (2d) the signing key's validity window covers the last event signed (``key_not_valid``);
   (2e) every stored event is covered by a trusted checkpoint (``uncovered``, or
        ``appended_after_close`` past the checkpoint that sealed a cleanly stopped stream);
   (2f) every stored checkpoint has a copy in the anchors, when anchors are given
        (``not_anchored``).

Consistency between successive checkpoints is implied by (2c): every trusted checkpoint must
be a prefix root of the one stored sequence of events, so two that pass are consistent with
each other and with the auditor's saved checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import rfc8785

from mcp_notary.ledger.canonical import GENESIS_HASH
from mcp_notary.ledger.merkle import EMPTY_ROOT, LEAF_PREFIX, CompactRange, node_hash
from mcp_notary.ledger.store import LeafRecord
from mcp_notary.verify.chain import Finding
from mcp_notary.verify.checkpoints import TrustedCheckpoint

__all__ = [
    "TIME_SLACK_S",
    "ChunkResult",
    "StreamChecker",
    "StreamReport",
    "check_pruned",
    "check_stream_checkpoints",
    "verify_stream_rows",
]

TIME_SLACK_S = 2.0
"""How far an event's end may precede an earlier-sequenced event's start before it is a
``time_regression``: threads of one process submit in an order that can differ from their
clock readings by scheduling jitter, never by seconds."""

_SEQ_KEY = b',"seq":'
_TS_KEY = b',"timestamp":"'


def _end_time(body: bytes, timestamp: str) -> str:
    """The event's timestamp plus its ``duration_ms`` (stored RFC 3339 form)."""
    try:
        duration = json.loads(body).get("duration_ms") or 0
        start = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        end = start + timedelta(milliseconds=float(duration))
    except (ValueError, TypeError, AttributeError):
        return timestamp
    return end.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _minus(timestamp: str, seconds: float) -> str:
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    return (moment - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fold(hashes: Sequence[bytes]) -> bytes:
    """RFC 6962 root from the perfect subtrees tiling a tree left to right (sizes not
    increasing, each aligned): the right fold that :meth:`CompactRange.root` also does."""
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for h in reversed(hashes[:-1]):
        root = node_hash(h, root)
    return root


@dataclass(frozen=True)
class ChunkResult:
    """Step 1 over one seq range of a stream, done elsewhere (another process): what
    :meth:`StreamChecker.absorb` needs to continue as if it had fed those rows itself."""

    first_seq: int
    rows: int
    last_seq: int
    partials: dict[int, tuple[bytes, ...]]
    """At each wanted size inside the chunk: the chunk's own compact range up to there."""
    final: tuple[bytes, ...]
    """The chunk's compact range over all its leaves (one hash for a full, aligned chunk)."""
    findings: list[Finding]
    modified: list[int]
    pruned: list[list[int]]
    broken_after: int | None
    """Leaves of this chunk before its first gap or reordering (None: none)."""
    last_events: dict[int, tuple[str, bytes]]
    end_prev: bytes
    end_high: str


class StreamChecker:
    """Step 1 for one stream: feed pages of rows in stored order, then read the results.

    ``root_sizes`` are the tree sizes whose roots (and last events) will be needed by step 2;
    more can be added with :meth:`want` before the rows get there (the watcher does).

    A checker built with ``chunk_start`` checks one seq range of a stream for a parallel
    verifier: it starts from the stored chain hash and time of the row before the range,
    builds the tree of the chunk's leaves only (chunks are power-of-two aligned, so that tree
    is a perfect subtree of the stream's), and hands its work over with :meth:`chunk_result`.
    """

    def __init__(
        self,
        stream: str,
        root_sizes: Iterable[int] = (),
        *,
        chunk_start: tuple[int, bytes, str] | None = None,
    ) -> None:
        self.stream = stream
        self.rows = 0
        self.last_seq = 0
        self.intact_size = 0
        """Leaves before the first gap or reordering: roots of larger sizes mean nothing."""
        self.roots: dict[int, bytes] = {}
        self.last_events: dict[int, tuple[str, bytes]] = {}
        """(timestamp, body) of the event at each wanted size (the last one it covers)."""
        self.modified: list[int] = []
        self.pruned: list[list[int]] = []
        """``[first, last]`` seq runs whose bodies retention deleted (hashes kept)."""
        self._want = set(root_sizes)
        self._expected = 1
        self._prev = GENESIS_HASH
        self._high_start = ""
        self._tree = CompactRange()
        self._position = 0
        self._is_chunk = chunk_start is not None
        self._partials: dict[int, tuple[bytes, ...]] = {}
        self._chunk_tree: CompactRange | None = None  # absorbed chunks' roots (parallel)
        self._tail: tuple[bytes, ...] = ()
        self._first_seq = 1
        if chunk_start is not None:
            self._expected, self._prev, self._high_start = chunk_start
            self._first_seq = self._expected
            self._position = self._expected - 1  # assumes the stream is intact before
        self._broken_after: int | None = None
        self._stream_marker = b',"stream":' + rfc8785.dumps(stream) + b',"target":'

    def want(self, sizes: Iterable[int]) -> None:
        """Also record roots at ``sizes`` (ignored for sizes already passed)."""
        self._want.update(s for s in sizes if s > self._position)

    @property
    def tree_size(self) -> int:
        return self._position

    def root(self) -> bytes:
        """Root over every leaf fed (or absorbed, while intact) so far."""
        if self._chunk_tree is not None:
            return _fold(self._chunk_tree.hashes + self._tail)
        return self._tree.root()

    def _break(self) -> None:
        if self._broken_after is None:
            self._broken_after = self._position - (self._first_seq - 1)
            self.intact_size = self._position

    def feed(self, records: Sequence[LeafRecord]) -> list[Finding]:
        """Check a page of rows (the continuation of the previous page)."""
        findings: list[Finding] = []
        stream = self.stream
        sha = hashlib.sha256
        prefix = LEAF_PREFIX
        tree = self._tree
        is_chunk = self._is_chunk
        append = tree.append
        want = self._want
        expected = self._expected
        prev = self._prev
        high = self._high_start
        marker = self._stream_marker
        position = self._position
        pruned = self.pruned
        for record in records:
            seq, ts, body, stored_leaf, stored_chain = record
            # (1a) position
            if seq != expected:
                self._position = position
                self._break()
                if seq > expected:
                    findings.append(
                        Finding(
                            "missing",
                            stream,
                            expected,
                            f"seq {expected}..{seq - 1} absent from the store",
                            seq_end=seq - 1,
                        )
                    )
                else:
                    findings.append(
                        Finding("reordered", stream, seq, f"seq {seq} stored out of order")
                    )
            if body is None:
                # Pruned by retention: only the kept hashes remain. The leaf still feeds the
                # tree, so the signed checkpoints vouch for it; whether a retention run
                # recorded the deletion is decided across streams (`check_pruned`).
                if pruned and pruned[-1][1] == seq - 1:
                    pruned[-1][1] = seq
                else:
                    pruned.append([seq, seq])
                leaf = stored_leaf
                body = b""
                if ts > high:
                    high = ts
            else:
                # (1b) leaf
                leaf = sha(prefix + body).digest()
                leaf_ok = leaf == stored_leaf
                if not leaf_ok:
                    findings.append(
                        Finding("modified", stream, seq, "event bytes do not match their leaf hash")
                    )
                    self.modified.append(seq)
                # (1d) claimed position and indexed time: markers of the canonical (sorted-key)
                # body past the top-level "seq", which nothing nested can follow.
                i = body.rfind(_SEQ_KEY)
                misplaced = False
                if (
                    i > 0
                    and body.startswith(b'%d,"server":' % seq, i + 7)
                    and body.find(marker, i) > 0
                ):
                    t = body.find(_TS_KEY, i)
                    if t < 0 or not body.startswith(ts.encode() + b'"', t + 14):
                        findings.append(
                            Finding(
                                "modified",
                                stream,
                                seq,
                                f"indexed timestamp {ts} is not the event's own",
                            )
                        )
                else:
                    self._position = position
                    misplaced = self._check_claims(body, seq, findings)
                # (1c) chain
                # (one finding per damaged row: a bad leaf implies a bad chain link)
                if sha(prev + body).digest() != stored_chain and leaf_ok and not misplaced:
                    findings.append(
                        Finding(
                            "modified",
                            stream,
                            seq,
                            "chain hash does not follow from the previous event and these bytes",
                        )
                    )
                    if not self.modified or self.modified[-1] != seq:
                        self.modified.append(seq)
                # (1e) time: cheap unless this event started before an earlier one
                if ts >= high:
                    high = ts
                elif _end_time(body, ts) < _minus(high, TIME_SLACK_S):
                    findings.append(
                        Finding(
                            "time_regression",
                            stream,
                            seq,
                            f"event at {ts} ended before an earlier-sequenced event started "
                            f"({high})",
                        )
                    )
            append(leaf)
            position += 1
            if position in want:
                if is_chunk:
                    self._partials[position] = tree.hashes
                else:
                    self.roots[position] = tree.root()
                self.last_events[position] = (ts, body)
            # Continue from the stored values, so one bad row is reported once.
            prev = stored_chain
            expected = seq + 1
        self.rows += len(records)
        if records:
            self.last_seq = records[-1][0]
        self._position = position
        if self._broken_after is None:
            self.intact_size = position
        self._expected = expected
        self._prev = prev
        self._high_start = high
        return findings

    def chunk_result(self, findings: list[Finding]) -> ChunkResult:
        """Hand a chunk checker's work to the checker of the whole stream."""
        return ChunkResult(
            first_seq=self._first_seq,
            rows=self.rows,
            last_seq=self.last_seq,
            partials=self._partials,
            final=self._tree.hashes,
            findings=findings,
            modified=self.modified,
            pruned=self.pruned,
            broken_after=self._broken_after,
            last_events=self.last_events,
            end_prev=self._prev,
            end_high=self._high_start,
        )

    def absorb(self, chunk: ChunkResult) -> list[Finding]:
        """Continue with a chunk another checker fed (chunks in seq order, each starting at a
        stored row). Returns the chunk's findings plus any gap at its start."""
        findings: list[Finding] = []
        if chunk.rows == 0:
            return findings
        if chunk.first_seq != self._expected:
            self._break()
            findings.append(
                Finding(
                    "missing",
                    self.stream,
                    self._expected,
                    f"seq {self._expected}..{chunk.first_seq - 1} absent from the store",
                    seq_end=chunk.first_seq - 1,
                )
            )
        # Roots: the absorbed chunks' perfect subtrees, then this chunk's own compact range.
        # Valid while the stream is intact (chunks then start at multiples of their size).
        aligned = self._broken_after is None and self._position == chunk.first_seq - 1
        if aligned:
            if self._chunk_tree is None:
                self._chunk_tree = CompactRange()
            done = self._chunk_tree.hashes
            for size, partial in chunk.partials.items():
                self.roots[size] = _fold(done + partial)
        if chunk.broken_after is not None and self._broken_after is None:
            self._broken_after = self._position + chunk.broken_after
            self.intact_size = self._broken_after
        self._position += chunk.rows
        if aligned and self._chunk_tree is not None:
            if len(chunk.final) == 1 and chunk.rows & (chunk.rows - 1) == 0:
                self._chunk_tree.append(chunk.final[0])  # a full chunk: one perfect subtree
            else:
                self._tail = chunk.final  # the last, partial chunk
        if self._broken_after is None:
            self.intact_size = self._position
        self.last_events.update(chunk.last_events)
        self.modified += chunk.modified
        for first, last in chunk.pruned:
            if self.pruned and self.pruned[-1][1] == first - 1:
                self.pruned[-1][1] = last
            else:
                self.pruned.append([first, last])
        self.rows += chunk.rows
        self.last_seq = chunk.last_seq
        self._expected = chunk.last_seq + 1
        self._prev = chunk.end_prev
        self._high_start = max(self._high_start, chunk.end_high)
        return findings + chunk.findings

    def _check_claims(self, body: bytes, seq: int, findings: list[Finding]) -> bool:
        """Slow path of (1d): parse the event. True if it belongs elsewhere."""
        try:
            event = json.loads(body)
            claimed = (event.get("stream"), event.get("seq"))
        except (ValueError, AttributeError):
            findings.append(
                Finding("unreadable", self.stream, seq, "stored bytes are not a JSON event")
            )
            return False
        if claimed == (self.stream, seq):
            return False
        findings.append(
            Finding(
                "reordered",
                self.stream,
                seq,
                f"event stored at seq {seq} says it is {claimed[0]} seq {claimed[1]}",
            )
        )
        self._break()
        return True

    def finish(self) -> list[Finding]:
        """Findings about the stream as a whole once every row was fed."""
        if self.rows == 0:
            return [
                Finding(
                    "empty_stream", self.stream, None, "stream has no stored events", "incomplete"
                )
            ]
        return []


def verify_stream_rows(stream: str, records: Iterable[LeafRecord]) -> list[Finding]:
    """Step 1 alone, for rows given one by one (no checkpoints)."""
    checker = StreamChecker(stream)
    findings: list[Finding] = []
    page: list[LeafRecord] = []
    for record in records:
        page.append(record)
        if len(page) >= 4096:
            findings += checker.feed(page)
            page = []
    findings += checker.feed(page)
    return findings + checker.finish()


@dataclass
class StreamReport:
    """What was checked of one stream, and what is wrong with it."""

    stream: str
    events: int = 0
    last_seq: int = 0
    checkpoints: int = 0
    covered_size: int = 0
    findings: list[Finding] = field(default_factory=list)
    pruned: list[tuple[int, int]] = field(default_factory=list)
    """Seq ranges deleted by a recorded retention run (bodies gone, hashes verified)."""

    def to_dict(self) -> dict[str, object]:
        return {
            "stream": self.stream,
            "events": self.events,
            "last_seq": self.last_seq,
            "trusted_checkpoints": self.checkpoints,
            "covered_size": self.covered_size,
            "pruned_by_policy": [{"first": a, "last": b} for a, b in self.pruned],
            "findings": [f.to_dict() for f in self.findings],
        }


def check_pruned(
    stream: str, pruned: Sequence[Sequence[int]], recorded: Sequence[tuple[int, int]]
) -> tuple[list[tuple[int, int]], list[Finding]]:
    """Split a stream's pruned runs into those a retention run recorded (deleted by policy)
    and those none did, which are reported as ``missing``: a body deleted outside retention
    is a deletion like any other, whatever the store's bookkeeping says."""
    spans = sorted(recorded)
    by_policy: list[tuple[int, int]] = []
    uncovered: list[tuple[int, int]] = []
    for first, last in pruned:
        seq = first
        for a, b in spans:
            if b < seq or seq > last:
                continue
            if a > last:
                break
            if a > seq:
                uncovered.append((seq, a - 1))
            upto = min(b, last)
            by_policy.append((max(a, seq), upto))
            seq = upto + 1
        if seq <= last:
            uncovered.append((seq, last))
    findings = [
        Finding(
            "missing",
            stream,
            a,
            f"seq {a}..{b}: the event bodies were deleted, and no recorded retention run "
            "deleted them",
            seq_end=b,
        )
        for a, b in uncovered
    ]
    return by_policy, findings


def _is_clean_stop(body: bytes) -> bool:
    try:
        event = json.loads(body)
    except ValueError:
        return False
    details = event.get("details") if isinstance(event, dict) else None
    return (
        isinstance(details, dict)
        and event.get("kind") == "lifecycle"
        and details.get("phase") in ("stopped", "ended_uncleanly")
    )


def check_stream_checkpoints(
    checker: StreamChecker,
    checkpoints: Sequence[TrustedCheckpoint],
    *,
    stored_sources: Sequence[str] = ("store",),
    anchored: Callable[[TrustedCheckpoint], bool] | None = None,
    require_coverage: bool = True,
) -> tuple[int, list[Finding]]:
    """Step 2 for one stream whose rows were all fed to ``checker`` (with the checkpoints'
    sizes wanted). Returns the covered size and the findings."""
    stream = checker.stream
    findings: list[Finding] = []
    by_size: dict[int, dict[bytes, list[TrustedCheckpoint]]] = {}
    for c in checkpoints:
        by_size.setdefault(c.size, {}).setdefault(c.root, []).append(c)

    # (2a) forks
    forked: set[int] = set()
    for size, roots in sorted(by_size.items()):
        if len(roots) > 1:
            forked.add(size)
            sources = "; ".join(
                f"root {root.hex()[:16]}… from {', '.join(c.source for c in cs)}"
                for root, cs in roots.items()
            )
            findings.append(
                Finding(
                    "fork",
                    stream,
                    size if size else None,
                    f"{len(roots)} different signed roots for tree size {size}: {sources}",
                )
            )

    # Which sizes does the stored stream reproduce?
    matches: dict[int, bool] = {}
    for size, roots in by_size.items():
        actual = checker.roots.get(size) if size <= checker.intact_size else None
        if size == 0:
            actual = CompactRange().root()
        matches[size] = actual is not None and actual in roots
    good_sizes = sorted(s for s, ok in matches.items() if ok)
    largest_good = good_sizes[-1] if good_sizes else 0

    modified_before = min(checker.modified) if checker.modified else None
    reported_tail = False
    for size in sorted(by_size):
        roots = by_size[size]
        if matches[size] and size not in forked:
            continue
        sources = ", ".join(c.source for cs in roots.values() for c in cs)
        if size > checker.last_seq:
            # (2b)
            if not reported_tail:
                reported_tail = True
                findings.append(
                    Finding(
                        "tail_truncated",
                        stream,
                        checker.last_seq + 1,
                        f"a trusted checkpoint commits to {size} events but the store ends at "
                        f"seq {checker.last_seq}",
                        seq_end=size,
                        source=sources,
                    )
                )
            continue
        if size in forked or size > checker.intact_size:
            continue  # already explained by a fork or by missing/reordered rows
        if modified_before is not None and modified_before <= size:
            continue  # already explained by the modified row
        # (2c)
        later_good = [s for s in good_sizes if s > size]
        if later_good:
            findings.append(
                Finding(
                    "inconsistent_checkpoint",
                    stream,
                    None,
                    f"trusted checkpoint of size {size} is not a prefix of the trusted "
                    f"checkpoint of size {later_good[0]} that the stored events match",
                    source=sources,
                )
            )
        elif modified_before is None:
            earlier = [s for s in good_sizes if s < size]
            start = (earlier[-1] if earlier else 0) + 1
            modified_before = start  # later mismatches follow from this one
            findings.append(
                Finding(
                    "modified",
                    stream,
                    start,
                    f"stored events seq {start}..{size} do not produce the root signed for "
                    f"size {size}: they were changed (and rehashed) after it was signed",
                    seq_end=size,
                    source=sources,
                )
            )

    # (2d) key validity windows, against the time of the last event each checkpoint covers
    for c in checkpoints:
        if not matches.get(c.size) or c.size == 0:
            continue
        last = checker.last_events.get(c.size)
        if last is None:
            continue
        ts = last[0]
        if not any(k.valid_at(ts) for k in c.keys):
            windows = "; ".join(f"{k.verifier.name} {k.window()}" for k in c.keys)
            findings.append(
                Finding(
                    "key_not_valid",
                    stream,
                    c.size,
                    f"checkpoint of size {c.size} covers an event at {ts}, outside the "
                    f"validity of its signing key ({windows})",
                    source=c.source,
                )
            )

    # (2e) coverage: events past every trusted checkpoint (whether or not it matched: a
    # mismatch is reported above, and the events it signs are not "unsigned")
    covered = largest_good
    signed_upto = max((s for s in by_size if s <= checker.last_seq), default=0)
    if require_coverage and checker.last_seq > signed_upto and not reported_tail:
        last = checker.last_events.get(signed_upto)
        sealed = matches.get(signed_upto, False) and last is not None and _is_clean_stop(last[1])
        if sealed:
            findings.append(
                Finding(
                    "appended_after_close",
                    stream,
                    signed_upto + 1,
                    f"seq {signed_upto + 1}..{checker.last_seq} follow the checkpoint that "
                    f"sealed this stream when it stopped at seq {signed_upto}",
                    seq_end=checker.last_seq,
                )
            )
        else:
            findings.append(
                Finding(
                    "uncovered",
                    stream,
                    signed_upto + 1,
                    f"seq {signed_upto + 1}..{checker.last_seq} are covered by no trusted "
                    "checkpoint" + (" (there is none)" if not checkpoints else ""),
                    "incomplete",
                    seq_end=checker.last_seq,
                )
            )

    # (2f) anchoring of stored checkpoints
    if anchored is not None:
        unanchored = sorted(
            {c.size for c in checkpoints if c.source in stored_sources and not anchored(c)}
        )
        if unanchored:
            shown = ", ".join(str(s) for s in unanchored[:8])
            more = f" and {len(unanchored) - 8} more" if len(unanchored) > 8 else ""
            findings.append(
                Finding(
                    "not_anchored",
                    stream,
                    None,
                    f"{len(unanchored)} stored checkpoint(s) have no copy in the anchors "
                    f"(sizes {shown}{more})",
                    "incomplete",
                )
            )
    return covered, findings
