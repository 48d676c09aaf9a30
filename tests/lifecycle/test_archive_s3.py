"""Retention into an S3 archive with Object Lock (moto's emulator, see tests/support/moto_s3):
segments locked in compliance mode until their total period ends, verified from the bucket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto.server")

from archive_expiry import END, check_mixed_expiry
from e2e_notary import Notary
from lifecycle_trail import build_aged_trail, mixed_retention_config
from moto_s3 import CREDENTIALS, locked_bucket, moto_endpoint

from mcp_notary.ledger.segment import decode_segment

BUCKET = "audit-archive"
NOW = "2026-11-24T00:00:00Z"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_endpoint() as url:
        yield url


def test_retention_archives_to_a_locked_bucket(
    notary: Notary, endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    s3 = locked_bucket(endpoint, BUCKET)
    store = tmp_path / "audit.db"
    key = notary.home / ".local/share/mcp-notary/checkpoint.key"
    build_aged_trail(store, key, events=3_000, streams=2, days=400,
                     end=datetime(2026, 11, 1, tzinfo=UTC))  # fmt: skip
    url = f"s3://{BUCKET}/trail?endpoint_url={endpoint}"
    config = tmp_path / "mcp-notary.toml"
    config.write_text(f'[retention]\nhot = "P90D"\ntotal = "P365D"\narchive = "{url}"\n')

    def run(*args: str) -> tuple[int, str]:
        proc = notary.run(*args, store=store, timeout=120)
        assert proc.returncode in (0, 1), proc.stderr.decode()[-2000:]
        return proc.returncode, proc.stdout.decode()

    env = notary.env()
    env.update(CREDENTIALS)
    monkeypatch.setattr(notary, "env", lambda *a, **k: env)
    status, out = run("retention", "apply", "--config", str(config), "--now", NOW, "--json")
    result = json.loads(out)
    assert result["archived_events"] > 1_500
    objects = s3.list_objects_v2(Bucket=BUCKET, Prefix="trail/")["Contents"]
    assert len(objects) == len(result["segments"]) >= 2
    for segment_record, obj in zip(
        sorted(result["segments"], key=lambda s: s["name"]),
        sorted(objects, key=lambda o: o["Key"]),
        strict=True,
    ):
        head = s3.head_object(Bucket=BUCKET, Key=obj["Key"])
        assert head["ObjectLockMode"] == "COMPLIANCE"
        newest = datetime.fromisoformat(segment_record["newest"].replace("Z", "+00:00"))
        until = head["ObjectLockRetainUntilDate"]
        assert abs(until - (newest + timedelta(days=365))) < timedelta(seconds=1)
        segment = decode_segment(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
        assert (segment.first_seq, segment.last_seq) == (segment_record["first"],
                                                         segment_record["last"])  # fmt: skip
    status, out = run("verify", "--archive", url, "--json")
    report = json.loads(out)
    assert status == 0, report["findings"]
    assert report["archive_segments"] == len(objects)


def test_mixed_retention_locks_and_removes_each_segment_at_its_own_expiry(
    notary: Notary, endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Object Lock holds each segment exactly until its own events' period ends (refunds 120
    days, their neighbours a year), and expiry then removes every version of it, not just
    the current one behind a delete marker."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    s3 = locked_bucket(endpoint, BUCKET)
    store = tmp_path / "audit.db"
    key = notary.home / ".local/share/mcp-notary/checkpoint.key"
    build_aged_trail(store, key, events=1_500, streams=1, days=300, end=END)
    url = f"s3://{BUCKET}/mixed?endpoint_url={endpoint}"
    env = notary.env()
    env.update(CREDENTIALS)
    monkeypatch.setattr(notary, "env", lambda *a, **k: env)
    check_mixed_expiry(notary, store, mixed_retention_config(tmp_path / "n.toml", url), url)
    listing = s3.list_object_versions(Bucket=BUCKET, Prefix="mixed/")
    versions = listing.get("Versions", [])
    assert versions and not listing.get("DeleteMarkers")  # expired ones are gone entirely
    for version in versions:
        head = s3.head_object(Bucket=BUCKET, Key=version["Key"])
        segment = decode_segment(s3.get_object(Bucket=BUCKET, Key=version["Key"])["Body"].read())
        assert segment.total_days in (120, 365)
        assert segment.expires_at is not None
        until = datetime.fromisoformat(segment.expires_at.replace("Z", "+00:00"))
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert abs(head["ObjectLockRetainUntilDate"] - until) < timedelta(seconds=1)
        newest = max(json.loads(b)["timestamp"] for b in segment.bodies)
        newest_at = datetime.fromisoformat(newest.replace("Z", "+00:00"))
        assert until == newest_at + timedelta(days=segment.total_days)
