"""`verify` says what it checked against what, and what it could not see (issue 15, item 5).

Without outside evidence (anchor, witness, saved checkpoint) a stream cut back to one of its
own checkpoints, a closed stream whose close was removed, or a deleted reader stream still
verify: the output (text and JSON) must say so, and name a stream that has no close record
although its writer is gone. With outside evidence it says what that evidence covers.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from e2e_notary import Notary, drop_append_only_triggers, sqlite_connect
from trail import Trail, build_trail

pytestmark = pytest.mark.timeout(300)

NO_OUTSIDE = "no outside evidence"


@pytest.fixture(scope="module")
def small_trail(
    notary: Notary, time_cmd: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Trail:
    return build_trail(notary, time_cmd, tmp_path_factory.mktemp("limits"), calls=300)


@pytest.fixture
def copy(small_trail: Trail, tmp_path: Path) -> Path:
    return small_trail.copy(tmp_path / "copy")


def verify_json(notary: Notary, trail: Trail, store: Path, *args: str) -> tuple[int, Any]:
    proc = notary.verify(store, "--json", "--trusted-key", str(trail.vkey), *args)
    assert proc.stdout, proc.stderr.decode(errors="replace")
    return proc.returncode, json.loads(proc.stdout)


def verify_text(notary: Notary, trail: Trail, store: Path, *args: str) -> tuple[int, str]:
    proc = notary.verify(store, "--trusted-key", str(trail.vkey), *args)
    return proc.returncode, proc.stdout.decode()


def capture_stream(store: Path) -> str:
    db = sqlite3.connect(store)
    (stream,) = db.execute(
        "SELECT DISTINCT stream FROM events WHERE kind = 'call' LIMIT 1"
    ).fetchone()
    db.close()
    return str(stream)


def test_without_outside_evidence_the_report_states_its_limits(
    notary: Notary, small_trail: Trail, copy: Path
) -> None:
    status, report = verify_json(notary, small_trail, copy)
    assert status == 0 and report["result"] == "intact"
    evidence = report["evidence"]
    assert evidence["outside_evidence"] is False
    assert evidence["checkpoint_sources"]["store"] >= 1
    checked = " ".join(evidence["checked"])
    assert "leaf and chain hashes" in checked and "indexed columns" in checked
    assert "streams table" in checked
    (limit,) = evidence["limits"]
    assert NO_OUTSIDE in limit
    assert "cutting a stream back" in limit and "deleting a whole stream" in limit
    assert "cannot be detected" in limit

    status, text = verify_text(notary, small_trail, copy)
    assert status == 0
    assert "✓ intact (against the store's own evidence only)" in text
    assert "i checked " in text and "leaf and chain hashes" in text
    assert "! limit: " + NO_OUTSIDE in text and "cannot be detected" in text


def test_with_a_saved_checkpoint_the_report_says_what_it_covers(
    notary: Notary, small_trail: Trail, copy: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "saved"
    status, _ = verify_json(notary, small_trail, copy, "--save-checkpoints", str(saved))
    assert status == 0
    files = sorted(saved.iterdir())
    assert files
    options = [arg for f in files for arg in ("--checkpoint", str(f))]
    status, report = verify_json(notary, small_trail, copy, *options)
    assert status == 0
    evidence = report["evidence"]
    assert evidence["outside_evidence"] is True
    assert evidence["checkpoint_sources"]["file"] == len(files)
    limits = " ".join(evidence["limits"])
    assert NO_OUTSIDE not in limits
    assert "after the newest outside checkpoint" in limits

    status, text = verify_text(notary, small_trail, copy, *options)
    assert status == 0 and "✓ intact:" in text and "store's own evidence only" not in text
    assert f"{len(files)} saved checkpoint file(s)" in text


def test_a_stream_cut_back_to_a_checkpoint_is_reported_as_unclosed(
    notary: Notary, small_trail: Trail, copy: Path
) -> None:
    stream = capture_stream(copy)
    db = sqlite_connect(copy)
    sizes = [s for (s,) in db.execute("SELECT DISTINCT size FROM checkpoints ORDER BY size")]
    assert len(sizes) >= 2
    keep = sizes[-2]  # the close record and the checkpoint that sealed it go
    drop_append_only_triggers(db)
    db.execute("DELETE FROM events WHERE stream = ? AND seq > ?", (stream, keep))
    db.execute("DELETE FROM checkpoints WHERE stream = ? AND size > ?", (stream, keep))
    db.close()

    status, report = verify_json(notary, small_trail, copy)
    assert status == 0, "the store alone cannot tell this cut"
    (mine,) = [s for s in report["stream_reports"] if s["stream"] == stream]
    assert mine["state"]["closure"] == "gone"
    assert "close was removed" in mine["state"]["detail"]
    assert NO_OUTSIDE in report["evidence"]["limits"][0]

    status, text = verify_text(notary, small_trail, copy)
    assert f"! {stream}: no close record, and its writer process is gone" in text
    assert "! limit: " + NO_OUTSIDE in text

    status, report = verify_json(notary, small_trail, copy, "--anchor", str(small_trail.anchors))
    assert status == 1 and {f["kind"] for f in report["findings"]} == {"tail_truncated"}


def test_a_deleted_reader_stream_is_a_stated_limit_even_with_anchors(
    notary: Notary, small_trail: Trail, copy: Path
) -> None:
    proc = notary.run("events", "--limit", "1", store=copy)
    assert proc.returncode == 0, proc.stderr.decode()
    db = sqlite3.connect(copy)
    (reader,) = db.execute(
        "SELECT DISTINCT stream FROM events WHERE kind = 'audit_access'"
    ).fetchone()
    db.close()
    anchored = ("--anchor", str(small_trail.anchors))
    status, report = verify_json(notary, small_trail, copy, *anchored)
    # The reader stream's checkpoints are not anchored: reported, and named in the limits.
    assert status == 2 and {f["kind"] for f in report["findings"]} == {"not_anchored"}
    limits = " ".join(report["evidence"]["limits"])
    assert "have no outside checkpoint" in limits and reader in limits

    db = sqlite_connect(copy)
    drop_append_only_triggers(db)
    for table in ("events", "checkpoints", "streams"):
        db.execute(f"DELETE FROM {table} WHERE stream = ?", (reader,))
    db.close()
    status, report = verify_json(notary, small_trail, copy, *anchored)
    assert status == 0  # undetectable: and the output says which streams that applies to
    assert "streams that no outside checkpoint names" in " ".join(report["evidence"]["limits"])
    status, report = verify_json(notary, small_trail, copy)
    assert "a reader's audit_access stream" in report["evidence"]["limits"][0]
