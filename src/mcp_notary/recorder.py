"""The audit pipeline of one capture connection: exchange -> draft -> redacted event -> ledger.

Every capture path (stdio relay, HTTP proxy, in-process middleware) hands its exchanges to an
`AuditRecorder`, so events are built, redacted, appended and checkpointed the same way
everywhere. This is also where the pipeline is composed from configuration.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mcp_notary.anchor import open_anchor
from mcp_notary.capture.pairing import Exchange, SessionFacts
from mcp_notary.config import NotaryConfig
from mcp_notary.errors import NotaryError, StoreError
from mcp_notary.events.build import CaptureContext, build_draft
from mcp_notary.events.model import AuditEvent, EventDraft, Principal, payload_free_event
from mcp_notary.ids import new_event_id, utc_timestamp
from mcp_notary.ledger.checkpointer import (
    DEFAULT_INTERVAL_S,
    Checkpointer,
    CheckpointSettings,
    KeySigner,
    seal_stream,
)
from mcp_notary.ledger.keys import load_or_create_signing_key
from mcp_notary.ledger.spool import SpoolingStore
from mcp_notary.ledger.store import (
    EventRow,
    Store,
    StreamHead,
    StreamInfo,
    as_hashed,
    prepare_row,
    started_details,
)
from mcp_notary.ledger.writer import BATCH_MAX_WAIT_S, BacklogLimit, Backpressure, LedgerWriter
from mcp_notary.lifecycle.policy import parse_days
from mcp_notary.lifecycle.sealing import (
    SubjectRule,
    has_payload,
    payload_key_id,
    rules_from_config,
    seal_event,
    subject_of,
)
from mcp_notary.lifecycle.vault import SubjectKeyring, VaultKey, load_or_create_vault_key
from mcp_notary.redact.api import Redactor
from mcp_notary.redact.policy import PolicyRedactor, RedactionPolicy
from mcp_notary.vocabulary import Direction, Kind, Outcome

Durability = Literal["batched", "strict"]
# Backpressure is announced (stderr and a `backpressure` record) at most this often; the
# waits in between are counted into the next announcement and the `stopped` record.
BACKPRESSURE_REPORT_INTERVAL_S = 60.0


def process_start_token(pid: int) -> str:
    """Start time of a process in clock ticks since boot: with the pid, it names one process
    even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "unknown"
    return stat.rsplit(")", 1)[1].split()[19]


def writer_alive(
    stream: str, info: StreamInfo | None, started: EventRow | None = None
) -> bool | None:
    """Whether the process that writes `stream` still runs; None if it ran on another host.

    Host and pid come from the stream's name, which every hashed event of it states, never
    from the streams table alone (anyone who can write the file can edit that). The process
    start time that tells a reused pid apart comes from the stream's hashed ``started``
    record when it has one, else from the registration if that names the same process."""
    host, _, rest = stream.partition("/")
    pid_text = rest.partition("/")[0]
    if not pid_text.isdigit() or host != socket.gethostname():
        return None
    pid = int(pid_text)
    token = process_start_token(pid)
    if token == "unknown":
        return False
    details = started_details(started)
    if details is not None and isinstance(details.get("process_start"), str):
        return bool(token == details["process_start"])
    if info is not None and info.host == host and info.pid == pid:
        return token == info.process_start
    return True


def _process_alive(store: Store, stream: str, info: StreamInfo | None) -> bool:
    """Never claims another host's stream, or one whose writer cannot be told, is dead."""
    if writer_alive(stream, info) is not False:
        return True
    first = next(iter(store.scan(stream)), None)
    return writer_alive(stream, info, first) is not False


def _last_phase(store: Store, stream: str, head: StreamHead) -> str | None:
    """The lifecycle phase of a stream's last event, if that event is a lifecycle record;
    ``"read"`` for an `audit_access` record (or a lifecycle command's record): a reader's
    stream needs no closing record, since each record was made durable before the command
    went on."""
    last = next(iter(store.scan(stream, from_seq=max(head.seq, 1))), None)
    last = as_hashed(last) if last is not None else None  # the kind the event states
    if last is not None and last.kind in ("audit_access", "retention", "legal_hold", "erasure"):
        return "read"
    if last is None or last.kind != "lifecycle":
        return None
    details = json.loads(last.body).get("details") or {}
    phase = details.get("phase")
    return phase if isinstance(phase, str) else None


def redactor_from_config(config: NotaryConfig) -> PolicyRedactor:
    """The redactor a `mcp-notary.toml` asks for (defaults without one); reads the key file."""
    return PolicyRedactor.from_config(RedactionPolicy.from_mapping(config.redaction))


