"""Audit of audits: every read of the trail, allowed or denied, becomes an `audit_access` event
in the same tamper-evident ledger (PCI DSS 10.2.1.3, and 10.2.1.4 for refusals).

A long-lived reader (`mcp-notary serve`) owns one stream, created through `AuditRecorder`
like a capture process's but without lifecycle records, so it holds nothing but its
`audit_access` events; short-lived readers (the CLI) share the store's reader stream
(:mod:`mcp_notary.access.readerstream`). Each event is
made durable before the read it records is answered: a read that cannot be audited fails.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Literal

from mcp_notary.access.readerstream import SharedReaderStream
from mcp_notary.access.roles import Action, Role
from mcp_notary.errors import NotaryError, StoreError
from mcp_notary.events.build import CaptureContext
from mcp_notary.events.model import AuditEvent, EventDraft, Principal, payload_free_event
from mcp_notary.ledger.checkpointer import CheckpointSettings
from mcp_notary.ledger.store import EventRow, Store
from mcp_notary.recorder import AuditRecorder
from mcp_notary.redact.detectors import default_detectors
from mcp_notary.redact.tokens import RedactionKey, load_or_create_key
from mcp_notary.vocabulary import Kind, Outcome

__all__ = ["AccessRecord", "Interface", "ReadAuditor", "access_details", "access_method"]

Interface = Literal["cli", "api", "console"]
_TRANSPORT: dict[Interface, str] = {"cli": "inprocess", "api": "http", "console": "http"}
_TEXT_LIMIT = 500  # a query string is evidence, not a payload: keep it bounded
_CHANGES = frozenset({"grant", "revoke", "token_create", "token_revoke"})


@dataclass(frozen=True)
class AccessRecord:
    """One read (or access change) to record. `query` holds the filters and search text as
    given; `returned` how many events (or rows) the reader got back."""

    principal: Principal
    action: Action
    allowed: bool
    interface: Interface
    basis: str = ""
    query: dict[str, Any] = field(default_factory=dict)
    returned: int | None = None
    purpose: str | None = None
    roles: frozenset[Role] = frozenset()


def access_method(action: Action) -> str:
    """`access/<action>` for changes of who may read, `audit/<action>` for reads."""
    return f"access/{action}" if action in _CHANGES else f"audit/{action}"


Scrub = Callable[[str], str]


def _unchanged(text: str) -> str:
    return text


def _bounded(value: Any, scrub: Scrub) -> Any:
    if isinstance(value, str):
        value = scrub(value)
        return value if len(value) <= _TEXT_LIMIT else value[:_TEXT_LIMIT] + "…"
    if isinstance(value, dict):
        return {str(k): _bounded(v, scrub) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_bounded(v, scrub) for v in value]
    if isinstance(value, float):
        return str(value)  # RFC 8785 handles floats, but a query never needs one
    return value


def access_details(record: AccessRecord, scrub: Scrub = _unchanged) -> dict[str, Any]:
    """The `details` of the `audit_access` event (pure). `scrub` redacts free text: a reader
    may paste a secret into a search, and it must not reach the ledger that way either."""
    return {
        "action": record.action,
        "decision": "allowed" if record.allowed else "denied",
        "basis": _bounded(record.basis, scrub),
        "interface": record.interface,
        "query": _bounded(record.query, scrub),
        "returned": record.returned,
        "purpose": _bounded(record.purpose, scrub) if record.purpose else None,
        "roles": sorted(record.roles),
    }


def detector_scrub() -> Scrub:
    """Free text through the redaction detectors under the redaction key (so a secret searched
    for gets the same token as in the events), or under a key of this process's own when the
    key file cannot be read: the secret is removed either way."""
    try:
        key = load_or_create_key()
    except NotaryError:
        key = RedactionKey.generate()
    detectors = default_detectors()
    return lambda text: detectors.redact(text, key).text


class _PayloadFreeOnly:
    """The read side records metadata only; a draft carrying payload is refused, not redacted."""

    def observe_tools(self, server: str | None, tools: list[dict[str, Any]]) -> None:
        return None

    def finalize(self, draft: EventDraft) -> AuditEvent:
        return payload_free_event(draft)


class ReadAuditor:
    """Records `AccessRecord`s on this process's reader stream. The stream is created with the
    first record, so a reader that never got as far as a decision leaves no empty stream."""

    def __init__(
        self, recorder: AuditRecorder | SharedReaderStream, *, timeout_s: float = 30.0
    ) -> None:
        self.recorder = recorder
        self.timeout_s = timeout_s
        self._started = False
        self._closed = False
        self._lock = threading.Lock()
        self._scrub: Scrub | None = None

    @classmethod
    def for_store(
        cls,
        store: Store,
        *,
        process_principal: Principal,
        interface: Interface,
        label: str,
        checkpointing: CheckpointSettings | None = None,
        shared: bool = False,
    ) -> ReadAuditor:
        """A reader stream on `store` (which must be writable): with `shared`, the store's
        shared reader stream (short-lived readers), else one of this process's own."""
        context = CaptureContext(principal=process_principal, transport=_TRANSPORT[interface])
        if shared:
            return cls(SharedReaderStream(store, context, label=label, checkpointing=checkpointing))
        recorder = AuditRecorder(
            store,
            _PayloadFreeOnly(),
            context,
            stream_label=label,
            checkpointing=checkpointing,
        )
        return cls(recorder)

    @property
    def stream(self) -> str:
        return self.recorder.stream

    def record(self, record: AccessRecord) -> EventRow:
        """Append the event and wait until it is durable. Raises `StoreError` if it is not:
        the caller must then refuse the read."""
        if self._scrub is None:
            self._scrub = detector_scrub()
        return self.append(
            "audit_access",
            access_details(record, self._scrub),
            principal=record.principal,
            method=access_method(record.action),
            outcome="success" if record.allowed else "denied",
        )

    def append(
        self,
        kind: Kind,
        details: dict[str, Any],
        *,
        principal: Principal,
        method: str | None = None,
        outcome: Outcome | None = "success",
    ) -> EventRow:
        """Append a payload-free event of `kind` on the reader stream (a lifecycle command's
        `retention`, `legal_hold` or `erasure` record) and wait until it is durable."""
        with self._lock:
            if self._closed:
                raise StoreError("the reader stream is closed")
            if not self._started:
                self.recorder.start(announce=False)
                self._started = True
        future = self.recorder.record_event(
            kind, details, principal=principal, method=method, outcome=outcome
        )
        try:
            row: EventRow = future.result(timeout=self.timeout_s)
        except FutureTimeout as exc:
            raise StoreError("the audit store did not record this read in time") from exc
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot record this read: {exc}") from exc
        return row

    def close(self) -> None:
        """Flush and seal the reader stream (its final checkpoint). Idempotent."""
        with self._lock:
            self._closed = True
            if self._started:
                self.recorder.close("reader_closed")
