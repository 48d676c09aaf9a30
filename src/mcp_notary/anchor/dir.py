"""An append-only anchor directory: one file per checkpoint, all in one flat directory,
created exclusively, never overwritten, never renamed, so it works in a directory with the
Linux append-only attribute (``chattr +a``), where entries can be added but not removed or
renamed, and no subdirectory escapes that attribute (it is not inherited)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from mcp_notary.anchor import AnchoredNote, AnchorError, anchor_object_name
from mcp_notary.errors import ConfigError
from mcp_notary.ledger.store import CheckpointRow

__all__ = ["DirAnchor"]

_MAX_NOTE = 64 * 1024


class DirAnchor:
    """Checkpoint copies in ``root``: ``<origin>.<size>-<note hash>.checkpoint``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        self.name = f"dir:{self.root}"

    def publish(self, row: CheckpointRow) -> None:
        path = self.root / anchor_object_name(row).replace("/", ".")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AnchorError(f"cannot create anchor directory {self.root}: {exc}") from exc
        try:
            # O_EXCL: an existing copy is never touched (the same note has the same name, so an
            # existing file means this checkpoint is already anchored).
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileExistsError:
            return
        except OSError as exc:
            raise AnchorError(f"cannot anchor checkpoint in {self.root}: {exc}") from exc
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(row.note)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise AnchorError(f"cannot write anchor file {path}: {exc}") from exc

    def notes(self) -> Iterator[AnchoredNote]:
        if not self.root.is_dir():
            raise ConfigError(f"anchor directory {self.root} does not exist")
        for path in sorted(self.root.glob("*.checkpoint")):
            try:
                with path.open("rb") as f:
                    data = f.read(_MAX_NOTE + 1)
            except OSError as exc:
                raise AnchorError(f"cannot read anchor file {path}: {exc}") from exc
            yield AnchoredNote(str(path), data[:_MAX_NOTE])

    def __repr__(self) -> str:
        return f"DirAnchor({str(self.root)!r})"
