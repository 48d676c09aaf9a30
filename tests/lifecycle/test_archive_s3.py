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

from e2e_notary import Notary
from lifecycle_trail import build_aged_trail
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
