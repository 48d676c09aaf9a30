"""What the console shows, computed from stored events: table rows, chart geometry, labels.
Pure: no I/O, no web framework."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mcp_notary.ledger.store import EventRow

__all__ = ["Bar", "Column", "EventView", "bars", "columns", "fill_buckets", "pretty_json"]


def _short(value: Any, limit: int = 120) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _summary_text(summary: Any) -> str:
    """A one-line preview of a redacted response summary."""
    if isinstance(summary, dict):
        content = summary.get("content")
        if isinstance(content, list):
            texts = [c.get("text") for c in content if isinstance(c, dict) and c.get("text")]
            if texts:
                return _short(" ".join(str(t) for t in texts))
    return _short(summary)


@dataclass(frozen=True)
class EventView:
    """One event as the console shows it."""

    row: EventRow
    body: dict[str, Any]

    @classmethod
    def of(cls, row: EventRow) -> EventView:
        try:
            body = json.loads(row.body)
        except ValueError:
            body = {}
        return cls(row, body if isinstance(body, dict) else {})

    @property
    def event_id(self) -> str:
        return self.row.event_id

    @property
    def time(self) -> str:
        return self.row.timestamp[:23].replace("T", " ")

    @property
    def date(self) -> str:
        return self.row.timestamp[:10]

    @property
    def clock(self) -> str:
        return self.row.timestamp[11:23]

    @property
    def title(self) -> str:
        """What happened: the tool for a call, else the method, else the lifecycle phase."""
        details = self.body.get("details") or {}
        if self.row.kind == "audit_access":
            return str(self.row.method or "audit")
        if self.row.tool:
            return self.row.tool
        return str(self.row.method or details.get("phase") or details.get("problem") or "")

    @property
    def subtitle(self) -> str:
        if self.row.tool:
            return str(self.row.method or "")
        target = self.body.get("target")
        return _short(target, 60) if target else ""

    @property
    def principal(self) -> str:
        return self.row.principal_id or ""

    @property
    def principal_source(self) -> str:
        principal = self.body.get("principal") or {}
        return str(principal.get("source") or "")

    @property
    def server(self) -> str:
        server = self.body.get("server") or {}
        return str(server.get("name") or "")

    @property
    def outcome(self) -> str:
        return self.row.outcome or ""

    @property
    def outcome_class(self) -> str:
        return {
            "": "none",
            "success": "ok",
            "cancelled": "muted",
            "input_required": "info",
            "task": "info",
            "tool_error": "warn",
            "denied": "bad",
            "protocol_error": "bad",
            "transport_error": "bad",
        }.get(self.outcome, "warn")

    @property
    def duration(self) -> str:
        value = self.body.get("duration_ms")
        return "" if value is None else f"{value:,.1f} ms"

    @property
    def redactions(self) -> list[dict[str, Any]]:
        fields = self.body.get("sensitive_fields") or []
        return [f for f in fields if isinstance(f, dict)]

    @property
    def redaction_kinds(self) -> list[str]:
        return sorted({str(f.get("kind")) for f in self.redactions})

    @property
    def preview(self) -> str:
        """Arguments, then the summary or error, in one short line."""
        error = self.body.get("error") or {}
        if isinstance(error, dict) and error.get("message"):
            return _short(error["message"])
        args = self.body.get("arguments")
        if args not in (None, {}, []):
            return _short(args)
        if self.row.kind == "audit_access":
            details = self.body.get("details") or {}
            return _short(details.get("query"))
        return _summary_text(self.body.get("response_summary"))

    @property
    def access(self) -> dict[str, Any]:
        """The details of an `audit_access` event, for its own panel."""
        details = self.body.get("details") or {}
        return details if self.row.kind == "audit_access" else {}

    def pretty(self, field: str) -> str:
        return pretty_json(self.body.get(field))


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    y: int
    width: float


def bars(items: list[tuple[str, int]], width: float = 420.0, row_height: int = 26) -> list[Bar]:
    """A horizontal bar chart: one bar per item, scaled to the largest count."""
    top = max((n for _, n in items), default=0) or 1
    return [
        Bar(label or "(none)", n, i * row_height, max(n / top * width, 2.0))
        for i, (label, n) in enumerate(items)
    ]


@dataclass(frozen=True)
class Column:
    label: str
    count: int
    x: float
    height: float
    width: float


def fill_buckets(items: list[tuple[str, int]], bucket: str) -> list[tuple[str, int]]:
    """Insert the empty hours (or days) between the first and last bucket, so the chart's
    x axis is time, not just the buckets that had events. Gives up (returns the input) on
    labels it cannot read or spans too long to draw."""
    if len(items) < 2:
        return items
    fmt, step = (
        ("%Y-%m-%dT%H", timedelta(hours=1)) if bucket == "hour" else ("%Y-%m-%d", timedelta(days=1))
    )
    try:
        first = datetime.strptime(items[0][0], fmt)
        last = datetime.strptime(items[-1][0], fmt)
    except ValueError:
        return items
    if (last - first) / step > 2000:
        return items
    counts = dict(items)
    out = []
    moment = first
    while moment <= last:
        label = moment.strftime(fmt)
        out.append((label, counts.get(label, 0)))
        moment += step
    return out


def columns(
    items: list[tuple[str, int]],
    width: float = 860.0,
    height: float = 140.0,
    max_column: float = 36.0,
) -> list[Column]:
    """A column chart of counts over time buckets; columns are at most `max_column` wide, so
    a short span does not turn into one wall of colour."""
    if not items:
        return []
    top = max(n for _, n in items) or 1
    step = min(width / len(items), max_column)
    return [
        Column(label, n, i * step, (n / top * height) if n else 0.0, max(step - 1.0, 1.0))
        for i, (label, n) in enumerate(items)
    ]