@dataclass(frozen=True)
class PayloadSealing:
    """Seal payloads under keys that can be destroyed: the key of the data subject a call
    carries (`[erasure]` subjects), so `mcp-notary erase` can shred it, and, with a payload
    period (`[retention] payload`), the key of the event's day, which retention destroys when
    the period ends while the event skeleton stays."""

    rules: tuple[SubjectRule, ...]
    vault: VaultKey
    payload_period: bool = False


def sealing_from_config(config: NotaryConfig) -> PayloadSealing | None:
    """None unless subjects or a payload period are configured (only then is the vault key
    file read)."""
    rules = rules_from_config(config.erasure)
    period = parse_days(config.retention.get("payload"), "[retention].payload") is not None
    if not rules and not period:
        return None
    return PayloadSealing(rules, load_or_create_vault_key(), period)


def key_file_checkpointing(
    signing_key: str | Path | None = None,
    anchors: Sequence[str] = (),
    interval_s: float = DEFAULT_INTERVAL_S,
) -> CheckpointSettings:
    """Checkpoints signed with the key file (created 0600 on first use) and copied to `anchors`:
    what every capture path (stdio, HTTP, middleware) uses unless told otherwise."""
    return CheckpointSettings(
        KeySigner(load_or_create_signing_key(Path(signing_key) if signing_key else None)),
        interval_s=interval_s,
        publishers=tuple(open_anchor(url) for url in anchors),
    )


def _warn(message: str) -> None:
    print(f"mcp-notary: {message}", file=sys.stderr, flush=True)


