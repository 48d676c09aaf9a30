"""Where exported records go. Each sink's `send` returns only once the receiver has taken the
whole batch (written and flushed, TCP-written, or acknowledged by the indexer), and raises
`ExportError` otherwise; the runner advances its cursor only after `send` returns."""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlsplit

import httpx

from mcp_notary.errors import ConfigError, NotaryError
from mcp_notary.ledger.private import open_private

DEFAULT_DATA_STREAM = "logs-mcp_notary.audit-default"


class ExportError(NotaryError):
    """A sink did not take a batch."""


class Sink(Protocol):
    def send(self, records: Sequence[bytes]) -> None: ...

    def close(self) -> None: ...


class FileSink:
    """Newline-delimited records appended to a file (fsync'd per batch), or to stdout."""

    def __init__(self, path: Path | None) -> None:
        self._owned = path is not None
        # A new export file is a copy of the trail: 0600 from its creation, like the store.
        self._out: BinaryIO = (
            os.fdopen(open_private(path), "ab") if path is not None else sys.stdout.buffer
        )
        # fsync only regular files: a pipe or /dev/null cannot be synced (EINVAL).
        self._sync = self._owned and stat.S_ISREG(os.fstat(self._out.fileno()).st_mode)

    def send(self, records: Sequence[bytes]) -> None:
        try:
            self._out.write(b"".join(r + b"\n" for r in records))
            self._out.flush()
            if self._sync:
                os.fsync(self._out.fileno())
        except OSError as exc:
            raise ExportError(f"cannot write the export: {exc}") from exc

    def close(self) -> None:
        if self._owned:
            self._out.close()


class SyslogSink:
    """RFC 5424 messages over TCP (RFC 6587 octet counting) or TLS (RFC 5425)."""

    def __init__(self, host: str, port: int, *, tls: bool = False, timeout: float = 10.0) -> None:
        self.host, self.port, self.tls, self.timeout = host, port, tls, timeout
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            if self.tls:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
            self._sock = sock
        return self._sock

    def send(self, records: Sequence[bytes]) -> None:
        frames = b"".join(str(len(r)).encode() + b" " + r for r in records)
        try:
            self._connect().sendall(frames)
        except OSError as exc:
            self.close()
            raise ExportError(f"syslog {self.host}:{self.port}: {exc}") from exc

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if isinstance(sock, ssl.SSLSocket):
            # RFC 5425 4.4: send a TLS close_notify before closing, so the receiver sees the
            # end of the session rather than a truncated connection (rsyslog logs that as an
            # error). Bounded: a receiver that never answers must not hold the exporter.
            try:
                sock.settimeout(min(self.timeout, 2.0))
                sock = sock.unwrap()
            except (OSError, ValueError):
                pass
        sock.close()


