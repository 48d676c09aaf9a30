"""Every kind of damage to a stored stream is named, at the right seq."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from factories import append, event, stream_info

from mcp_notary.ledger.store import EventRow
from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.verify.chain import Finding, verify_stream


def rows(tmp_path: Path, n: int = 10) -> list[EventRow]:
    store = SQLiteStore(tmp_path / "a.db")
    store.create_stream(stream_info("s"))
    append(store, "s", [event(tool=f"t{i}") for i in range(n)])
    return list(store.scan("s"))


def kinds(findings: Iterable[Finding]) -> list[tuple[str, int | None]]:
    return [(f.kind, f.seq) for f in findings]


def test_intact_stream_has_no_findings(tmp_path: Path) -> None:
    assert list(verify_stream("s", rows(tmp_path))) == []


def test_one_flipped_byte_is_modified_at_that_seq(tmp_path: Path) -> None:
    r = rows(tmp_path)
    body = bytearray(r[4].body)
    body[body.index(b"t4")] = ord("x")
    r[4] = dataclasses.replace(r[4], body=bytes(body))
    assert ("modified", 5) in kinds(verify_stream("s", r))
    assert {seq for _, seq in kinds(verify_stream("s", r))} == {5}


def test_deleted_row_is_missing(tmp_path: Path) -> None:
    r = rows(tmp_path)
    del r[3]
    found = kinds(verify_stream("s", r))
    assert found[0] == ("missing", 4)
    assert ("modified", 5) in found  # seq 5's chain no longer follows from seq 3


def test_swapped_rows_are_reordered(tmp_path: Path) -> None:
    r = rows(tmp_path)
    a, b = r[2], r[3]
    r[2] = dataclasses.replace(a, body=b.body, leaf_hash=b.leaf_hash, chain_hash=b.chain_hash)
    r[3] = dataclasses.replace(b, body=a.body, leaf_hash=a.leaf_hash, chain_hash=a.chain_hash)
    assert kinds(verify_stream("s", r))[0] == ("reordered", 3)


def test_empty_stream_is_incomplete_not_broken(tmp_path: Path) -> None:
    (finding,) = verify_stream("s", [])
    assert finding.kind == "empty_stream" and finding.severity == "incomplete"
