"""Adversarial mutation suite over a real trail (issue 5).

One trail of more than 1,000 events is produced through the real `mcp-notary wrap` around the
real PyPI `mcp-server-time`, with signed checkpoints every 0.2 s and an anchor directory. Each
test copies the store, attacks the copy the way someone with write access to the file would
(dropping the append-only triggers first), and runs the real `mcp-notary verify`: every
mutation must be detected, with the right finding at the right place.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from e2e_notary import Notary, drop_append_only_triggers, sqlite_connect
from forge import rehash_from, rows
from trail import Trail

from mcp_notary.ledger.canonical import chain_hash
from mcp_notary.ledger.checkpoint import Checkpoint
from mcp_notary.ledger.merkle import CompactRange, leaf_hash
from mcp_notary.ledger.signing import NoteSigner, sign_note

pytestmark = pytest.mark.timeout(180)


def verify(notary: Notary, trail: Trail, store: Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = notary.verify(store, "--json", "--trusted-key", str(trail.vkey), *args)
    assert proc.stdout, proc.stderr.decode(errors="replace")
    return proc.returncode, json.loads(proc.stdout)


def findings(report: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if kind is None or f["kind"] == kind]


def kinds(report: dict[str, Any]) -> set[str]:
    return {f["kind"] for f in report["findings"]}


def attack(store: Path) -> sqlite3.Connection:
    db = sqlite_connect(store)
    drop_append_only_triggers(db)
    return db


def stream_of(db: sqlite3.Connection) -> str:
    (stream,) = db.execute("SELECT DISTINCT stream FROM events").fetchone()
    return str(stream)


def save_latest_checkpoint(store: Path, dest: Path) -> Path:
    """What an auditor keeps: the newest stored checkpoint, as a file."""
    db = sqlite3.connect(store)
    (note,) = db.execute("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
    db.close()
    dest.write_bytes(note)
    return dest


def checkpoint_sizes(db: sqlite3.Connection) -> list[int]:
    return [s for (s,) in db.execute("SELECT DISTINCT size FROM checkpoints ORDER BY size")]


# -- the untouched trail -----------------------------------------------------------------------


def test_the_trail_is_big_real_and_checkpointed(trail: Trail) -> None:
    db = sqlite3.connect(trail.store)
    (events,) = db.execute("SELECT count(*) FROM events").fetchone()
    (calls,) = db.execute("SELECT count(*) FROM events WHERE tool = 'get_current_time'").fetchone()
    sizes = checkpoint_sizes(db)
    db.close()
    assert events >= 1000 and calls == trail.calls
    assert len(sizes) >= 2, "expected several checkpoints while the trail grew"
    assert sizes[-1] == events, "the final checkpoint at shutdown must cover every event"
    assert len(list(trail.anchors.rglob("*.checkpoint"))) >= len(sizes)


def test_untouched_trail_verifies_with_every_kind_of_evidence(
    notary: Notary, trail: Trail, copy: Path, tmp_path: Path
) -> None:
    saved = save_latest_checkpoint(copy, tmp_path / "mine.checkpoint")
    status, report = verify(
        notary, trail, copy, "--anchor", str(trail.anchors), "--checkpoint", str(saved)
    )
    assert status == 0, report["findings"]
    assert report["result"] == "intact" and report["findings"] == []
    assert report["events"] >= 1000


# -- one stored event --------------------------------------------------------------------------


def test_flipped_byte_is_modified_at_that_seq(notary: Notary, trail: Trail, copy: Path) -> None:
    db = attack(copy)
    stream = stream_of(db)
    seq, body = rows(db, stream)[500]
    i = body.index(b'"timezone"')
    flipped = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
    db.execute("UPDATE events SET body = ? WHERE stream = ? AND seq = ?", (flipped, stream, seq))
    db.close()
    status, report = verify(notary, trail, copy)
    assert status == 1
    modified = findings(report, "modified")
    assert {f["seq"] for f in modified} == {seq}
    assert kinds(report) == {"modified"}


def test_changed_field_with_recomputed_chain_is_caught_by_the_checkpoints(
    notary: Notary, trail: Trail, copy: Path
) -> None:
    db = attack(copy)
    stream = stream_of(db)
    seq, body = rows(db, stream)[600]
    forged = body.replace(b'"outcome":"success"', b'"outcome":"denied"')
    if forged == body:
        forged = body.replace(b'"outcome":"tool_error"', b'"outcome":"success"')
    assert forged != body
    db.execute("UPDATE events SET body = ? WHERE stream = ? AND seq = ?", (forged, stream, seq))
    rehash_from(db, stream, seq)
    db.close()
    status, report = verify(notary, trail, copy)
    assert status == 1
    # The forger left the outcome column as it was: it no longer matches the event either.
    (column,) = findings(report, "column_mismatch")
    assert column["seq"] == seq and "outcome" in column["detail"]
    assert len(findings(report, "modified")) == len(findings(report)) - 1 == 1, findings(report)
    (finding,) = findings(report, "modified")
    assert finding["seq"] <= seq <= finding["seq_end"], finding
    assert "rehashed" in finding["detail"]


def test_deleted_row_is_a_missing_range(notary: Notary, trail: Trail, copy: Path) -> None:
    db = attack(copy)
    stream = stream_of(db)
    db.execute("DELETE FROM events WHERE stream = ? AND seq = 321", (stream,))
    db.close()
    status, report = verify(notary, trail, copy)
    assert status == 1
    (missing,) = findings(report, "missing")
    assert (missing["seq"], missing["seq_end"]) == (321, 321)


def test_deleted_first_rows_are_missing_from_seq_1(
    notary: Notary, trail: Trail, copy: Path
) -> None:
    db = attack(copy)
    stream = stream_of(db)
    db.execute("DELETE FROM events WHERE stream = ? AND seq <= 10", (stream,))
    db.close()
    status, report = verify(notary, trail, copy)
    assert status == 1
    (missing,) = findings(report, "missing")
    assert (missing["seq"], missing["seq_end"]) == (1, 10)


def test_swapped_rows_are_reordered(notary: Notary, trail: Trail, copy: Path) -> None:
    db = attack(copy)
    stream = stream_of(db)
    db.execute("UPDATE events SET seq = -1 WHERE stream = ? AND seq = 200", (stream,))
    db.execute("UPDATE events SET seq = 200 WHERE stream = ? AND seq = 201", (stream,))
    db.execute("UPDATE events SET seq = 201 WHERE stream = ? AND seq = -1", (stream,))
    db.close()
    status, report = verify(notary, trail, copy)
    assert status == 1
    reordered = findings(report, "reordered")
    assert {f["seq"] for f in reordered} == {200, 201}
    # The chain breaks only where the swapped pair meets its untouched successor.
    assert {f["seq"] for f in findings(report, "modified")} <= {202}


# -- the tail ------------------------------------------------------------------------------------


def _truncate(store: Path, keep: int, *, checkpoints_too: bool) -> None:
    db = attack(store)
    stream = stream_of(db)
    db.execute("DELETE FROM events WHERE stream = ? AND seq > ?", (stream, keep))
    if checkpoints_too:  # a careful attacker removes the checkpoints that would betray it
        db.execute("DELETE FROM checkpoints WHERE size > ?", (keep,))
    db.close()


def test_tail_truncation_is_caught_by_the_stores_own_checkpoint(
    notary: Notary, trail: Trail, copy: Path
) -> None:
    _truncate(copy, 900, checkpoints_too=False)
    status, report = verify(notary, trail, copy)
    assert status == 1
    (cut,) = findings(report, "tail_truncated")
    assert cut["seq"] == 901


def test_tail_truncation_hidden_in_the_store_is_caught_by_a_saved_checkpoint(
    notary: Notary, trail: Trail, copy: Path, tmp_path: Path
) -> None:
    saved = save_latest_checkpoint(copy, tmp_path / "mine.checkpoint")
    db = sqlite3.connect(copy)
    sizes = checkpoint_sizes(db)
    db.close()
    keep = sizes[-2]  # cut back exactly to an earlier checkpoint: the store looks whole
    _truncate(copy, keep, checkpoints_too=True)
    status, report = verify(notary, trail, copy)
    assert status == 0, "without outside evidence, a clean cut at a checkpoint is invisible"
    status, report = verify(notary, trail, copy, "--checkpoint", str(saved))
    assert status == 1
    (cut,) = findings(report, "tail_truncated")
    assert cut["seq"] == keep + 1 and cut["source"] == f"file:{saved}"


def test_tail_truncation_hidden_in_the_store_is_caught_by_the_anchors(
    notary: Notary, trail: Trail, copy: Path
) -> None:
    db = sqlite3.connect(copy)
    sizes = checkpoint_sizes(db)
    db.close()
    # Cut between two checkpoints (checkpoint sizes depend on timing), so a tail is unsigned.
    keep = next(s for s in range(850, sizes[-1]) if s not in sizes)
    _truncate(copy, keep, checkpoints_too=True)
    status, report = verify(notary, trail, copy)
    assert status == 2, "an unsigned tail is incomplete evidence"
    assert kinds(report) == {"uncovered"}
    status, report = verify(notary, trail, copy, "--anchor", str(trail.anchors))
    assert status == 1
    (cut,) = findings(report, "tail_truncated")
    assert cut["seq"] == keep + 1 and cut["source"].startswith("anchor:")


# -- forgeries ---------------------------------------------------------------------------------


def test_forged_row_appended_after_close_is_flagged(
    notary: Notary, trail: Trail, copy: Path
) -> None:
    db = attack(copy)
    stream = stream_of(db)
    last_seq, last_body = rows(db, stream)[-1]
    (prev,) = db.execute(
        "SELECT chain_hash FROM events WHERE stream = ? AND seq = ?", (stream, last_seq)
    ).fetchone()
    event = json.loads(last_body)
    event.update(seq=last_seq + 1, event_id="01900000-0000-7000-8000-000000000001")
    body = json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
    db.execute(
        "INSERT INTO events (stream, seq, event_id, timestamp, kind, method, tool, principal_id,"
        " outcome, body, leaf_hash, chain_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            stream,
            last_seq + 1,
            event["event_id"],
            event["timestamp"],
            event["kind"],
            None,
            None,
            "mallory",
            None,
            body,
            leaf_hash(body),
            chain_hash(bytes(prev), body),
        ),
    )
    db.close()
    status, report = verify(notary, trail, copy)
    assert status == 1
    (after,) = findings(report, "appended_after_close")
    assert after["seq"] == last_seq + 1


def test_forged_row_inserted_mid_stream_with_recomputed_chain(
    notary: Notary, trail: Trail, copy: Path
) -> None:
    db = attack(copy)
    stream = stream_of(db)
    all_rows = rows(db, stream)
    at = 400
    # Shift every later row up by one (from the end, to keep the key unique), then forge seq 400.
    for seq, body in reversed(all_rows):
        if seq < at:
            break
        event = json.loads(body)
        event["seq"] = seq + 1
        moved = json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
        db.execute(
            "UPDATE events SET seq = ?, body = ? WHERE stream = ? AND seq = ?",
            (seq + 1, moved, stream, seq),
        )
    forged = json.loads(all_rows[at - 1][1])
    forged["event_id"] = "01900000-0000-7000-8000-000000000002"
    body = json.dumps(forged, sort_keys=True, separators=(",", ":")).encode()
    db.execute(
        "INSERT INTO events (stream, seq, event_id, timestamp, kind, body, leaf_hash, chain_hash)"
        " VALUES (?, ?, ?, ?, ?, ?, x'', x'')",
        (stream, at, forged["event_id"], forged["timestamp"], forged["kind"], body),
    )
    rehash_from(db, stream, at)
    db.close()
    status, report = verify(notary, trail, copy)
    assert status == 1
    modified = findings(report, "modified")
    assert modified and modified[0]["seq"] <= at <= modified[0]["seq_end"]
    # The shifted last event is now past the final checkpoint, too; the forged row's columns
    # (left empty) are not the event's.
    assert kinds(report) == {"modified", "uncovered", "column_mismatch"}
    assert {f["seq"] for f in findings(report, "column_mismatch")} == {at}


def test_store_recomputed_and_signed_with_another_key(
    notary: Notary, trail: Trail, copy: Path, tmp_path: Path
) -> None:
    saved = save_latest_checkpoint(copy, tmp_path / "mine.checkpoint")
    db = attack(copy)
    stream = stream_of(db)
    # Rewrite one event, recompute everything, and re-sign every checkpoint with a new key.
    seq, body = next((s, b) for s, b in rows(db, stream)[100:] if b"Europe/Paris" in b)
    db.execute(
        "UPDATE events SET body = ? WHERE stream = ? AND seq = ?",
        (body.replace(b"Europe/Paris", b"Europe/Rome"), stream, seq),
    )
    rehash_from(db, stream, 1)
    mallory = NoteSigner.generate("mcp-notary/mallory")
    tree = CompactRange()
    leaves = [leaf_hash(b) for _, b in rows(db, stream)]
    (origin,) = db.execute("SELECT DISTINCT origin FROM checkpoints").fetchone()
    db.execute("DELETE FROM checkpoints")
    for size in (len(leaves) // 2, len(leaves)):
        while tree.size < size:
            tree.append(leaves[tree.size])
        note = sign_note(Checkpoint(origin, size, tree.root()).to_body(), [mallory]).render()
        db.execute(
            "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, '2026-01-01T00:00:00.000000Z')",
            (stream, origin, size, tree.root(), note),
        )
    db.close()
    status, report = verify(notary, trail, copy)
    assert status == 1
    unknown = findings(report, "unknown_key")
    assert len(unknown) == 2 and all("mcp-notary/mallory" in f["detail"] for f in unknown)
    # The auditor's own checkpoint, from before the rewrite, no longer matches either.
    status, report = verify(notary, trail, copy, "--checkpoint", str(saved))
    assert status == 1
    assert "modified" in kinds(report) and "unknown_key" in kinds(report)


def test_two_signed_roots_for_one_size_are_a_fork(
    notary: Notary, trail: Trail, copy: Path, tmp_path: Path
) -> None:
    # Someone holding the real key signed a second history: same size, different root.
    key = trail.vkey.with_suffix(".key")
    signer_text = key.read_text().strip()
    signer = NoteSigner.from_private_key_string(signer_text)
    db = sqlite3.connect(copy)
    origin, size = db.execute(
        "SELECT origin, size FROM checkpoints ORDER BY size LIMIT 1"
    ).fetchone()
    db.close()
    other_root = hashlib.sha256(b"another history").digest()
    forked = tmp_path / "forked.checkpoint"
    forked.write_bytes(sign_note(Checkpoint(origin, size, other_root).to_body(), [signer]).render())
    status, report = verify(notary, trail, copy, "--checkpoint", str(forked))
    assert status == 1
    (fork,) = findings(report, "fork")
    assert fork["seq"] == size
    assert base64.b64encode(other_root).decode() not in fork["detail"]  # hex prefixes, not b64
    assert kinds(report) == {"fork"}


def test_bad_signature_by_the_trusted_key_is_named(
    notary: Notary, trail: Trail, copy: Path
) -> None:
    db = attack(copy)
    (note, size) = db.execute("SELECT note, size FROM checkpoints ORDER BY size LIMIT 1").fetchone()
    text, _, sig_line = bytes(note).rpartition(b"\n\n")
    name, _, sig = sig_line.decode().strip().rpartition(" ")
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 0xFF
    bad = text + b"\n\n" + f"{name} {base64.b64encode(bytes(raw)).decode()}\n".encode()
    db.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (bad, size))
    db.close()
    status, report = verify(notary, trail, copy)
    assert status == 1
    assert {f["kind"] for f in report["findings"]} == {"bad_signature"}


def test_checkpoints_missing_from_the_anchor_are_reported(
    notary: Notary, trail: Trail, copy: Path, tmp_path: Path
) -> None:
    partial = tmp_path / "partial-anchor"
    shutil.copytree(trail.anchors, partial)
    files = sorted(partial.rglob("*.checkpoint"))
    files[0].unlink()
    status, report = verify(notary, trail, copy, "--anchor", str(partial))
    assert status == 2
    (gap,) = findings(report, "not_anchored")
    assert gap["severity"] == "incomplete"


def test_without_a_trusted_key_the_evidence_is_incomplete(
    notary: Notary, trail: Trail, copy: Path, tmp_path: Path
) -> None:
    other = NoteSigner.generate("someone-else")
    vkey = tmp_path / "other.vkey"
    vkey.write_text(other.vkey + "\n")
    proc = notary.verify(copy, "--json", "--trusted-key", str(vkey))
    report = json.loads(proc.stdout)
    assert proc.returncode == 1  # every stored checkpoint is signed by an unknown key
    assert kinds(report) == {"unknown_key", "uncovered"}
