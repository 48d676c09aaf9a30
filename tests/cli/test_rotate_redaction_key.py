"""Rotating the redaction key changes every later token and is itself on the record."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from mcp_notary.redact.tokens import load_or_create_key


def test_rotation_replaces_the_key_and_records_both_ids_but_no_key(tmp_path: Path) -> None:
    key_file = tmp_path / "redaction.key"
    old = load_or_create_key(key_file)
    env = {
        **os.environ,
        "MCP_NOTARY_REDACTION_KEY_FILE": str(key_file),
        "MCP_NOTARY_SIGNING_KEY_FILE": str(tmp_path / "checkpoint.key"),
        "HOME": str(tmp_path),
    }
    store = tmp_path / "audit.db"
    done = subprocess.run(
        [sys.executable, "-m", "mcp_notary", "rotate-redaction-key", "--store", str(store)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    new = load_or_create_key(key_file)
    assert new.key_id != old.key_id
    assert new.token("same secret") != old.token("same secret")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    db = sqlite3.connect(store)
    bodies = [
        json.loads(b)
        for (b,) in db.execute("SELECT body FROM events WHERE kind = ?", ("key_rotation",))
    ]
    raw = b"".join(bytes(b) for (b,) in db.execute("SELECT body FROM events"))
    db.close()
    (event,) = bodies
    assert event["details"]["key"] == "redaction"
    assert (event["details"]["old_key_id"], event["details"]["new_key_id"]) == (
        old.key_id,
        new.key_id,
    )
    assert key_file.read_bytes().strip() not in raw
    verified = subprocess.run(
        [sys.executable, "-m", "mcp_notary", "verify", "--store", str(store)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
