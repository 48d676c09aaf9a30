"""Archive segments: events that left the store, as a self-verifying file. Pure encoding.

A segment holds one contiguous seq range of one stream: a header line, then each event's
exact stored bytes (canonical JSON is one line), gzip-compressed. The header carries what an
offline reader needs to check the bodies without the store: the compact range of the leaves
before the segment (at most 64 hashes), the chain hash before it, and a checkpoint signed for
the tree that ends with the segment's last event. Recomputing the leaves from the bodies and
folding them onto the prefix must give that signed root.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785

from mcp_notary.ledger.merkle import CompactRange, leaf_hash

__all__ = ["SEGMENT_FORMAT", "Segment", "SegmentError", "decode_segment", "encode_segment"]

SEGMENT_FORMAT = "mcp-notary-segment/1"


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
    run_id: str
    expires_at: str | None = None
    """When the total retention period of its newest event ends (None: never)."""

    def leaves(self) -> list[bytes]:
        return [leaf_hash(b) for b in self.bodies]

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
        return f"{safe}/{self.first_seq:012d}-{self.last_seq:012d}.jsonl.gz"

    def header(self) -> dict[str, Any]:
        return {
            "format": SEGMENT_FORMAT,
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
        if not isinstance(header, dict) or header.get("format") != SEGMENT_FORMAT:
            raise SegmentError("missing or unknown segment header")
        bodies = tuple(lines[1:])
        first, last = int(header["first_seq"]), int(header["last_seq"])
        if len(bodies) != last - first + 1 or header.get("count") != len(bodies):
            raise SegmentError(f"segment says {first}..{last} but holds {len(bodies)} events")
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
        )
    except SegmentError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise SegmentError(f"malformed segment header: {exc}") from exc
