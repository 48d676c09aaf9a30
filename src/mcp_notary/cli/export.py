"""`mcp-notary export`: send the audit trail to a SIEM or a file, once or continuously.

An export is a read of the trail: it is authorised and recorded (an `audit_access` event)
before the first record leaves. On SQLite the local access-control roles apply; on PostgreSQL
the database grants are the access control (the reader role) and the export is recorded on a
reader stream of that database.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from mcp_notary.cli.main import store_option
from mcp_notary.errors import StoreError
from mcp_notary.export.cursor import Cursor
from mcp_notary.export.mapping import FORMATS, formatter, hec_record, to_syslog
from mcp_notary.export.runner import Select, export_once, follow
from mcp_notary.export.sinks import DEFAULT_DATA_STREAM, open_sink
from mcp_notary.ledger.store import EventRow, Store, as_hashed
from mcp_notary.ledger.stores import default_store_url


@contextlib.contextmanager
def _authorised(
    store: str | None, query: dict[str, object], purpose: str | None
) -> Iterator[tuple[Store, Select]]:
    """The store to export from and the rows this caller may see, after recording the read."""
    from mcp_notary.cli.access import local_read_side, require

    # The same roles on both backends: an admin cannot export, a viewer exports their own.
    with local_read_side(store or default_store_url(), "mcp-notary export") as (side, caller):
        decision = require(side, caller, "export", query, purpose)
        side.control.record(caller, "export", decision, "cli", query=query, purpose=purpose)
        me = caller.principal.id
        # Scoped on the principal the hashed event states, never on the editable column.
        yield side.store, (lambda r: as_hashed(r).principal_id == me) if decision.own_only else _all


def _all(row: EventRow) -> bool:
    return True


def _format(name: str, hec_index: str | None) -> Any:
    host = socket.gethostname()
    if name == "syslog":
        return lambda event: to_syslog(event, host)
    if name == "splunk-hec":
        import json

        return lambda event: json.dumps(
            hec_record(event, host=host, index=hec_index), separators=(",", ":")
        ).encode()
    return formatter(name)


@click.command()
@store_option
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), required=True)
@click.option("--since", help="Only events from this time on (RFC 3339, inclusive).")
@click.option("--follow", is_flag=True, help="Keep sending new events until interrupted.")
@click.option(
    "--to",
    metavar="FILE|URL",
    help="A file (appended), syslog+tcp://HOST:PORT, syslog+tls://HOST:PORT, a Splunk HEC "
    "https://HOST:8088, an Elasticsearch https://HOST:9200 or (--format otlp) an OTLP/HTTP "
    "logs endpoint http(s)://HOST:4318/v1/logs [default: stdout].",
)
@click.option(
    "--cursor",
    "cursor_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File keeping the position acknowledged by the destination, so a restarted export "
    "resends nothing already delivered.",
)
@click.option("--hec-token", envvar="MCP_NOTARY_HEC_TOKEN", help="Splunk HEC token.")
@click.option("--es-api-key", envvar="MCP_NOTARY_ES_API_KEY", help="Elasticsearch API key.")
@click.option("--es-data-stream", default=DEFAULT_DATA_STREAM, show_default=True,
              help="Elasticsearch data stream to write to.")  # fmt: skip
@click.option("--hec-index", help="Splunk index to write to (default: the token's).")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds between polls with --follow.")  # fmt: skip
@click.option("--purpose", metavar="TEXT", help="Why you are exporting: recorded with the read.")
def export(
    store: str | None,
    fmt: str,
    since: str | None,
    follow: bool,
    to: str | None,
    cursor_path: Path | None,
    hec_token: str | None,
    es_api_key: str | None,
    es_data_stream: str,
    hec_index: str | None,
    interval: float,
    purpose: str | None,
) -> None:
    """Export audit events as OCSF, ECS, CEF, LEEF, syslog, Splunk HEC, Elasticsearch, OTLP
    logs or JSON Lines."""
    cursor = Cursor(cursor_path)
    token = es_api_key if fmt == "elastic" else hec_token
    sink = open_sink(to, fmt, token=token, data_stream=es_data_stream)
    query: dict[str, object] = {"format": fmt, "since": since, "follow": follow}
    if to is not None and "://" in to:
        query["to"] = to.split("?", 1)[0]
    try:
        with _authorised(store, query, purpose) as (ledger, select):
            mapper = _format(fmt, hec_index)
            if not follow:
                sent = export_once(ledger, mapper, sink, cursor, since=since, select=select)
                click.echo(f"{sent} event(s) exported", err=True)
                return
            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            follow_run(ledger, mapper, sink, cursor, stop, since, select, interval)
    finally:
        sink.close()


def follow_run(
    ledger: Store,
    mapper: Any,
    sink: Any,
    cursor: Cursor,
    stop: threading.Event,
    since: str | None,
    select: Select,
    interval: float,
) -> None:
    """Keep exporting; a destination or store failure is retried, not fatal."""
    from mcp_notary.export.sinks import ExportError

    while not stop.is_set():
        try:
            follow(ledger, mapper, sink, cursor, stop, since=since, select=select,
                   interval=interval)  # fmt: skip
        except (ExportError, StoreError) as exc:
            click.echo(f"mcp-notary: export paused: {exc}", err=True)
            stop.wait(max(interval, 1.0))
