"""The read operations the API and the console share. Each one decides (roles), reads, and
records its `audit_access` event before returning, so both faces are audited alike.

Blocking (SQLite or PostgreSQL, Argon2, hashing): the web layer calls these in a worker thread.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from mcp_notary.access.audit import Interface
from mcp_notary.access.control import AccessDenied, Caller
from mcp_notary.access.readside import ReadSide
from mcp_notary.access.roles import Action, Decision
from mcp_notary.anchor import Anchor
from mcp_notary.ids import utc_timestamp
from mcp_notary.ledger.checkpointer import DEFAULT_ORIGIN_PREFIX
from mcp_notary.ledger.keys import TrustedKey
from mcp_notary.ledger.store import CheckpointRow, EventRow, column_check_rows, stream_ends
from mcp_notary.lifecycle.retention import recorded_prunes_in
from mcp_notary.query.engine import Activity, QueryEngine
from mcp_notary.query.model import Page, Query
from mcp_notary.query.proofs import inclusion_bundle
from mcp_notary.recorder import writer_alive
from mcp_notary.verify.checkpoints import CheckpointEvidence
from mcp_notary.verify.proof import ProofBundle
from mcp_notary.verify.report import verify_trail

__all__ = ["IntegrityStatus", "ReadService", "ServerSettings", "StreamStatus"]


@dataclass(frozen=True)
class ServerSettings:
    trusted_keys: tuple[TrustedKey, ...] = ()
    trusted_key_sources: tuple[str, ...] = ()
    anchors: tuple[Anchor, ...] = ()
    origin_prefix: str = DEFAULT_ORIGIN_PREFIX
    secure_cookies: bool = False


@dataclass(frozen=True)
class StreamStatus:
    stream: str
    label: str | None
    events: int
    checkpoint_size: int
    checkpoint_at: str | None
    anchored: bool | None  # None: no anchor configured

    @property
    def uncovered(self) -> int:
        return max(self.events - self.checkpoint_size, 0)


@dataclass(frozen=True)
class IntegrityStatus:
    streams: list[StreamStatus]
    alerts: list[EventRow]
    last_verification: dict[str, Any] | None
    anchors: list[str]
    trusted_keys: list[str]

    @property
    def last_checkpoint_at(self) -> str | None:
        times = [s.checkpoint_at for s in self.streams if s.checkpoint_at]
        return max(times) if times else None


@dataclass
class _Verification:
    lock: threading.Lock = field(default_factory=threading.Lock)
    last: dict[str, Any] | None = None


class ReadService:
    def __init__(self, side: ReadSide, engine: QueryEngine, settings: ServerSettings):
        self.side = side
        self.engine = engine
        self.settings = settings
        self._verification = _Verification()

    # -- helpers -----------------------------------------------------------------------------------

    def _decide(
        self,
        caller: Caller,
        action: Action,
        interface: Interface,
        query: dict[str, Any],
        purpose: str | None,
    ) -> Decision:
        decision: Decision = self.side.control.require(
            caller, action, interface, query=query, purpose=purpose
        )
        return decision

    def _record(
        self,
        caller: Caller,
        action: Action,
        decision: Decision | bool,
        interface: Interface,
        query: dict[str, Any],
        returned: int | None,
        purpose: str | None,
        basis: str | None = None,
    ) -> None:
        self.side.control.record(
            caller, action, decision, interface, query=query, returned=returned,
            purpose=purpose, basis=basis,
        )  # fmt: skip

    # -- events ------------------------------------------------------------------------------------

    def search(
        self, caller: Caller, query: Query, interface: Interface, purpose: str | None,
        page: str | None = None,
    ) -> Page:  # fmt: skip
        described = {**query.describe(), **({"page": page} if page else {})}
        decision = self._decide(caller, "search", interface, described, purpose)
        if decision.own_only:
            query = query.own_only(caller.principal.id)
            described = {**described, "principal": caller.principal.id}
        result = self.engine.search(query)
        self._record(caller, "search", decision, interface, described, len(result.rows), purpose)
        return result

    def _own_event(
        self,
        caller: Caller,
        action: Action,
        event_id: str,
        interface: Interface,
        purpose: str | None,
        page: str | None,
    ) -> tuple[EventRow | None, Decision, dict[str, Any]]:
        query: dict[str, Any] = {"event_id": event_id, **({"page": page} if page else {})}
        decision = self._decide(caller, action, interface, query, purpose)
        row = self.engine.get(event_id)
        if row is not None and decision.own_only and row.principal_id != caller.principal.id:
            # Refused, recorded as such, and answered like a missing event: a viewer learns
            # nothing about others' events, not even that one exists.
            self._record(caller, action, False, interface, query, 0, purpose,
                         basis="not the reader's own event")  # fmt: skip
            return None, decision, query
        return row, decision, query

    def event(
        self, caller: Caller, event_id: str, interface: Interface, purpose: str | None,
        page: str | None = None,
    ) -> EventRow | None:  # fmt: skip
        row, decision, query = self._own_event(caller, "show", event_id, interface, purpose, page)
        if row is not None or not decision.own_only:
            self._record(caller, "show", decision, interface, query, int(row is not None), purpose)
        return row

    def proof(
        self, caller: Caller, event_id: str, interface: Interface, purpose: str | None
    ) -> tuple[ProofBundle, int] | None:
        row, decision, query = self._own_event(caller, "proof", event_id, interface, purpose, None)
        if row is None:
            if not decision.own_only:
                self._record(caller, "proof", decision, interface, query, 0, purpose)
            return None
        bundle = inclusion_bundle(
            self.side.store, row, self.settings.trusted_keys,
            origin_prefix=self.settings.origin_prefix,
        )  # fmt: skip
        self._record(caller, "proof", decision, interface, query, 1, purpose)
        return bundle

    # -- integrity ---------------------------------------------------------------------------------

    def verify(self, caller: Caller, interface: Interface, purpose: str | None) -> dict[str, Any]:
        decision = self._decide(caller, "verify", interface, {}, purpose)
        store = self.side.store
        evidence = [CheckpointEvidence(c.note, "store", c.stream) for c in store.checkpoints()]
        known = {c.origin: c.stream for c in store.checkpoints()}
        for anchor in self.settings.anchors:
            evidence += [CheckpointEvidence(n.note, f"anchor:{n.location}") for n in anchor.notes()]
        with self._verification.lock:  # one full verification at a time
            registrations = {info.stream: info for info in store.streams()}
            report = verify_trail(
                store.stream_names(),
                lambda stream: store.scan_leaves(stream),
                evidence,
                self.settings.trusted_keys,
                origin_prefix=self.settings.origin_prefix,
                known_origins=known,
                anchors_given=len(self.settings.anchors),
                retention=recorded_prunes_in(store),
                column_rows=lambda stream: column_check_rows(store, stream),
                registrations=registrations,
                ends=lambda stream: stream_ends(store, stream),
                alive=lambda stream: writer_alive(stream, registrations.get(stream)),
            )
        body = report.to_dict()
        body["verified_at"] = utc_timestamp()
        body["trusted_keys"] = list(self.settings.trusted_key_sources)
        self._verification.last = {
            k: body[k] for k in ("result", "exit_status", "events", "streams", "verified_at")
        } | {"findings": len(report.all_findings()), "by": caller.principal.id}
        self._record(caller, "verify", decision, interface, {}, report.events, purpose)
        return body

    def checkpoints(
        self, caller: Caller, stream: str | None, interface: Interface, purpose: str | None
    ) -> list[CheckpointRow]:
        query = {"stream": stream} if stream else {}
        decision = self._decide(caller, "checkpoints", interface, query, purpose)
        rows = self.side.store.checkpoints(stream)
        self._record(caller, "checkpoints", decision, interface, query, len(rows), purpose)
        return rows

    def integrity(
        self, caller: Caller, interface: Interface, purpose: str | None
    ) -> IntegrityStatus:
        """The console's integrity page: checkpoints per stream, anchors, alerts."""
        query = {"page": "integrity"}
        decision = self._decide(caller, "checkpoints", interface, query, purpose)
        store = self.side.store
        anchored: set[tuple[str, int]] | None = None
        if self.settings.anchors:
            copies = {n.note for a in self.settings.anchors for n in a.notes()}
            anchored = {(c.stream, c.size) for c in store.checkpoints() if c.note in copies}
        labels = {info.stream: info.server_name for info in store.streams()}
        streams = []
        for name in store.stream_names():
            latest = store.latest_checkpoint(name)
            size = latest.size if latest else 0
            streams.append(
                StreamStatus(
                    stream=name,
                    label=labels.get(name),
                    events=store.head(name).seq,
                    checkpoint_size=size,
                    checkpoint_at=latest.created_at if latest else None,
                    anchored=None if anchored is None else (name, size) in anchored,
                )
            )
        streams.sort(key=lambda s: s.checkpoint_at or "", reverse=True)
        alerts: list[EventRow] = []
        if self.side.control.authorize(caller, "alerts").allowed:
            alerts = self.engine.search(Query(kind="integrity_alert", limit=20)).rows
        self._record(caller, "checkpoints", decision, interface, query, len(streams), purpose)
        return IntegrityStatus(
            streams=streams,
            alerts=alerts,
            last_verification=self._verification.last,
            anchors=[getattr(a, "name", repr(a)) for a in self.settings.anchors],
            trusted_keys=list(self.settings.trusted_key_sources),
        )

    # -- activity ----------------------------------------------------------------------------------

    def stats(
        self, caller: Caller, since: str | None, until: str | None, interface: Interface,
        purpose: str | None,
    ) -> Activity:  # fmt: skip
        query = {k: v for k, v in (("since", since), ("until", until)) if v}
        decision = self._decide(caller, "stats", interface, query, purpose)
        activity = self.engine.activity(since, until)
        self._record(caller, "stats", decision, interface, query, activity.total, purpose)
        return activity

    def login(self, caller: Caller, purpose: str | None) -> None:
        """A console login: recorded as a view (the token was checked by the caller)."""
        decision = self.side.control.authorize(caller, "console_view")
        self._record(caller, "console_view", decision, "console", {"page": "login"}, None,
                     purpose)  # fmt: skip
        if not decision.allowed:
            raise AccessDenied(f"{caller.principal.id} may not use the console: {decision.basis}")


def event_json(row: EventRow) -> Any:
    return json.loads(row.body)


def activity_json(activity: Activity) -> dict[str, Any]:
    body = asdict(activity)
    for key in ("by_time", "by_tool", "by_principal", "by_outcome", "by_kind"):
        body[key] = [{"key": k, "count": n} for k, n in body[key]]
    return body


def checkpoint_json(row: CheckpointRow) -> dict[str, Any]:
    return {
        "stream": row.stream,
        "origin": row.origin,
        "size": row.size,
        "root": row.root.hex(),
        "created_at": row.created_at,
        "note": row.note.decode("utf-8", "replace"),
    }
