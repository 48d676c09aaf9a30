"""Step 3 of the trail verification: what the store keeps *beside* the hashed bytes. Pure: rows
and registrations in, findings out.

(3a) Every derived column of an event row (``event_id``, ``kind``, ``method``, ``tool``,
     ``principal_id``, ``outcome``) equals the field of the hashed body it repeats
     (``column_mismatch``): the read side filters and scopes viewers by these columns, so an
     edited one would hide an event or show it to the wrong reader.
(3b) A stream's registration (the ``streams`` row: host, pid, server name) agrees with the
     stream's own hashed events: host and pid with the stream's name, which every event
     carries, and the server name with the label its ``started`` record states; a stream with
     events but no registration is reported too (``stream_record``).
(3c) Whether each stream was closed: its last event is a ``stopped`` or ``ended_uncleanly``
     record, or a reader's record (each made durable before the read went on). A stream with
     neither, whose writer process is gone, ended uncleanly or had its close removed: that is
     stated, not a finding, since a crashed writer leaves the same trail.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from mcp_notary.ledger.store import EventRow, StreamInfo, column_disagreements, started_details
from mcp_notary.verify.chain import Finding

__all__ = [
    "READ_KINDS",
    "StreamState",
    "check_columns",
    "check_registration",
    "stream_state",
]

READ_KINDS = frozenset({"audit_access", "retention", "legal_hold", "erasure"})
"""Records of the read side and lifecycle commands: each is durable before the command goes
on, so a stream ending in one needs no closing record."""

_CLOSES = ("stopped", "ended_uncleanly")


def check_columns(stream: str, rows: Iterable[EventRow]) -> list[Finding]:
    """(3a) over `rows` (all of a stream's rows, or those a store's prefilter found)."""
    findings: list[Finding] = []
    for row in rows:
        wrong = column_disagreements(row)
        if not wrong or _unreadable(row):
            continue  # a body that is no JSON object is reported by step 1 already
        shown = "; ".join(
            f"{column} is {stored!r} but the event says {own!r}"
            for column, (stored, own) in wrong.items()
        )
        findings.append(
            Finding(
                "column_mismatch",
                stream,
                row.seq,
                f"stored columns disagree with the hashed event: {shown}",
            )
        )
    return findings


def _unreadable(row: EventRow) -> bool:
    try:
        return not isinstance(json.loads(row.body), dict)
    except (ValueError, UnicodeDecodeError):
        return True


def _name_parts(stream: str) -> tuple[str, str] | None:
    host, _, rest = stream.partition("/")
    pid, _, _ = rest.partition("/")
    return (host, pid) if host and pid.isdigit() else None


def check_registration(
    stream: str, info: StreamInfo | None, first: EventRow | None, has_events: bool
) -> list[Finding]:
    """(3b) for one stream; `first` is its first stored event (the ``started`` record of a
    capture stream)."""
    if info is None:
        if not has_events:
            return []
        return [
            Finding(
                "stream_record",
                stream,
                None,
                "the stream has events but no registration in the streams table (deleted)",
            )
        ]
    wrong: list[str] = []
    parts = _name_parts(stream)
    if parts is not None:
        host, pid = parts
        if info.host != host:
            wrong.append(f"host is {info.host!r} but the stream's events say {host!r}")
        if str(info.pid) != pid:
            wrong.append(f"pid is {info.pid!r} but the stream's events say {pid}")
    started = started_details(first) or {}
    for column, key, stored in (
        ("server name", "label", info.server_name),
        ("host", "host", info.host),
        ("process start", "process_start", info.process_start),
    ):
        if key in started and stored != started[key]:  # older releases did not record it
            wrong.append(
                f"{column} is {stored!r} but the stream's started record says {started[key]!r}"
            )
    if not wrong:
        return []
    return [
        Finding(
            "stream_record",
            stream,
            None,
            "the streams table disagrees with the stream's hashed events: " + "; ".join(wrong),
        )
    ]


def _event(row: EventRow | None) -> dict[str, Any]:
    if row is None:
        return {}
    try:
        event = json.loads(row.body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return event if isinstance(event, dict) else {}


def _details(row: EventRow | None) -> dict[str, Any] | None:
    event = _event(row)
    details = event.get("details")
    return details if event.get("kind") == "lifecycle" and isinstance(details, dict) else None


Closure = Literal["closed", "reader", "running", "gone", "unknown"]


@dataclass(frozen=True)
class StreamState:
    """(3c) How a stream ends, for the report."""

    closure: Closure
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"closure": self.closure, "detail": self.detail}


def stream_state(stream: str, last: EventRow | None, alive: bool | None) -> StreamState:
    """(3c) From the stream's last stored event and whether its writer process (named by the
    stream: host and pid) still runs: None when that cannot be told from here."""
    details = _details(last)
    phase = details.get("phase") if details is not None else None
    if phase in _CLOSES:
        return StreamState("closed", f"closed by a {phase} record at seq {last.seq if last else 0}")
    if _event(last).get("kind") in READ_KINDS:
        return StreamState("reader", "a reader's stream: each record was durable before its read")
    if alive is True:
        return StreamState("running", "no close record yet; its writer process is running")
    if alive is False:
        return StreamState(
            "gone",
            "no close record, and its writer process is gone: it ended uncleanly, or its "
            "close was removed",
        )
    return StreamState(
        "unknown", "no close record; its writer runs on another host, so it may still be open"
    )
