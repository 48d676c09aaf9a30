"""The audit pipeline of one capture connection: exchange -> draft -> redacted event -> ledger.

Every capture path (stdio relay now; HTTP proxy and middleware later) hands its exchanges to an
`AuditRecorder`, so events are built, redacted and appended the same way everywhere.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal

from mcp_notary.capture.pairing import Exchange, SessionFacts
from mcp_notary.errors import StoreError
from mcp_notary.events.build import CaptureContext, build_draft
from mcp_notary.events.model import EventDraft, payload_free_event
from mcp_notary.ids import new_event_id, utc_timestamp
from mcp_notary.ledger.store import Store, StreamHead, StreamInfo, prepare_row
from mcp_notary.ledger.writer import LedgerWriter
from mcp_notary.redact.api import Redactor

Durability = Literal["batched", "strict"]


def process_start_token(pid: int) -> str:
    """Start time of a process in clock ticks since boot: with the pid, it names one process
    even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "unknown"
    return stat.rsplit(")", 1)[1].split()[19]


def _process_alive(info: StreamInfo) -> bool:
    if info.host != socket.gethostname():
        return True  # cannot tell from here; never claim another host's stream is dead
    return process_start_token(info.pid) == info.process_start


def _last_phase(store: Store, stream: str, head: StreamHead) -> str | None:
    """The lifecycle phase of a stream's last event, if that event is a lifecycle record."""
    last = next(iter(store.scan(stream, from_seq=max(head.seq, 1))), None)
    if last is None or last.kind != "lifecycle":
        return None
    details = json.loads(last.body).get("details") or {}
    phase = details.get("phase")
    return phase if isinstance(phase, str) else None


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
    ) -> None:
        self.store = store
        self.redactor = redactor
        self.context = context
        self.durability = durability
        self.stream_label = stream_label or context.server_name
        self.stream = f"{socket.gethostname()}/{os.getpid()}/{new_event_id()[:23]}"
        self._writer: LedgerWriter | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Create this process's stream, close streams of dead processes, record the start."""
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
        unclean = self._close_abandoned_streams()
        self._writer = LedgerWriter(
            self.store, self.stream, head=StreamHead(), on_recovered=self._record_recovery
        )
        self.lifecycle(
            "started",
            {"durability": self.durability, "pid": pid, "launch": self.context.launch or {}},
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
        self.lifecycle("stopped", {"reason": reason, **(details or {})})
        self._writer.close()
        self._writer = None

    def lifecycle(self, phase: str, details: dict[str, Any]) -> Future[Any]:
        draft = EventDraft(
            kind="lifecycle",
            timestamp=utc_timestamp(),
            principal=self.context.principal,
            transport=self.context.transport,
            details={"phase": phase, **details},
        )
        return self._submit_draft_without_payload(draft)

    def _close_abandoned_streams(self) -> list[tuple[str, int]]:
        """Streams whose process died without a clean stop: append an `ended_uncleanly` record
        to each (so it is reported once) and return them."""
        found = []
        for info in self.store.streams():
            if info.stream == self.stream or _process_alive(info):
                continue
            head = self.store.head(info.stream)
            if _last_phase(self.store, info.stream, head) in ("stopped", "ended_uncleanly"):
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
                self.store.append_batch([prepare_row(closing, info.stream, head)])
            except StoreError:
                continue  # another starting process closed it first
            found.append((info.stream, head.seq))
        return found

    def _record_recovery(self, error: str, seconds: float) -> None:
        self.lifecycle("store_recovered", {"error": error[:500], "outage_s": round(seconds, 3)})

    # -- events --------------------------------------------------------------------------------

    def record(self, exchange: Exchange, session: SessionFacts) -> Future[Any]:
        """Build, redact and submit the event for `exchange`; the future resolves when durable."""
        draft = build_draft(exchange, session, self.context)
        if draft.method == "tools/list" and isinstance(draft.raw_result, dict):
            tools = draft.raw_result.get("tools")
            if isinstance(tools, list):
                self.redactor.observe_tools(self.context.server_name or session.server_name, tools)
        try:
            event = self.redactor.finalize(draft)
        except Exception as exc:  # fail closed: record that redaction failed, store no payload
            print(f"mcp-notary: redaction failed: {exc!r}", file=sys.stderr)
            draft.raw_params = draft.raw_result = draft.raw_error_data = None
            draft.raw_error_message = None
            draft.details = {**(draft.details or {}), "redaction_failed": type(exc).__name__}
            return self._submit_draft_without_payload(draft)
        return self._submit(event)

    def _submit_draft_without_payload(self, draft: EventDraft) -> Future[Any]:
        return self._submit(payload_free_event(draft))

    def _submit(self, event: Any) -> Future[Any]:
        if self._writer is None:
            failed: Future[Any] = Future()
            failed.set_exception(StoreError("recorder is not started"))
            return failed
        return self._writer.submit(event)
