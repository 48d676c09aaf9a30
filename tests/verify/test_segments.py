"""Archived segments checked offline: built from a real store by a retention run's writer."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from factories import append, event
from factories import stream_info as info

from mcp_notary.ledger.checkpointer import KeySigner, stream_origin
from mcp_notary.ledger.keys import load_or_create_signing_key, load_trusted_keys, vkey_path_for
from mcp_notary.ledger.segment import SegmentError, decode_segment, encode_segment, period_end
from mcp_notary.ledger.store import LeafRecord
from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.lifecycle.archive import DirArchive
from mcp_notary.lifecycle.retention import StreamPlan
from mcp_notary.lifecycle.segments import write_segments
from mcp_notary.verify.segments import check_segment


@pytest.fixture
def archived(tmp_path: Path) -> tuple[SQLiteStore, Path, list]:
    store = SQLiteStore(tmp_path / "audit.db")
    store.create_stream(info("s1"))
    append(store, "s1", [event(f"tool{i % 3}") for i in range(25)])
    key = tmp_path / "checkpoint.key"
    signer = KeySigner(load_or_create_signing_key(key))
    plan = StreamPlan("s1", archive=[(4, 20)], spans=[(4, 20)])
    written = write_segments(store, plan, DirArchive(tmp_path / "arch"), signer,
                             stream_origin("s1"), "run-1")  # fmt: skip
    return store, tmp_path, written


def stored(store: SQLiteStore, first: int, last: int) -> list[LeafRecord]:
    return [r for page in store.scan_leaves("s1", first, last) for r in page]


def test_a_segment_verifies_offline_and_against_the_store(archived: tuple) -> None:
    store, tmp, written = archived
    assert [(w["first"], w["last"]) for w in written] == [(4, 20)]
    data = (tmp / "arch").joinpath(next(p for p in (tmp / "arch").rglob("*.gz"))).read_bytes()
    segment = decode_segment(data)
    assert encode_segment(segment) == data  # deterministic bytes
    trusted = load_trusted_keys(vkey_path_for(tmp / "checkpoint.key"))
    assert check_segment(segment, "seg", trusted, origin_prefix="mcp-notary") == []
    assert check_segment(segment, "seg", trusted, origin_prefix="mcp-notary",
                         stored=stored(store, 4, 20)) == []  # fmt: skip
    # The bodies are the stored bytes.
    assert list(segment.bodies) == [r[2] for r in stored(store, 4, 20)]


def test_segment_tampering_is_found(archived: tuple, tmp_path: Path) -> None:
    store, tmp, _written = archived
    segment = decode_segment(next((tmp / "arch").rglob("*.gz")).read_bytes())
    trusted = load_trusted_keys(vkey_path_for(tmp / "checkpoint.key"))

    def kinds(seg: object, **kw: object) -> list[str]:
        found = check_segment(seg, "seg", trusted, origin_prefix="mcp-notary", **kw)  # type: ignore[arg-type]
        return sorted({f.kind for f in found})

    bodies = list(segment.bodies)
    bodies[3] = bodies[3].replace(b'"tool0"', b'"tool9"').replace(b'"tool1"', b'"tool9"')
    assert kinds(replace(segment, bodies=tuple(bodies))) == ["modified"]
    dropped = replace(segment, bodies=segment.bodies[:-1], last_seq=segment.last_seq - 1)
    assert "modified" in kinds(dropped)
    assert kinds(segment) == []
    load_or_create_signing_key(tmp_path / "other.key")
    stranger = load_trusted_keys(vkey_path_for(tmp_path / "other.key"))
    found = check_segment(segment, "seg", stranger, origin_prefix="mcp-notary")
    assert [f.kind for f in found] == ["unknown_key"]
    # The store kept other hashes for a seq than the archive holds; or none at all.
    kept = stored(store, 4, 20)
    kept[6] = (*kept[6][:3], kept[7][3], kept[6][4])
    assert kinds(segment, stored=kept) == ["modified"]
    assert kinds(segment, stored=kept[1:]) == ["missing", "modified"]
    with pytest.raises(SegmentError):
        decode_segment(b"not gzip")


def test_segments_split_at_the_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mcp_notary.lifecycle.segments as segments

    monkeypatch.setattr(segments, "SEGMENT_MAX_EVENTS", 4)
    store = SQLiteStore(tmp_path / "audit.db")
    store.create_stream(info("s1"))
    append(store, "s1", [event() for _ in range(12)])
    signer = KeySigner(load_or_create_signing_key(tmp_path / "k.key"))
    plan = StreamPlan("s1", archive=[(2, 11)], spans=[(2, 11)], totals=[(2, 1000)])
    written = write_segments(store, plan, DirArchive(tmp_path / "a"), signer,
                             stream_origin("s1"), "r")  # fmt: skip
    assert [(w["first"], w["last"]) for w in written] == [(2, 5), (6, 9), (10, 11)]
    trusted = load_trusted_keys(vkey_path_for(tmp_path / "k.key"))
    for path in (tmp_path / "a").rglob("*.gz"):
        segment = decode_segment(path.read_bytes())
        newest = max(json.loads(b)["timestamp"] for b in segment.bodies)
        assert segment.expires_at == period_end(newest, 1000)
        assert check_segment(segment, "s", trusted, origin_prefix="mcp-notary") == []


def test_events_of_different_periods_go_to_segments_of_their_own(tmp_path: Path) -> None:
    """Interleaved events with different total periods: each segment holds one period's
    bodies and only the hashes of the others, and still verifies offline and against the
    store; a forged hash of an event it does not hold breaks its root."""
    store = SQLiteStore(tmp_path / "audit.db")
    store.create_stream(info("s1"))
    append(store, "s1", [event(f"tool{i % 2}") for i in range(12)])
    key = tmp_path / "k.key"
    signer = KeySigner(load_or_create_signing_key(key))
    # Seqs 2..11 archived; even seqs (tool1) keep 30 days, odd ones (tool0) 365.
    totals = [(s, 30 if s % 2 == 0 else 365) for s in range(2, 12)]
    plan = StreamPlan("s1", archive=[(2, 11)], spans=[(2, 11)], totals=totals)
    written = write_segments(store, plan, DirArchive(tmp_path / "a"), signer,
                             stream_origin("s1"), "r")  # fmt: skip
    assert sorted((w["first"], w["last"], w["total_days"]) for w in written) == [
        (2, 10, 30), (3, 11, 365)
    ]  # fmt: skip
    trusted = load_trusted_keys(vkey_path_for(key))
    held: dict[int, bytes] = {}
    for path in (tmp_path / "a").rglob("*.gz"):
        segment = decode_segment(path.read_bytes())
        assert encode_segment(segment) == path.read_bytes()
        parity = 0 if segment.total_days == 30 else 1
        assert segment.seqs() == [s for s in range(2, 12) if s % 2 == parity][: len(segment.seqs())]
        held |= dict(zip(segment.seqs(), segment.bodies, strict=True))
        kept = stored(store, segment.first_seq, segment.last_seq)
        assert check_segment(segment, "s", trusted, origin_prefix="mcp-notary",
                             stored=kept) == []  # fmt: skip
        seq, _leaf, chain = segment.others[0]
        forged = replace(segment, others=((seq, bytes(32), chain), *segment.others[1:]))
        assert "modified" in {f.kind for f in check_segment(
            forged, "s", trusted, origin_prefix="mcp-notary")}  # fmt: skip
    # Together they hold every archived body exactly once: the stored bytes.
    assert held == {r[0]: r[2] for r in stored(store, 2, 11)}
