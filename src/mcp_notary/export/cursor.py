"""The export cursor: per stream, the last seq a sink acknowledged, persisted atomically.

Written only after the sink confirms a batch, so a crash resends at most the unacknowledged
batch (at-least-once); receivers dedupe on `event_id`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mcp_notary.errors import ConfigError


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
        """Record acknowledged positions and persist them (write, fsync, rename)."""
        self.positions.update(positions)
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(self.path.name + ".tmp")
        with open(temp, "w") as handle:
            json.dump({"version": 1, "streams": self.positions}, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)
