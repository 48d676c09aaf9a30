"""Archive segments: events that left the store, as a self-verifying file. Pure encoding.

A segment covers one seq range of one stream: a header line, then the exact stored bytes
(canonical JSON is one line) of the range's events it holds, gzip-compressed. The header
carries what an offline reader needs to check the bodies without the store: the compact range
of the leaves before the segment (at most 64 hashes), the chain hash before it, the leaf and
chain hash of each event of the range it does not hold (`others`: events kept in the store,
or archived in another segment because their retention ends on another day), and a
checkpoint signed for the tree that ends with the range's last event. Recomputing the leaves
from the bodies, taking the others' as given, and folding them onto the prefix must give that
signed root.

Segments are grouped by expiry (format 2): all events of one segment share one total period
(`total_days`) and one UTC day, so each leaves the archive within a day of its own period's
end, and a reader hides each event from the moment its own period has ended.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import rfc8785

from mcp_notary.ledger.merkle import CompactRange, leaf_hash

__all__ = [
    "SEGMENT_FORMAT",
    "Segment",
    "SegmentError",
    "decode_segment",
    "encode_segment",
    "period_end",
]

SEGMENT_FORMAT = "mcp-notary-segment/2"
_READABLE = ("mcp-notary-segment/1", SEGMENT_FORMAT)


def period_end(timestamp: str, days: int) -> str:
    """The RFC 3339 instant `days` after `timestamp`: when a period that began then ends."""
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00")) + timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SegmentError(ValueError):
    """The bytes are not a well-formed segment."""


@dataclass(frozen=True)
class Segment:
    stream: str
    first_seq: int
    last_seq: int
    prefix: CompactRange
    """Leaves 1..first_seq-1 of the stream, as their compact range."""
    prev_chain_hash: bytes
    checkpoint: bytes
    """The signed note (C2SP checkpoint) of the tree of size `last_seq`."""
    bodies: tuple[bytes, ...]
    """The bodies it holds, in seq order: every seq of the range but the `others`."""
    run_id: str
    expires_at: str | None = None
    """When the total retention period of its newest event ends (None: never)."""
    others: tuple[tuple[int, bytes, bytes], ...] = ()
    """(seq, leaf hash, chain hash) of the range's events whose bodies are elsewhere."""
    total_days: int | None = None
    """The total period of every event it holds (None: kept forever, or a format-1 segment,
    whose events may differ)."""
    group: str = ""
    """Names the expiry group (day and period) in the file name: several segments of one
    stream may cover overlapping ranges."""

    def seqs(self) -> list[int]:
        """The seq of each body, in order."""
        skipped = {seq for seq, _, _ in self.others}
        return [s for s in range(self.first_seq, self.last_seq + 1) if s not in skipped]

    def entries(self) -> list[tuple[int, bytes | None, bytes, bytes | None]]:
        """(seq, body or None, leaf hash, given chain hash or None) for every seq of the
        range, in order."""
        given = {seq: (leaf, chain) for seq, leaf, chain in self.others}
        bodies = iter(self.bodies)
        out: list[tuple[int, bytes | None, bytes, bytes | None]] = []
        for seq in range(self.first_seq, self.last_seq + 1):
            if seq in given:
                out.append((seq, None, *given[seq]))
            else:
                body = next(bodies)
                out.append((seq, body, leaf_hash(body), None))
        return out

    def leaves(self) -> list[bytes]:
        return [leaf for _, _, leaf, _ in self.entries()]

    def expired(self, body_timestamp: str, now: str) -> bool:
        """Whether the total period of a held event stamped `body_timestamp` ended by `now`."""
        if self.expires_at is not None and self.expires_at < now:
            return True
        if self.total_days is None:
            return False
        return period_end(body_timestamp, self.total_days) < now

    def root(self) -> bytes:
        """The root of the tree of size `last_seq`, from the prefix and these bodies."""
        tree = CompactRange.from_hashes(self.prefix.size, self.prefix.hashes)
        for leaf in self.leaves():
            tree.append(leaf)
        return tree.root()

    @property
    def name(self) -> str:
        """A file name unique per stream and range (stream names hold '/' and ':')."""
        safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in self.stream)
        group = f".{self.group}" if self.group else ""
        return f"{safe}/{self.first_seq:012d}-{self.last_seq:012d}{group}.jsonl.gz"

    def header(self) -> dict[str, Any]:
        return {
            "format": SEGMENT_FORMAT,
            "group": self.group,
            "total_days": self.total_days,
            "others": [[seq, leaf.hex(), chain.hex()] for seq, leaf, chain in self.others],
            "stream": self.stream,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "count": len(self.bodies),
            "prefix": self.prefix.to_state(),
            "prev_chain_hash": self.prev_chain_hash.hex(),
            "checkpoint": self.checkpoint.decode(),
            "retention_run": self.run_id,
            "expires_at": self.expires_at,
        }


def encode_segment(segment: Segment) -> bytes:
    lines: Sequence[bytes] = [rfc8785.dumps(segment.header()), *segment.bodies]
    # mtime=0: the same segment always compresses to the same bytes.
    return gzip.compress(b"\n".join(lines) + b"\n", mtime=0)


def decode_segment(data: bytes) -> Segment:
    """Parse a segment file (raises `SegmentError`); checks its shape, not its hashes."""
    try:
        text = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise SegmentError(f"not a gzip segment: {exc}") from exc
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    try:
        header = json.loads(lines[0]) if lines else None
        if not isinstance(header, dict) or header.get("format") not in _READABLE:
            raise SegmentError("missing or unknown segment header")
        bodies = tuple(lines[1:])
        first, last = int(header["first_seq"]), int(header["last_seq"])
        others = tuple(
            (int(seq), bytes.fromhex(leaf), bytes.fromhex(chain))
            for seq, leaf, chain in header.get("others") or []
        )
        if (
            len(bodies) + len(others) != last - first + 1
            or header.get("count") != len(bodies)
            or any(not first <= seq <= last for seq, _, _ in others)
            or len({seq for seq, _, _ in others}) != len(others)
        ):
            raise SegmentError(f"segment says {first}..{last} but holds {len(bodies)} events")
        total = header.get("total_days")
        return Segment(
            stream=str(header["stream"]),
            first_seq=first,
            last_seq=last,
            prefix=CompactRange.from_state(header["prefix"]),
            prev_chain_hash=bytes.fromhex(header["prev_chain_hash"]),
            checkpoint=str(header["checkpoint"]).encode(),
            bodies=bodies,
            run_id=str(header.get("retention_run", "")),
            expires_at=header.get("expires_at"),
            others=others,
            total_days=int(total) if total is not None else None,
            group=str(header.get("group") or ""),
        )
    except SegmentError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise SegmentError(f"malformed segment header: {exc}") from exc
