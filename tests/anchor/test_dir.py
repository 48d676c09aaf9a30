"""The append-only anchor directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mcp_notary.anchor import AnchorError, anchor_object_name, open_anchor
from mcp_notary.anchor.dir import DirAnchor
from mcp_notary.errors import ConfigError
from mcp_notary.ledger.store import CheckpointRow


def row(size: int, note: bytes = b"note\n\n- sig\n") -> CheckpointRow:
    return CheckpointRow("h/1/x", "mcp-notary/h/1/x", size, bytes(32), note, "t")


def test_one_file_per_checkpoint_readable_back(tmp_path: Path) -> None:
    anchor = open_anchor(str(tmp_path / "anchors"))
    assert isinstance(anchor, DirAnchor)
    anchor.publish(row(1, b"one\n"))
    anchor.publish(row(2, b"two\n"))
    found = {n.note for n in anchor.notes()}
    assert found == {b"one\n", b"two\n"}
    files = sorted((tmp_path / "anchors").iterdir())
    assert [f.name[:34] for f in files] == [
        "mcp-notary_h_1_x.0000000000000001-",  # origin made path-safe, one flat directory
        "mcp-notary_h_1_x.0000000000000002-",
    ]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o444


def test_an_existing_copy_is_never_overwritten(tmp_path: Path) -> None:
    anchor = DirAnchor(tmp_path)
    first = row(5, b"original\n")
    anchor.publish(first)
    path = tmp_path / anchor_object_name(first).replace("/", ".")
    os.chmod(path, 0o644)
    path.write_bytes(b"someone else's bytes\n")
    anchor.publish(first)  # same note, same name: left alone (it is already anchored)
    assert path.read_bytes() == b"someone else's bytes\n"
    # A different note of the same size (a fork) gets its own file: both survive.
    anchor.publish(row(5, b"forked\n"))
    assert len(list(tmp_path.rglob("*.checkpoint"))) == 2


def test_unwritable_anchor_is_an_anchor_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(AnchorError):
        DirAnchor(tmp_path / "file").publish(row(1))


def test_reading_a_missing_anchor_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        list(DirAnchor(tmp_path / "nope").notes())
