"""Legal holds: which events must outlive retention and erasure until released. Pure: holds
are read from the ledger's own `legal_hold` events, so placing and releasing one is audited
and no second table can disagree with the trail."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["HeldRow", "LegalHold", "active_holds"]


@dataclass(frozen=True)
class HeldRow:
    """What a hold is matched against: an event's indexed columns and, for text criteria,
    its stored body."""

    stream: str
    seq: int
    timestamp: str
    tool: str | None
    principal_id: str | None
    body: bytes | None = None


@dataclass(frozen=True)
class LegalHold:
    """Hold every event matching all given criteria. `query` is text the stored (redacted)
    event must contain, case-insensitively; `subject_key` holds a data subject's events
    (by key id, never the subject's identifier) against erasure."""

    hold_id: str
    reason: str
    placed_at: str
    placed_by: str
    principal: str | None = None
    tool: str | None = None
    since: str | None = None
    until: str | None = None
    query: str | None = None
    subject_key: str | None = None
    stream: str | None = None

    def criteria(self) -> dict[str, str]:
        keys = ("principal", "tool", "since", "until", "query", "subject_key", "stream")
        return {k: v for k in keys if (v := getattr(self, k)) is not None}

    def matches(self, row: HeldRow) -> bool:
        if self.stream is not None and row.stream != self.stream:
            return False
        if self.principal is not None and row.principal_id != self.principal:
            return False
        if self.tool is not None and row.tool != self.tool:
            return False
        if self.since is not None and row.timestamp < self.since:
            return False
        if self.until is not None and row.timestamp >= self.until:
            return False
        if self.query is not None or self.subject_key is not None:
            text = (row.body or b"").decode("utf-8", "replace")
            if self.query is not None and self.query.casefold() not in text.casefold():
                return False
            if self.subject_key is not None and self.subject_key not in text:
                return False
        return True

    @property
    def needs_body(self) -> bool:
        return self.query is not None or self.subject_key is not None

    def to_details(self) -> dict[str, Any]:
        """The `details` of the `legal_hold` event that places it."""
        return {"action": "placed", **{k: v for k, v in asdict(self).items() if v is not None}}

    @classmethod
    def from_details(cls, details: Mapping[str, Any], placed_at: str) -> LegalHold:
        fields = {
            k: details.get(k)
            for k in ("principal", "tool", "since", "until", "query", "subject_key", "stream")
        }
        return cls(
            hold_id=str(details["hold_id"]),
            reason=str(details.get("reason", "")),
            placed_at=str(details.get("placed_at", placed_at)),
            placed_by=str(details.get("placed_by", "")),
            **{k: str(v) for k, v in fields.items() if v is not None},
        )


def active_holds(bodies: Iterable[bytes]) -> list[LegalHold]:
    """The holds placed and not released, from the stored bodies of `legal_hold` events in
    any order (a release names the hold it ends)."""
    placed: dict[str, LegalHold] = {}
    released: set[str] = set()
    for body in bodies:
        try:
            event = json.loads(body)
            details = event["details"]
            action, hold_id = details["action"], str(details["hold_id"])
        except (ValueError, KeyError, TypeError):
            continue  # a damaged record is the verifier's to report
        if action == "placed":
            placed[hold_id] = LegalHold.from_details(details, event.get("timestamp", ""))
        elif action == "released":
            released.add(hold_id)
    return sorted(
        (h for h_id, h in placed.items() if h_id not in released), key=lambda h: h.placed_at
    )
