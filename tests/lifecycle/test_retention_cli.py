"""Retention end to end on a trail of 100,000 events: `hold place`, `retention apply`,
`verify --archive`, `hold release`, and the tampering retention must not be able to hide."""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from e2e_notary import Notary, drop_append_only_triggers, sqlite_connect, store_files
from lifecycle_trail import AgedTrail, build_aged_trail

from mcp_notary.ledger.segment import decode_segment

EVENTS = 100_000
NOW = "2026-11-24T00:00:00.000000Z"
POLICY = '[retention]\nhot = "P90D"\ntotal = "P365D"\n'


@pytest.fixture(scope="module")
def lifecycle_notary(tmp_path_factory: pytest.TempPathFactory) -> Notary:
    home = tmp_path_factory.mktemp("lifecycle-home")
    for sub in (".config", ".local/share", ".local/state", ".cache"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    return Notary(home=home)


@pytest.fixture(scope="module")
def aged(lifecycle_notary: Notary, tmp_path_factory: pytest.TempPathFactory) -> AgedTrail:
    work = tmp_path_factory.mktemp("aged")
    key = lifecycle_notary.home / ".local/share/mcp-notary/checkpoint.key"
    return build_aged_trail(
        work / "audit.db",
        key,
        events=EVENTS,
        streams=4,
        days=400,
        end=datetime(2026, 11, 1, tzinfo=UTC),
    )


def copy_store(trail: AgedTrail, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for path in store_files(trail.store):
        shutil.copy2(path, dest / path.name)
    return dest / trail.store.name


def run_ok(notary: Notary, *args: str, store: Path) -> str:
    proc = notary.run(*args, store=store, timeout=300)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc.stdout.decode()


def verify_json(notary: Notary, store: Path, *args: str) -> tuple[int, dict]:
    proc = notary.run("verify", "--json", *args, store=store, timeout=300)
    assert proc.returncode in (0, 1, 2), proc.stderr.decode()[-3000:]
    return proc.returncode, json.loads(proc.stdout)


def stored(store: Path, sql: str, *params: object) -> list[tuple]:
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def test_retention_keeps_the_trail_verifiable(
    lifecycle_notary: Notary, aged: AgedTrail, tmp_path: Path
) -> None:
    notary = lifecycle_notary
    store = copy_store(aged, tmp_path / "store")
    config = tmp_path / "mcp-notary.toml"
    config.write_text(POLICY)
    archive = tmp_path / "archive"
    before = dict(stored(store, "SELECT event_id, body FROM events"))
    assert len(before) == EVENTS

    # A hold on one principal's refunds.
    out = run_ok(notary, "hold", "place", "--principal", "mallory", "--tool", "refund",
                 "--reason", "case 7", store=store)  # fmt: skip
    hold_id = out.split()[1].rstrip(":")

    proc = notary.run("retention", "apply", "--config", str(config), "--archive", str(archive),
                      "--now", NOW, "--json", store=store, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    run = json.loads(proc.stdout)
    cutoff_hot, cutoff_total = "2026-08-26T00:00:00.000000Z", "2025-11-24T00:00:00.000000Z"
    events = [json.loads(b) for b in before.values()]
    old = [e for e in events if e["timestamp"] < cutoff_hot]
    held = [e for e in old if e["principal"]["id"] == "mallory" and e["tool"] == "refund"]
    held_ids = {e["event_id"] for e in held}
    archived = [e for e in old if e["timestamp"] >= cutoff_total and e["event_id"] not in held_ids]
    expired = [e for e in old if e["timestamp"] < cutoff_total and e["event_id"] not in held_ids]
    assert run["archived_events"] == len(archived) > 50_000
    assert run["expired_events"] == len(expired) > 10_000
    assert run["held_events"] == len(held) > 1_000
    assert run["holds"] == [hold_id]

    # The store: bodies gone, hashes kept; held events untouched.
    remaining = {r[0] for r in stored(store, "SELECT event_id FROM events")}
    assert not remaining & {e["event_id"] for e in archived + expired}
    assert {e["event_id"] for e in held} <= remaining
    pruned = stored(store, "SELECT count(*) FROM pruned_events")[0][0]
    assert pruned == len(archived) + len(expired)

    # The archive holds exactly the archived bodies, byte for byte.
    archived_bodies: dict[str, bytes] = {}
    for path in archive.rglob("*.jsonl.gz"):
        segment = decode_segment(path.read_bytes())
        for body in segment.bodies:
            archived_bodies[json.loads(body)["event_id"]] = body
    for e in archived:
        assert archived_bodies[e["event_id"]] == before[e["event_id"]]
    assert not {e["event_id"] for e in expired} & set(archived_bodies)

    # Verify: intact, with the pruned ranges reported as deleted by policy.
    status, report = verify_json(notary, store, "--archive", str(archive))
    assert status == 0, report["findings"]
    assert report["archive_segments"] == len(list(archive.rglob("*.jsonl.gz")))
    by_policy = {
        s["stream"]: s["pruned_by_policy"]
        for s in report["stream_reports"]
        if s["pruned_by_policy"]
    }
    assert set(by_policy) == set(aged.streams)
    assert sum(r["last"] - r["first"] + 1 for rs in by_policy.values() for r in rs) == pruned

    # Release the hold: the next run archives what it kept, and the trail still verifies.
    run_ok(notary, "hold", "release", hold_id, "--reason", "case closed", store=store)
    second = json.loads(
        run_ok(
            notary,
            "retention",
            "apply",
            "--config",
            str(config),
            "--archive",
            str(archive),
            "--now",
            NOW,
            "--json",
            store=store,
        )
    )
    assert second["held_events"] == 0
    assert second["archived_events"] + second["expired_events"] == len(held)
    status, report = verify_json(notary, store, "--archive", str(archive))
    assert status == 0, report["findings"]

    # `retention show` lists both runs and the policy.
    shown = json.loads(run_ok(notary, "retention", "show", "--config", str(config), "--json",
                              store=store))  # fmt: skip
    assert [r["run_id"] for r in shown["runs"]] == [run["run_id"], second["run_id"]]
    assert shown["policy"]["default"] == {"hot": "P90D", "total": "P365D"}
    assert shown["legal_holds"] == []

    # A tampered archive is caught.
    victim = next(archive.rglob("*.jsonl.gz"))
    lines = gzip.decompress(victim.read_bytes()).split(b"\n")
    lines[2] = lines[2].replace(b"result of call", b"result of kall")
    victim.chmod(0o644)
    victim.write_bytes(gzip.compress(b"\n".join(lines)))
    status, report = verify_json(notary, store, "--archive", str(archive))
    assert status == 1
    assert any(f["kind"] == "modified" and "archive:" in (f["source"] or "")
               for f in report["findings"])  # fmt: skip


def test_deletion_outside_retention_is_still_caught(
    lifecycle_notary: Notary, aged: AgedTrail, tmp_path: Path
) -> None:
    notary = lifecycle_notary
    store = copy_store(aged, tmp_path / "store")
    config = tmp_path / "mcp-notary.toml"
    config.write_text(POLICY)
    run_ok(notary, "retention", "apply", "--config", str(config), "--now", NOW, store=store)
    stream = aged.streams[1]
    kept = stored(store, "SELECT max(seq) FROM events WHERE stream = ?", stream)[0][0]

    db = sqlite_connect(store)
    # The guard refuses a plain delete of an event retention did not prune...
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM events WHERE stream = ? AND seq = ?", (stream, kept))
    # ...and satisfying it by hand (copying the hashes as retention would) hides nothing:
    # no retention record names that range.
    db.execute(
        "INSERT INTO pruned_events SELECT stream, seq, event_id, timestamp, kind, leaf_hash, "
        "chain_hash, 'forged' FROM events WHERE stream = ? AND seq = ?",
        (stream, kept - 10),
    )
    db.execute("DELETE FROM events WHERE stream = ? AND seq = ?", (stream, kept - 10))
    # An attacker who drops the triggers deletes a row outright.
    drop_append_only_triggers(db)
    db.execute("DELETE FROM events WHERE stream = ? AND seq = ?", (stream, kept - 20))
    db.close()

    status, report = verify_json(notary, store)
    assert status == 1
    missing = sorted(f["seq"] for f in report["findings"] if f["kind"] == "missing")
    assert missing == [kept - 20, kept - 10]
    # The watcher, reading the trail for the first time, raises the same alarms.
    watched = notary.run("watch", "--once", "--no-syslog", "--no-record", store=store)
    assert watched.returncode == 1
    alerts = (watched.stdout + watched.stderr).decode()
    assert f"{kept - 20}..{kept - 20}" in alerts and f"{kept - 10}..{kept - 10}" in alerts
    # The genuine pruned ranges are still told apart, as deleted by policy.
    assert all(
        s["pruned_by_policy"] for s in report["stream_reports"] if s["stream"] in aged.streams
    )


def test_retention_on_postgresql(lifecycle_notary: Notary, tmp_path: Path) -> None:
    """The same lifecycle on the shared store: the owner's `retention apply` prunes through the
    delete guard, and `verify` tells the recorded ranges from a deletion by hand."""
    import psycopg
    from pgtest import partition_sizes, pg_schema

    notary = lifecycle_notary
    key = notary.home / ".local/share/mcp-notary/checkpoint.key"
    config = tmp_path / "mcp-notary.toml"
    config.write_text(POLICY)
    archive = tmp_path / "archive"
    with pg_schema("lifecycle") as url:
        trail = build_aged_trail(url, key, events=4_000, streams=2, days=400,
                                 end=datetime(2026, 11, 1, tzinfo=UTC))  # fmt: skip
        before = partition_sizes(url)
        run = json.loads(run_ok(notary, "retention", "apply", "--store", url, "--config",
                                str(config), "--archive", str(archive), "--now", NOW,
                                "--json", store=None))  # fmt: skip
        assert run["archived_events"] > 2_000 and run["expired_events"] > 300
        # Months wholly past the hot period went at once: dropped, or compacted to the few
        # events that are never pruned; the rest are in their own months' partitions.
        months = partition_sizes(url)
        old = [m for m in before if "events_2025_12" <= m <= "events_2026_07"]
        assert len(old) == 8
        assert all(m not in months or months[m] <= before[m] // 10 for m in old)
        assert (
            sum(months.values())
            == sum(before.values()) - run["archived_events"] - run["expired_events"] + 1
        )  # the run's own `retention` record
        proc = notary.run("verify", "--store", url, "--archive", str(archive), "--json")
        assert proc.returncode == 0, proc.stdout.decode()[-3000:]
        report = json.loads(proc.stdout)
        pruned = sum(
            r["last"] - r["first"] + 1
            for s in report["stream_reports"]
            for r in s["pruned_by_policy"]
        )
        assert pruned == run["archived_events"] + run["expired_events"]

        with psycopg.connect(url, autocommit=True) as db:
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                db.execute("DELETE FROM events WHERE stream = %s AND seq = 1995",
                           (trail.streams[0],))  # fmt: skip
            db.execute("ALTER TABLE events DISABLE TRIGGER USER")
            db.execute("DELETE FROM events WHERE stream = %s AND seq = 1990", (trail.streams[0],))
        proc = notary.run("verify", "--store", url, "--json")
        assert proc.returncode == 1
        missing = [f for f in json.loads(proc.stdout)["findings"] if f["kind"] == "missing"]
        assert [(f["stream"], f["seq"]) for f in missing] == [(trail.streams[0], 1990)]


@pytest.mark.parametrize(
    "filters",
    [
        ("--tool", "refund"),
        ("--principal", "mallory", "--since", "2026-03-01"),
        ("--search", "call 12*"),
        ("--search", '"result of call 1000"'),
        ("--search", "ord -tool_error", "--outcome", "success", "--limit", "7"),
        ("--outcome", "tool_error", "--limit", "9"),
    ],
)
def test_events_reads_the_archive_as_if_nothing_had_moved(
    lifecycle_notary: Notary, tmp_path: Path, filters: tuple[str, ...]
) -> None:
    notary = lifecycle_notary
    key = notary.home / ".local/share/mcp-notary/checkpoint.key"
    store = tmp_path / "audit.db"
    build_aged_trail(store, key, events=3_000, streams=3, days=400,
                     end=datetime(2026, 11, 1, tzinfo=UTC))  # fmt: skip
    before = [e["event_id"] for e in notary.events(store, *filters)]
    assert before
    config = tmp_path / "mcp-notary.toml"
    config.write_text('[retention]\nhot = "P60D"\n')  # no total: everything stays somewhere
    archive = tmp_path / "archive"
    run_ok(notary, "retention", "apply", "--config", str(config), "--archive", str(archive),
           "--now", NOW, store=store)  # fmt: skip
    in_store = [e["event_id"] for e in notary.events(store, *filters)]
    assert len(in_store) < len(before) or "--limit" in filters
    after = [e["event_id"] for e in notary.events(store, *filters, "--archive", str(archive))]
    assert after == before


def test_retention_decides_on_the_bodies_not_on_editable_columns(
    lifecycle_notary: Notary, aged: AgedTrail, tmp_path: Path
) -> None:
    """Columns beside the hashed body can be edited by anyone who can write the file (with
    the triggers dropped), and the chain still verifies. Retention must not let such an edit
    hide a hold, release a held event, or prune a record it never prunes."""
    notary = lifecycle_notary
    store = copy_store(aged, tmp_path / "store")
    config = tmp_path / "mcp-notary.toml"
    config.write_text(POLICY)
    out = run_ok(notary, "hold", "place", "--principal", "mallory", "--tool", "refund",
                 "--reason", "case 9", store=store)  # fmt: skip
    hold_id = out.split()[1].rstrip(":")
    held = stored(
        store,
        "SELECT event_id FROM events WHERE principal_id = 'mallory' AND tool = 'refund' "
        "AND timestamp < '2026-08-26'",
    )
    assert len(held) > 100
    db = sqlite_connect(store)
    try:
        drop_append_only_triggers(db)
        # The hold record stops looking like one; a held event stops looking held.
        db.execute("UPDATE events SET kind = 'call' WHERE kind = 'legal_hold'")
        db.execute("UPDATE events SET tool = 'lookup', principal_id = 'bob' WHERE event_id = ?",
                   held[0])  # fmt: skip
        db.commit()
    finally:
        db.close()
    proc = notary.run("retention", "apply", "--config", str(config), "--now", NOW, "--json",
                      store=store, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    run = json.loads(proc.stdout)
    assert run["holds"] == [hold_id]
    remaining = {r[0] for r in stored(store, "SELECT event_id FROM events")}
    assert {h[0] for h in held} <= remaining
    # The hold record itself is never pruned, whatever its kind column says.
    kinds = [json.loads(b)["kind"] for (b,) in stored(store, "SELECT body FROM events")]
    assert kinds.count("legal_hold") == 1
