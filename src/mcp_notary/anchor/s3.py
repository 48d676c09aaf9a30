"""An S3 anchor: each checkpoint is one object, written with Object Lock in *compliance* mode,
so until its retain-until date nobody (the writer, an administrator, the account root) can
delete it or shorten its retention. The bucket must have been created with Object Lock
enabled (which also turns versioning on); write to it with credentials that may only
``s3:PutObject`` (and ``s3:PutObjectRetention``), ideally in another account.

Needs the optional dependency ``boto3`` (``pip install mcp-notary[s3]``). Any S3-compatible
service with Object Lock works; the endpoint comes from ``endpoint_url=`` in the anchor URL or
the usual ``AWS_ENDPOINT_URL`` / credentials environment of boto3.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mcp_notary.anchor import AnchoredNote, AnchorError, anchor_object_name
from mcp_notary.errors import ConfigError
from mcp_notary.ledger.store import CheckpointRow

__all__ = ["DEFAULT_RETENTION_DAYS", "S3Anchor"]

DEFAULT_RETENTION_DAYS = 366
_MAX_NOTE = 64 * 1024


def boto3_client(endpoint_url: str | None) -> Any:
    try:
        import boto3  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ConfigError("the S3 anchor needs boto3: pip install 'mcp-notary[s3]'") from exc
    return boto3.client("s3", endpoint_url=endpoint_url)


class S3Anchor:
    """Checkpoint copies as Object-Locked objects under ``s3://bucket/prefix``."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        client: Any = None,
        endpoint_url: str | None = None,
    ) -> None:
        if not bucket:
            raise ConfigError("S3 anchor needs a bucket name")
        if retention_days < 1:
            raise ConfigError("S3 anchor retention must be at least one day")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.retention_days = retention_days
        self.name = f"s3://{bucket}/{self.prefix}"
        self._client = client if client is not None else boto3_client(endpoint_url)

    @classmethod
    def from_url(cls, url: str, *, client: Any = None) -> S3Anchor:
        """``s3://bucket[/prefix][?retention_days=N&endpoint_url=URL]``."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ConfigError(f"not an S3 anchor URL: {url!r} (want s3://bucket/prefix)")
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = sorted(set(options) - {"retention_days", "endpoint_url"})
        if unknown:
            raise ConfigError(f"S3 anchor URL: unknown option(s) {', '.join(unknown)}")
        try:
            days = int(options.get("retention_days", DEFAULT_RETENTION_DAYS))
        except ValueError as exc:
            raise ConfigError("S3 anchor URL: retention_days must be a whole number") from exc
        return cls(
            parts.netloc,
            parts.path,
            retention_days=days,
            client=client,
            endpoint_url=options.get("endpoint_url"),
        )

    def key_for(self, row: CheckpointRow) -> str:
        return self.prefix + anchor_object_name(row)

    def publish(self, row: CheckpointRow) -> None:
        retain_until = datetime.now(UTC) + timedelta(days=self.retention_days)
        md5 = hashlib.md5(row.note, usedforsecurity=False).digest()
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=self.key_for(row),
                Body=row.note,
                ContentType="text/plain; charset=utf-8",
                # Object Lock puts must carry an integrity checksum.
                ContentMD5=base64.b64encode(md5).decode("ascii"),
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=retain_until,
            )
        except Exception as exc:  # botocore's errors, translated at the edge
            raise AnchorError(f"cannot anchor checkpoint in {self.name}: {exc}") from exc

    def notes(self) -> Iterator[AnchoredNote]:
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if not key.endswith(".checkpoint"):
                        continue
                    body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
                    yield AnchoredNote(f"s3://{self.bucket}/{key}", body.read(_MAX_NOTE))
        except AnchorError:
            raise
        except Exception as exc:
            raise AnchorError(f"cannot read anchor {self.name}: {exc}") from exc

    def __repr__(self) -> str:
        return f"S3Anchor({self.name!r}, retention_days={self.retention_days})"
