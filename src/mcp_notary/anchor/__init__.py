"""Anchors: copies of each checkpoint in places the writer cannot rewrite.

An anchor has two sides: ``publish`` (the proxy's checkpointer copies every stored checkpoint
there) and ``notes`` (the verifier reads every copy back). What makes an anchor trustworthy is
the place, not the code: a directory the writer may add to but not delete from
(``chattr +a``), an S3 bucket with Object Lock in compliance mode.

``open_anchor("DIR")`` or ``open_anchor("s3://bucket/prefix")`` picks the kind.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from mcp_notary.errors import StoreError
from mcp_notary.ledger.store import CheckpointRow

__all__ = ["Anchor", "AnchorError", "AnchoredNote", "anchor_object_name", "open_anchor"]


class AnchorError(StoreError):
    """An anchor cannot be written or read (a store of checkpoint copies that failed)."""


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class AnchoredNote:
    """One checkpoint copy found in an anchor: where it was and its signed-note bytes."""

    location: str
    note: bytes


class Anchor(Protocol):
    """A place checkpoints are copied to and read back from."""

    name: str

    def publish(self, row: CheckpointRow) -> None:
        """Copy one checkpoint; never overwrite an existing copy. Raises on failure."""
        ...

    def notes(self) -> Iterator[AnchoredNote]:
        """Every checkpoint copy held, in no particular order."""
        ...


def anchor_object_name(row: CheckpointRow) -> str:
    """``<origin, made path-safe>/<size, 16 digits>-<sha256(note)[:16]>.checkpoint``: one name
    per distinct note, so republishing the same note is a no-op and two different notes of the
    same size (a fork!) both survive."""
    digest = hashlib.sha256(row.note).hexdigest()[:16]
    return f"{_UNSAFE.sub('_', row.origin)}/{row.size:016d}-{digest}.checkpoint"


def open_anchor(url: str) -> Anchor:
    """An anchor from its URL: ``s3://bucket[/prefix][?retention_days=N&endpoint_url=U]`` or a
    directory path."""
    if url.startswith("s3://"):
        from mcp_notary.anchor.s3 import S3Anchor

        return S3Anchor.from_url(url)
    from mcp_notary.anchor.dir import DirAnchor

    return DirAnchor(url)
