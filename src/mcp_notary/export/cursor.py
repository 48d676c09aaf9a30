"""The export cursor: per stream, the last seq a sink acknowledged, persisted atomically.

Written only after the sink confirms a batch, so a crash resends at most the unacknowledged
batch (at-least-once); receivers dedupe on `event_id`.
"""

from __future__ import annotations

import json
from pathlib import Path

from mcp_notary.errors import ConfigError
from mcp_notary.ledger.private import make_private_dir, replace_private


class Cursor:
    """`{stream: last acknowledged seq}`, in memory, or also in a JSON file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.positions: dict[str, int] = {}
        if path is not None and path.exists():
            try:
                loaded = json.loads(path.read_text())
                self.positions = {str(k): int(v) for k, v in loaded["streams"].items()}
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ConfigError(f"export cursor {path} is not readable: {exc}") from exc

    def get(self, stream: str) -> int:
        return self.positions.get(stream, 0)

    def advance(self, positions: dict[str, int]) -> None:
        """Record acknowledged positions and persist them (write, fsync, rename; the file is
        0600: it names the streams of the trail)."""
        self.positions.update(positions)
        if self.path is None:
            return
        data = json.dumps({"version": 1, "streams": self.positions}, sort_keys=True)
        make_private_dir(self.path.parent)
        replace_private(self.path, data.encode())
