"""`verify`, `prove`, `verify-proof` and `watch` at the command line: exit statuses for
usage errors and for a store without checkpoints."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from e2e_notary import Notary
from factories import append, event, stream_info

from mcp_notary.ledger.signing import NoteSigner
from mcp_notary.ledger.stores.sqlite import SQLiteStore


def unsigned_store(tmp_path: Path) -> Path:
    store = SQLiteStore(tmp_path / "audit.db")
    store.create_stream(stream_info("s"))
    append(store, "s", [event() for _ in range(3)])
    store.close()
    return tmp_path / "audit.db"


def vkey_file(tmp_path: Path) -> Path:
    path = tmp_path / "k.vkey"
    path.write_text(NoteSigner.generate("k").vkey + "\n")
    return path


def test_events_no_checkpoint_covers_are_incomplete_evidence(
    notary: Notary, tmp_path: Path
) -> None:
    store = unsigned_store(tmp_path)
    proc = notary.verify(store, "--json", "--trusted-key", str(vkey_file(tmp_path)))
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert report["result"] == "incomplete evidence"
    assert [(f["kind"], f["seq"], f["seq_end"]) for f in report["findings"]] == [
        ("uncovered", 1, 3)
    ]


def test_usage_errors_exit_3(notary: Notary, tmp_path: Path) -> None:
    store = unsigned_store(tmp_path)
    bad_key = tmp_path / "bad.vkey"
    bad_key.write_text("not a key\n")
    cases = [
        ("verify", "--trusted-key", str(bad_key)),
        ("verify", "--trusted-key", str(tmp_path / "missing.vkey")),
        ("verify", "--anchor", str(tmp_path / "no-such-anchor")),
        ("verify", "--checkpoint", str(tmp_path / "no-such-file")),
        ("verify", "--anchor", "s3://bucket/p?bogus=1"),
        ("prove", "no-such-event", "--trusted-key", str(vkey_file(tmp_path))),
    ]
    for args in cases:
        proc = notary.run(*args, store=store)
        assert proc.returncode == 3, (args, proc.stdout, proc.stderr)
        assert proc.stderr.strip(), args


def test_prove_needs_a_checkpoint_covering_the_event(notary: Notary, tmp_path: Path) -> None:
    store = unsigned_store(tmp_path)
    db_event = SQLiteStore(store, readonly=True).scan("s")
    event_id = next(iter(db_event)).event_id
    proc = notary.run("prove", event_id, "--trusted-key", str(vkey_file(tmp_path)), store=store)
    assert proc.returncode == 1
    assert b"covers seq 1" in proc.stderr


def test_verify_proof_of_garbage_is_an_integrity_failure(notary: Notary, tmp_path: Path) -> None:
    bundle = tmp_path / "proof.json"
    bundle.write_text('{"format": "something else"}')
    proc = notary.run("verify-proof", str(bundle), "--trusted-key", str(vkey_file(tmp_path)))
    assert proc.returncode == 1 and b"bundle" in proc.stderr


def test_every_new_command_is_documented(notary: Notary) -> None:
    docs = (Path(__file__).parents[2] / "docs" / "ledger.md").read_text()
    for command in ("verify", "prove", "verify-proof", "watch", "rotate-key"):
        proc = notary.run(command, "--help")
        assert proc.returncode == 0, command
        assert f"mcp-notary {command}" in docs, f"docs/ledger.md does not show {command}"


def test_rotate_key_records_the_event_and_old_checkpoints_still_verify(
    notary: Notary, tmp_path: Path
) -> None:
    from mcp_notary.ledger.checkpointer import Checkpointer, KeySigner
    from mcp_notary.ledger.keys import load_or_create_signing_key

    key = tmp_path / "keys" / "checkpoint.key"
    store_path = tmp_path / "audit.db"
    store = SQLiteStore(store_path)
    store.create_stream(stream_info("s"))
    append(store, "s", [event() for _ in range(4)])
    before = Checkpointer(store, "s", KeySigner(load_or_create_signing_key(key)))
    before.committed(list(store.scan("s")))
    before.close()
    store.close()
    proc = notary.run("rotate-key", "--signing-key", str(key), "--grace", "1", store=store_path)
    assert proc.returncode == 0, proc.stderr.decode()
    trusted = key.with_name("trusted-keys")
    proc = notary.verify(store_path, "--json", "--trusted-key", str(trusted))
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report["findings"]
    assert report["streams"] == 2  # the data stream, and the rotation's own (signed by the new key)
    db = sqlite3.connect(store_path)
    (body,) = db.execute("SELECT body FROM events WHERE kind = 'key_rotation'").fetchone()
    db.close()
    details = json.loads(body)["details"]
    assert details["old_vkey"] != details["new_vkey"] and details["key"] == "checkpoint"
    # With only the old vkey, the rotation's checkpoint is signed by an unknown key.
    old_only = tmp_path / "old.vkey"
    old_only.write_text(details["old_vkey"] + "\n")
    proc = notary.verify(store_path, "--json", "--trusted-key", str(old_only))
    assert "unknown_key" in {f["kind"] for f in json.loads(proc.stdout)["findings"]}