class AuditRecorder:
    """Owns one ledger stream and turns exchanges into appended events."""

    def __init__(
        self,
        store: Store,
        redactor: Redactor,
        context: CaptureContext,
        *,
        durability: Durability = "batched",
        stream_label: str | None = None,
        checkpointing: CheckpointSettings | None = None,
        sealing: PayloadSealing | None = None,
        backlog: BacklogLimit | None = None,
    ) -> None:
        self.store = store
        self.backlog = backlog or BacklogLimit()
        self._pressure_lock = threading.Lock()
        self._pressure_reported_at: float | None = None
        self._pressure_unreported = 0
        self.sealing = sealing
        self._keyring = SubjectKeyring(store, sealing.vault) if sealing is not None else None
        self.checkpointing = checkpointing
        self._checkpointer: Checkpointer | None = None
        self.redactor = redactor
        self.context = context
        self.durability = durability
        self.stream_label = stream_label or context.server_name
        self.stream = f"{socket.gethostname()}/{os.getpid()}/{new_event_id()[:23]}"
        self._writer: LedgerWriter | None = None
        self._announce = True

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, *, announce: bool = True) -> None:
        """Create this process's stream, close streams of dead processes, record the start.

        With ``announce=False`` (the read side) only the stream is created: no lifecycle
        records, and other processes' streams are left to the capture processes."""
        self._announce = announce
        pid = os.getpid()
        info = StreamInfo(
            stream=self.stream,
            created_at=utc_timestamp(),
            host=socket.gethostname(),
            pid=pid,
            process_start=process_start_token(pid),
            server_name=self.stream_label,
        )
        self.store.create_stream(info)
        unclean = self._close_abandoned_streams() if announce else []
        if self.checkpointing is not None:
            self._checkpointer = self.checkpointing.checkpointer(
                self.store, self.stream, on_alert=self._integrity_alert, on_error=_warn
            )
            self._checkpointer.start()
        self._writer = LedgerWriter(
            self.store,
            self.stream,
            head=StreamHead(),
            on_recovered=self._record_recovery,
            on_committed=self._checkpointer.committed if self._checkpointer else None,
            max_wait_s=0.0 if self.durability == "strict" else BATCH_MAX_WAIT_S,
            backlog=self.backlog,
            on_backpressure=self._record_backpressure,
        )
        if isinstance(self.store, SpoolingStore):
            # A database outage the spool rides out is still bracketed in the chain itself
            # (`audit_degraded` ... `audit_recovered`, PCI DSS 10.7.2).
            self.store.on_outage = self._record_outage
        if announce:
            self.lifecycle(
                "started",
                {
                    "durability": self.durability,
                    "pid": pid,
                    "launch": self.context.launch or {},
                    # What the streams row says, under the hash (so the row can be checked).
                    "host": info.host,
                    "process_start": info.process_start,
                    "label": info.server_name,
                },
            )
        for stream, last_seq in unclean:
            self.lifecycle(
                "previous_run_unclean",
                {"stream": stream, "last_seq": last_seq},
            )

    def close(self, reason: str, details: dict[str, Any] | None = None) -> None:
        """Record the stop and flush: after this returns, nothing submitted is lost."""
        if self._writer is None:
            return
        if self._announce:
            waits = self._writer.waits
            pressure = (
                {"backpressure": {"waits": waits, "waited_s": round(self._writer.waited_s, 3)}}
                if waits
                else {}
            )
            self.lifecycle("stopped", {"reason": reason, **(details or {}), **pressure})
        self._writer.close()
        self._writer = None
        if self._checkpointer is not None:
            self._checkpointer.close()  # the final checkpoint seals the stream

    def lifecycle(self, phase: str, details: dict[str, Any]) -> Future[Any]:
        """Record the pipeline's own facts (start, stop, outages, backpressure). These never
        wait for the writer: they are few, and some are reported from threads the writer
        itself may be waiting for (the spool's, the checkpointer's)."""
        return self.record_event("lifecycle", {"phase": phase, **details}, wait=False)

    def record_event(
        self,
        kind: Kind,
        details: dict[str, Any],
        *,
        principal: Principal | None = None,
        method: str | None = None,
        outcome: Outcome | None = None,
        tool: str | None = None,
        jsonrpc_id: str | int | None = None,
        direction: Direction | None = None,
        wait: bool = True,
    ) -> Future[Any]:
        """Submit a payload-free event of `kind` (the read side's `audit_access`, the proxy's
        `auth` refusals) on behalf of `principal` (default: this recorder's); the future
        resolves when it is durable. ``wait=False``: never wait for a writer that is behind."""
        draft = EventDraft(
            kind=kind,
            timestamp=utc_timestamp(),
            principal=principal or self.context.principal,
            transport=self.context.transport,
            method=method,
            tool=tool,
            jsonrpc_id=jsonrpc_id,
            direction=direction,
            outcome=outcome,
            details=details,
        )
        # Through the redactor like every exchange: details carry text from outside (the
        # launching command line, a refused token's claims, tool names and ids).
        return self._submit(self._finalize_or_strip(draft), wait=wait)

    def _close_abandoned_streams(self) -> list[tuple[str, int]]:
        """Streams whose process died without a clean stop: append an `ended_uncleanly` record
        to each (so it is reported once) and return them."""
        found = []
        # Every stream with events, registered or not: a deleted registration must not keep
        # a dead writer's stream from being closed.
        registered = {info.stream: info for info in self.store.streams()}
        for stream in self.store.stream_names():
            if stream == self.stream or _process_alive(self.store, stream, registered.get(stream)):
                continue
            head = self.store.head(stream)
            if _last_phase(self.store, stream, head) in ("stopped", "ended_uncleanly", "read"):
                continue
            closing = payload_free_event(
                EventDraft(
                    kind="lifecycle",
                    timestamp=utc_timestamp(),
                    principal=self.context.principal,
                    transport=self.context.transport,
                    details={"phase": "ended_uncleanly", "last_seq": head.seq, "by": self.stream},
                )
            )
            try:
                self.store.append_batch([prepare_row(closing, stream, head)])
            except StoreError:
                continue  # another starting process closed it first
            if self.checkpointing is not None:
                try:
                    seal_stream(self.store, stream, self.checkpointing)
                except NotaryError as exc:
                    _warn(f"cannot checkpoint abandoned stream {stream}: {exc}")
            found.append((stream, head.seq))
        return found

    def _integrity_alert(self, message: str) -> None:
        """A break found while running: say so on stderr and in this stream (never silent)."""
        _warn(f"INTEGRITY ALERT: {message}")
        self.record_event(
            "integrity_alert", {"detector": "checkpointer", "message": message[:1000]}, wait=False
        )

    def _record_outage(self, what: str, details: dict[str, Any]) -> None:
        self.lifecycle(f"audit_{what}", details)

    def _record_backpressure(self, pressure: Backpressure) -> None:
        """The relay is about to wait for the writer: say so on stderr and in the stream
        (rate-limited; the waits in between are counted into the next report)."""
        now = time.monotonic()
        with self._pressure_lock:
            self._pressure_unreported += 1
            last = self._pressure_reported_at
            if last is not None and now - last < BACKPRESSURE_REPORT_INTERVAL_S:
                return
            self._pressure_reported_at = now
            waits, self._pressure_unreported = self._pressure_unreported, 0
        writer = self._writer
        if writer is None:
            return
        behind_ms = round(pressure.behind_s * 1000, 1)
        _warn(
            f"audit writer is {pressure.behind_events} event(s) / {behind_ms} ms behind "
            f"(limit {pressure.limit.events} / {pressure.limit.seconds * 1000:g} ms): "
            "traffic waits until it catches up (backpressure)"
        )
        details = {
            "behind_events": pressure.behind_events,
            "behind_ms": behind_ms,
            "limit_events": pressure.limit.events,
            "limit_ms": pressure.limit.seconds * 1000,
            "waits": waits,
            "waited_s": round(writer.waited_s, 3),
        }
        self.lifecycle("backpressure", details)  # never waits (on itself)

    def _record_recovery(self, error: str, seconds: float) -> None:
        self.lifecycle("store_recovered", {"error": error[:500], "outage_s": round(seconds, 3)})

    # -- events --------------------------------------------------------------------------------

    def record(
        self,
        exchange: Exchange,
        session: SessionFacts,
        *,
        details: dict[str, Any] | None = None,
        outcome: Outcome | None = None,
    ) -> Future[Any]:
        """Build, redact and submit the event for `exchange`; the future resolves when durable.
        `details` adds transport facts (the HTTP proxy's status code, peer...); `outcome`
        overrides the derived one when the transport knows better (an upstream's 401 is
        `denied`, not a transport error)."""
        draft = build_draft(exchange, session, self.context)
        if details:
            draft.details = {**(draft.details or {}), **details}
        if outcome is not None:
            draft.outcome = outcome
        if draft.method == "tools/list" and isinstance(draft.raw_result, dict):
            tools = draft.raw_result.get("tools")
            if isinstance(tools, list):
                self.redactor.observe_tools(self.context.server_name or session.server_name, tools)
        subject = subject_of(draft, self.sealing.rules) if self.sealing is not None else None
        stage = "redaction" if self.sealing is None else "redaction or sealing"
        return self._submit(self._finalize_or_strip(draft, lambda e: self._seal(e, subject), stage))

    def _finalize_or_strip(
        self,
        draft: EventDraft,
        then: Callable[[AuditEvent], AuditEvent] = lambda e: e,
        stage: str = "redaction",
    ) -> AuditEvent:
        """The redacted event, or, when redaction fails, the draft stripped of every string
        that did not come from this process: nothing unscanned is stored (fail closed)."""
        try:
            return then(self.redactor.finalize(draft))
        except Exception as exc:
            _warn(f"{stage} failed: {exc!r}")
            draft.raw_params = draft.raw_result = draft.raw_error_data = None
            draft.raw_error_message = None
            draft.tool = draft.target = draft.method = draft.jsonrpc_id = None
            draft.details = {"redaction_failed": type(exc).__name__}
            return payload_free_event(draft)

    def _seal(self, event: AuditEvent, subject: str | None) -> AuditEvent:
        if self.sealing is None or self._keyring is None or not has_payload(event):
            return event
        key_ids = [self.sealing.vault.key_id(subject)] if subject is not None else []
        if self.sealing.payload_period:
            key_ids.append(payload_key_id(event.timestamp))
        if not key_ids:
            return event
        return seal_event(event, key_ids, [self._keyring.key(k) for k in key_ids])

    def _submit(self, event: AuditEvent, *, wait: bool = True) -> Future[Any]:
        if self._writer is None:
            failed: Future[Any] = Future()
            failed.set_exception(StoreError("recorder is not started"))
            return failed
        return self._writer.submit(event, wait=wait)


def recorder_for_server(
    server: Any, store: str | None, server_name: str | None, config_path: str | None
) -> AuditRecorder:
    """A started recorder for an in-process server (`mcp_notary.install`), closed at exit."""
    from mcp_notary.capture.middleware import TRANSPORT
    from mcp_notary.identity.local import launch_facts, os_principal
    from mcp_notary.ledger.stores import open_store

    config = NotaryConfig.load(config_path)
    name = server_name or getattr(server, "name", None)
    recorder = AuditRecorder(
        open_store(store or config.store),
        redactor_from_config(config),
        CaptureContext(
            principal=os_principal(),  # the process owner, when no token says otherwise
            transport=TRANSPORT,
            server_name=name if isinstance(name, str) else None,
            launch=launch_facts(),
        ),
        stream_label=name if isinstance(name, str) else None,
        checkpointing=key_file_checkpointing(),
        sealing=sealing_from_config(config),
    )
    recorder.start()

    def close() -> None:
        recorder.close("interpreter_exit")
        recorder.store.close()

    atexit.register(close)
    return recorder