class HecSink:
    """Splunk HTTP Event Collector with indexer acknowledgement: a batch counts as delivered
    only when `/services/collector/ack` says its ackId was indexed."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        ack_timeout: float = 60.0,
        poll_interval: float = 0.2,
        verify: bool = True,
    ) -> None:
        base = url.rstrip("/")
        self.event_url = base if base.endswith("/event") else base + "/services/collector/event"
        self.ack_url = self.event_url.rsplit("/event", 1)[0] + "/ack"
        self.channel = str(uuid.uuid4())
        self.ack_timeout, self.poll_interval = ack_timeout, poll_interval
        self._client = httpx.Client(
            headers={"Authorization": f"Splunk {token}", "X-Splunk-Request-Channel": self.channel},
            timeout=30.0,
            verify=verify,
        )

    def send(self, records: Sequence[bytes]) -> None:
        try:
            response = self._client.post(self.event_url, content=b"\n".join(records))
            if response.status_code != 200:
                raise ExportError(f"HEC refused the batch: {response.status_code} {response.text}")
            ack_id = response.json().get("ackId")
            if ack_id is None:
                return  # acknowledgement is off on this token: a 200 is all we get
            deadline = time.monotonic() + self.ack_timeout
            while time.monotonic() < deadline:
                polled = self._client.post(
                    self.ack_url, params={"channel": self.channel}, json={"acks": [ack_id]}
                )
                if polled.status_code == 200 and polled.json().get("acks", {}).get(str(ack_id)):
                    return
                time.sleep(self.poll_interval)
        except (httpx.HTTPError, ValueError) as exc:
            raise ExportError(f"HEC {self.event_url}: {exc}") from exc
        raise ExportError(f"HEC did not acknowledge ackId {ack_id} in {self.ack_timeout} s")

    def close(self) -> None:
        self._client.close()


class ElasticSink:
    """Elasticsearch/OpenSearch `_bulk` into a data stream. Each document is a `create` with
    `_id` = the event id, so a resent event is refused as a duplicate (409), which counts as
    delivered: at-least-once sending, exactly-once storage."""

    def __init__(
        self, url: str, data_stream: str, *, api_key: str | None = None, verify: bool = True
    ) -> None:
        self.bulk_url = url.rstrip("/") + "/_bulk"
        self.data_stream = data_stream
        headers = {"Content-Type": "application/x-ndjson"}
        if api_key:
            headers["Authorization"] = f"ApiKey {api_key}"
        self._client = httpx.Client(headers=headers, timeout=60.0, verify=verify)

    def send(self, records: Sequence[bytes]) -> None:
        lines: list[bytes] = []
        for record in records:
            doc_id = json.loads(record)["event"]["id"]
            action = {"create": {"_index": self.data_stream, "_id": doc_id}}
            lines += [json.dumps(action, separators=(",", ":")).encode(), record]
        try:
            response = self._client.post(self.bulk_url, content=b"\n".join(lines) + b"\n")
            if response.status_code != 200:
                raise ExportError(f"_bulk refused: {response.status_code} {response.text[:500]}")
            result = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ExportError(f"Elasticsearch {self.bulk_url}: {exc}") from exc
        if result.get("errors"):
            failed = [
                item["create"]
                for item in result.get("items", [])
                if item.get("create", {}).get("status") not in (200, 201, 409)
            ]
            if failed:
                raise ExportError(f"_bulk rejected {len(failed)} document(s): {failed[0]}")

    def close(self) -> None:
        self._client.close()


def open_sink(
    to: str | None,
    fmt: str,
    *,
    token: str | None = None,
    data_stream: str = DEFAULT_DATA_STREAM,
) -> Sink:
    """`None` or `-`: stdout. `syslog+tcp://h:p`, `syslog+tls://h:p`: syslog. `http(s)://`:
    Splunk HEC (format splunk-hec, with a token), Elasticsearch `_bulk` (format elastic;
    `token` is then an optional API key) or an OTLP/HTTP logs endpoint (format otlp, which
    accepts nothing else). Anything else: a file path."""
    if fmt == "otlp":
        if to is None or urlsplit(to).scheme not in ("http", "https"):
            raise ConfigError("--format otlp needs --to http(s)://HOST:4318/v1/logs")
        from mcp_notary.export.otlp import OtlpSink

        return OtlpSink(to)
    if to is None or to == "-":
        return FileSink(None)
    parts = urlsplit(to)
    if parts.scheme in ("syslog+tcp", "syslog+tls"):
        if parts.hostname is None or parts.port is None:
            raise ConfigError(f"--to {to}: a syslog URL needs a host and a port")
        return SyslogSink(parts.hostname, parts.port, tls=parts.scheme == "syslog+tls")
    if parts.scheme in ("http", "https"):
        if fmt == "elastic":
            return ElasticSink(to, data_stream, api_key=token)
        if fmt != "splunk-hec":
            raise ConfigError(f"--to {to}: HTTP delivery is for splunk-hec, elastic and otlp only")
        if not token:
            raise ConfigError("splunk-hec needs a token (--hec-token or MCP_NOTARY_HEC_TOKEN)")
        return HecSink(to, token)
    if "://" in to:
        raise ConfigError(f"--to {to}: unsupported destination scheme {parts.scheme!r}")
    return FileSink(Path(to))
