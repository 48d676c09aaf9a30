"""`mcp-notary watch`: verify the store incrementally, forever, and raise an alert on any break
(stderr, webhook, syslog, and an `integrity_alert` event in the watcher's own stream)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from types import FrameType
from typing import Any

import click

from mcp_notary.cli.main import store_option
from mcp_notary.cli.verify import origin_prefix_option, resolve_trusted_keys, trusted_key_option
from mcp_notary.events.model import EventDraft, payload_free_event
from mcp_notary.identity.local import os_principal
from mcp_notary.ids import new_event_id, utc_timestamp
from mcp_notary.ledger.checkpointer import Checkpointer, CheckpointSettings, KeySigner
from mcp_notary.ledger.keys import load_or_create_signing_key
from mcp_notary.ledger.store import EventRow, LeafRecord, Store, StreamInfo
from mcp_notary.ledger.stores import default_store_url, open_store
from mcp_notary.ledger.writer import LedgerWriter
from mcp_notary.lifecycle.retention import recorded_prunes_in
from mcp_notary.recorder import process_start_token
from mcp_notary.verify.alerts import (
    Alerter,
    AlertSink,
    CallbackSink,
    StderrSink,
    SyslogSink,
    WebhookSink,
)
from mcp_notary.verify.chain import Finding
from mcp_notary.verify.checkpoints import CheckpointEvidence
from mcp_notary.verify.report import EXIT_INCOMPLETE, EXIT_INTACT, EXIT_INTEGRITY
from mcp_notary.verify.watch import TrailWatcher


class OwnStream:
    """A stream of this command's own records (alerts, key rotations), created at the first
    record and checkpointed like any other, so it never shows up as unsigned evidence."""

    def __init__(self, store: Store, settings: CheckpointSettings | None, label: str) -> None:
        self.store = store
        self.settings = settings
        self.label = label
        self.stream = f"{socket.gethostname()}/{os.getpid()}/{new_event_id()[:23]}"
        self._writer: LedgerWriter | None = None
        self._checkpointer: Checkpointer | None = None

    def submit(self, draft: EventDraft) -> Future[EventRow]:
        """Queue a payload-free record; the future resolves once it is durable."""
        if self._writer is None:
            pid = os.getpid()
            self.store.create_stream(
                StreamInfo(
                    self.stream,
                    utc_timestamp(),
                    socket.gethostname(),
                    pid,
                    process_start_token(pid),
                    self.label,
                )
            )
            if self.settings is not None:
                self._checkpointer = self.settings.checkpointer(self.store, self.stream)
                self._checkpointer.start()
            self._writer = LedgerWriter(
                self.store,
                self.stream,
                on_committed=self._checkpointer.committed if self._checkpointer else None,
            )
        return self._writer.submit(payload_free_event(draft))

    def record_alert(self, payload: dict[str, Any]) -> None:
        self.submit(
            EventDraft(
                kind="integrity_alert",
                timestamp=utc_timestamp(),
                principal=os_principal(),
                transport="inprocess",
                details={
                    "detector": payload["detector"],
                    "summary": payload["summary"][:2000],
                    "finding": payload["finding"],
                },
            )
        )

    def close(self) -> None:
        """Flush and seal (idempotent)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None


@click.command()
@store_option
@trusted_key_option
@origin_prefix_option
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between polls.",
)
@click.option("--once", is_flag=True, help="Poll once, then exit 0, 1 or 2 like verify.")
@click.option("--webhook", "webhooks", multiple=True, metavar="URL", help="POST alerts here.")
@click.option("--syslog/--no-syslog", default=True, show_default=True, help="Alert to syslog.")
@click.option(
    "--record/--no-record",
    default=True,
    show_default=True,
    help="Record each alert as an integrity_alert event in the watcher's own stream.",
)
@click.option(
    "--signing-key",
    envvar="MCP_NOTARY_SIGNING_KEY_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Key that checkpoints the watcher's own alert stream.",
)
def watch(
    store: str | None,
    trusted_keys: tuple[str, ...],
    origin_prefix: str,
    interval: float,
    once: bool,
    webhooks: tuple[str, ...],
    syslog: bool,
    record: bool,
    signing_key: Path | None,
) -> None:
    """Verify new events and checkpoints as they arrive; alert on any break."""
    keys, _ = resolve_trusted_keys(trusted_keys)
    url = store or default_store_url()
    ledger = open_store(url)
    stderr = StderrSink()
    sinks: list[AlertSink] = [stderr]
    sinks += [WebhookSink(w) for w in webhooks]
    if syslog:
        try:
            sinks.append(SyslogSink())
        except OSError as exc:
            click.echo(f"mcp-notary: syslog unavailable ({exc}); alerting elsewhere", err=True)
    alert_stream: OwnStream | None = None
    if record:
        settings = CheckpointSettings(
            KeySigner(load_or_create_signing_key(signing_key)), origin_prefix=origin_prefix
        )
        alert_stream = OwnStream(ledger, settings, "mcp-notary watch")
        sinks.append(CallbackSink("ledger", alert_stream.record_alert))
    alerter = Alerter(sinks, store=url, detector="mcp-notary watch")
    watcher = TrailWatcher(keys, origin_prefix=origin_prefix)
    if not keys:
        alerter.alert(
            Finding(
                "no_trusted_key",
                "*",
                None,
                "no trusted checkpoint key: checkpoints cannot be checked (--trusted-key FILE)",
                "incomplete",
            )
        )
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if not once:
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    worst = EXIT_INTACT
    own = alert_stream.stream if alert_stream else None
    try:
        while True:
            findings = poll_once(ledger, watcher, skip=own)
            for finding in findings:
                alerter.alert(finding)
                worst = max(
                    worst, EXIT_INTEGRITY if finding.severity == "integrity" else EXIT_INCOMPLETE
                )
            if once or stop.wait(interval):
                break
    finally:
        if alert_stream is not None:
            alert_stream.close()
        ledger.close()
    if once:
        click.echo(
            f"watch: {watcher.events_verified} events verified, {alerter.sent} alert(s)", err=True
        )
        sys.exit(1 if worst == EXIT_INTEGRITY else worst)


def poll_once(ledger: Store, watcher: TrailWatcher, skip: str | None = None) -> list[Finding]:
    """One incremental round over the store (the I/O half of :class:`TrailWatcher`)."""
    heads = {s: ledger.head(s).seq for s in ledger.stream_names() if s != skip}
    evidence: list[CheckpointEvidence] = []
    known_origins: dict[str, str] = {}
    for stream in heads:
        for row in ledger.checkpoints(stream, min_size=watcher.verified_size(stream)):
            evidence.append(CheckpointEvidence(row.note, "store", row.stream))
            known_origins.setdefault(row.origin, row.stream)

    def read(stream: str, first: int, last: int) -> Iterator[list[LeafRecord]]:
        return ledger.scan_leaves(stream, first, last)

    return watcher.poll(heads, evidence, read, known_origins, recorded_prunes_in(ledger))
