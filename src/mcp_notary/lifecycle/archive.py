"""Where archived segments go: a directory or an S3-compatible bucket (Object Lock in
compliance mode until the segment's retention ends, when the bucket has it). I/O edge."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from mcp_notary.anchor.s3 import boto3_client
from mcp_notary.errors import ConfigError, StoreError

__all__ = ["Archive", "ArchiveError", "DirArchive", "S3Archive", "open_archive"]


class ArchiveError(StoreError):
    """The archive could not be written or read."""


class Archive(Protocol):
    name: str

    def put(self, name: str, data: bytes, retain_until: str | None) -> str:
        """Store a segment durably under `name` (never overwriting); return where it went."""
        ...

    def names(self) -> Iterator[str]:
        """Every segment's name, in no particular order."""
        ...

    def get(self, name: str) -> bytes: ...

    def delete(self, name: str) -> bool:
        """Remove a segment whose retention ended (False if the archive refuses: locked)."""
        ...


class DirArchive:
    """Segments as read-only files under a directory (mount it append-only or on WORM
    storage in production; a local directory keeps them off the store's disk at least)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        self.name = str(self.root)

    def put(self, name: str, data: bytes, retain_until: str | None) -> str:
        path = self.root / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileExistsError:
            if path.read_bytes() == data:
                return str(path)  # a rerun after a crash between archive and prune
            raise ArchiveError(f"{path} exists with other content") from None
        except OSError as exc:
            raise ArchiveError(f"cannot write {path}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                path.unlink()
            raise ArchiveError(f"cannot write {path}: {exc.strerror}") from exc
        return str(path)

    def names(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.rglob("*.jsonl.gz")):
            yield str(path.relative_to(self.root))

    def get(self, name: str) -> bytes:
        try:
            return (self.root / name).read_bytes()
        except OSError as exc:
            raise ArchiveError(f"cannot read {self.root / name}: {exc.strerror}") from exc

    def delete(self, name: str) -> bool:
        try:
            (self.root / name).unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ArchiveError(f"cannot delete {self.root / name}: {exc.strerror}") from exc
        return True


class S3Archive:
    """Segments as objects under ``s3://bucket/prefix``. With ``lock=compliance`` each is
    written with Object Lock until its retention ends, so nobody can delete it sooner; the
    bucket's lifecycle rules (or `retention apply`) remove it afterwards."""

    def __init__(
        self, bucket: str, prefix: str = "", *, lock: bool = True, client: Any = None
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.lock = lock
        self.name = f"s3://{bucket}/{self.prefix}"
        self._client = client if client is not None else boto3_client(None)

    @classmethod
    def from_url(cls, url: str, *, client: Any = None) -> S3Archive:
        """``s3://bucket[/prefix][?lock=compliance|none&endpoint_url=URL]``."""
        parts = urlsplit(url)
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = sorted(set(options) - {"lock", "endpoint_url"})
        if parts.scheme != "s3" or not parts.netloc or unknown:
            raise ConfigError(
                f"archive URL {url!r}: want s3://bucket/prefix[?lock=compliance|none"
                "&endpoint_url=URL]"
            )
        lock = options.get("lock", "compliance")
        if lock not in ("compliance", "none"):
            raise ConfigError(f"archive URL {url!r}: lock must be compliance or none")
        if client is None:
            client = boto3_client(options.get("endpoint_url"))
        return cls(parts.netloc, parts.path, lock=lock == "compliance", client=client)

    def put(self, name: str, data: bytes, retain_until: str | None) -> str:
        key = self.prefix + name
        extra: dict[str, Any] = {}
        if self.lock and retain_until is not None:
            extra["ObjectLockMode"] = "COMPLIANCE"
            extra["ObjectLockRetainUntilDate"] = datetime.fromisoformat(
                retain_until.replace("Z", "+00:00")
            ).astimezone(UTC)
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType="application/gzip",
                ContentMD5=md5,
                **extra,
            )
        except Exception as exc:  # botocore's errors, translated at the edge
            raise ArchiveError(f"cannot archive {key} in {self.name}: {exc}") from exc
        return f"s3://{self.bucket}/{key}"

    def names(self) -> Iterator[str]:
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    if item["Key"].endswith(".jsonl.gz"):
                        yield item["Key"][len(self.prefix) :]
        except Exception as exc:
            raise ArchiveError(f"cannot list {self.name}: {exc}") from exc

    def get(self, name: str) -> bytes:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"]
            return bytes(body.read())
        except Exception as exc:
            raise ArchiveError(f"cannot read {self.name}{name}: {exc}") from exc

    def delete(self, name: str) -> bool:
        """Delete every version of the segment's object (with Object Lock the bucket is
        versioned: a plain delete would only hide the data behind a delete marker)."""
        key = self.prefix + name
        try:
            listing = self._client.list_object_versions(Bucket=self.bucket, Prefix=key)
            versions = [
                v["VersionId"]
                for v in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
                if v["Key"] == key
            ]
            for version in versions:
                self._client.delete_object(Bucket=self.bucket, Key=key, VersionId=version)
        except Exception:
            return False  # locked until its retain-until date: a later run removes it
        return bool(versions)


def open_archive(url: str) -> Archive:
    """A directory path (or ``file://``) or an ``s3://`` URL."""
    if url.startswith("s3://"):
        return S3Archive.from_url(url)
    if url.startswith("file://"):
        url = urlsplit(url).path
    if "://" in url:
        raise ConfigError(f"archive {url!r}: want a directory path or an s3:// URL")
    return DirArchive(url)
