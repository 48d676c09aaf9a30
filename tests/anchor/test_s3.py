"""The S3 Object Lock anchor, against moto's S3 *emulator* in server mode on 127.0.0.1
(not AWS: moto implements Object Lock retention checks, which is what is tested here)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

from botocore.exceptions import ClientError  # noqa: E402
from moto_s3 import CREDENTIALS, locked_bucket, moto_endpoint  # noqa: E402

from mcp_notary.anchor import AnchorError, open_anchor  # noqa: E402
from mcp_notary.anchor.s3 import S3Anchor  # noqa: E402
from mcp_notary.errors import ConfigError  # noqa: E402
from mcp_notary.ledger.store import CheckpointRow  # noqa: E402

BUCKET = "audit-anchors"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_endpoint() as url:
        yield url


@pytest.fixture
def client(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return locked_bucket(endpoint, BUCKET)


def row(size: int, note: bytes) -> CheckpointRow:
    return CheckpointRow("h/1/x", "mcp-notary/h/1/x", size, bytes(32), note, "t")


def test_checkpoints_are_stored_locked_in_compliance_mode(client: Any, endpoint: str) -> None:
    anchor = open_anchor(f"s3://{BUCKET}/prod?retention_days=30&endpoint_url={endpoint}")
    assert isinstance(anchor, S3Anchor)
    anchor.publish(row(7, b"checkpoint seven\n"))
    key = anchor.key_for(row(7, b"checkpoint seven\n"))
    head = client.head_object(Bucket=BUCKET, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    until = head["ObjectLockRetainUntilDate"]
    assert datetime.now(UTC) + timedelta(days=29) < until < datetime.now(UTC) + timedelta(days=31)
    assert {n.note for n in anchor.notes()} >= {b"checkpoint seven\n"}
    assert all(n.location.startswith(f"s3://{BUCKET}/prod/") for n in anchor.notes())


def test_a_locked_version_cannot_be_deleted_or_overwritten(client: Any, endpoint: str) -> None:
    anchor = S3Anchor(BUCKET, "locked", client=client)
    anchor.publish(row(9, b"checkpoint nine\n"))
    key = anchor.key_for(row(9, b"checkpoint nine\n"))
    version = client.head_object(Bucket=BUCKET, Key=key)["VersionId"]
    with pytest.raises(ClientError) as denied:
        client.delete_object(Bucket=BUCKET, Key=key, VersionId=version)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    # (Shortening the retention is refused by S3 too, but moto does not emulate that check.)
    # "Overwriting" only stacks a new version: the locked one is still there, unchanged.
    client.put_object(Bucket=BUCKET, Key=key, Body=b"forged\n")
    original = client.get_object(Bucket=BUCKET, Key=key, VersionId=version)["Body"].read()
    assert original == b"checkpoint nine\n"
    versions = client.list_object_versions(Bucket=BUCKET, Prefix=key)["Versions"]
    assert len(versions) == 2


def test_failures_are_anchor_errors_and_bad_urls_usage_errors(client: Any) -> None:
    with pytest.raises(AnchorError):
        S3Anchor("no-such-bucket", client=client).publish(row(1, b"x\n"))
    with pytest.raises(ConfigError):
        S3Anchor.from_url("s3://b/p?retention=3", client=client)
    with pytest.raises(ConfigError):
        S3Anchor.from_url("s3://b/p?retention_days=0", client=client)
