"""A real audit trail for the tamper-evidence suites: `mcp-notary wrap` around the PyPI
`mcp-server-time`, driven by a raw JSON-lines client, with checkpoints and an anchor
directory. Built once per module and copied per mutation."""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from e2e_notary import Notary, store_files
from e2e_rawclient import RawPipeClient

INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "trail-builder", "version": "1.0"},
    },
}
ZONES = ["Europe/Paris", "Asia/Tokyo", "America/New_York", "UTC", "Not/AZone"]


@dataclass
class Trail:
    """A finished trail: the store, the anchor directory it was copied to, the trusted vkey."""

    store: Path
    anchors: Path
    vkey: Path
    calls: int

    def copy(self, dest: Path) -> Path:
        """A private copy of the store (database and WAL side files) to mutate."""
        dest.mkdir(parents=True, exist_ok=True)
        for path in store_files(self.store):
            shutil.copy2(path, dest / (self.store.name + path.name[len(self.store.name) :]))
        return dest / self.store.name


def build_trail(
    notary: Notary,
    time_cmd: list[str],
    workdir: Path,
    *,
    calls: int = 1000,
    interval: float = 0.2,
) -> Trail:
    """Run one wrap session of `calls` tool calls (pipelined in batches) and return the trail."""
    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / "audit.db"
    anchors = workdir / "anchors"
    options = ["--anchor", str(anchors), "--checkpoint-interval", str(interval)]
    argv = notary.wrap_argv(time_cmd, store=store, options=options)
    with RawPipeClient(argv, notary.env()) as client:
        client.request(INIT)
        client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        for start in range(1, calls + 1, 100):
            last = min(start + 99, calls)
            for i in range(start, last + 1):
                client.send(
                    {
                        "jsonrpc": "2.0",
                        "id": i,
                        "method": "tools/call",
                        "params": {
                            "name": "get_current_time",
                            "arguments": {"timezone": ZONES[i % len(ZONES)]},
                        },
                    }
                )
            client.response_to(last, timeout=60)
        client.close_stdin()
        status = client.wait(60)
        assert status == 0, bytes(client.stderr).decode(errors="replace")[-2000:]
    vkey = notary.home / ".local" / "share" / "mcp-notary" / "checkpoint.vkey"
    assert vkey.exists(), "wrap did not create the checkpoint key's vkey"
    db = sqlite3.connect(store)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # one self-contained file to copy
    db.close()
    return Trail(store=store, anchors=anchors, vkey=vkey, calls=calls)
