"""Exporters: the stored events, mapped to the formats SIEMs and log pipelines ingest.

`mapping` holds pure functions (event body -> wire record), `sinks` the I/O edges (file,
syslog over TCP/TLS, Splunk HEC with indexer acknowledgement, Elasticsearch `_bulk`), `otlp`
the OpenTelemetry logs mapping and its OTLP/HTTP sink, `cursor` the persisted position that
makes `--follow` resume without resending, and `runner` the loop joining them.
"""

from __future__ import annotations

from mcp_notary.export.mapping import FORMATS, Formatter, formatter
from mcp_notary.export.runner import export_once, follow

__all__ = ["FORMATS", "Formatter", "export_once", "follow", "formatter"]
