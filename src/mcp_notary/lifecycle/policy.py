"""Retention policy: how long events stay queryable in the store (hot), how long they are kept
at all (total), per stream, server, tool or kind. Pure: built from the `[retention]` table."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import rfc8785

from mcp_notary.errors import ConfigError

__all__ = [
    "NEVER_PRUNED",
    "Periods",
    "RetentionPolicy",
    "RetentionRule",
    "cutoff",
    "days_text",
    "parse_days",
]

_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$")

NEVER_PRUNED = frozenset({"retention", "legal_hold", "erasure"})
"""Kinds retention never deletes: the verifier needs the retention records to tell deletion by
policy from tampering, and holds and erasures are what an auditor asks for years later."""


def parse_days(value: Any, where: str) -> int | None:
    """Days in an ISO-8601 period (``P365D``, ``P12M``, ``P6Y``; a month is 30 days, a year
    365) or a plain integer of days. Empty string or absent: None (no limit)."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = _DURATION.match(value.strip().upper())
        if match and any(match.groups()):
            y, m, w, d = (int(g) if g else 0 for g in match.groups())
            return y * 365 + m * 30 + w * 7 + d
    raise ConfigError(f"{where}: {value!r} is not a number of days or an ISO-8601 period")


def days_text(days: int | None) -> str:
    return "" if days is None else f"P{days}D"


def cutoff(now: datetime, days: int) -> str:
    """The RFC 3339 instant `days` before `now`: events stamped earlier are past the period."""
    return (now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Periods:
    """``hot``: days an event's body stays in the store; ``total``: days it is kept at all
    (in the store or the archive). None: no limit."""

    hot: int | None = None
    total: int | None = None

    def to_dict(self) -> dict[str, str]:
        return {"hot": days_text(self.hot), "total": days_text(self.total)}


_MATCH_KEYS = ("stream", "server", "tool", "kind", "data_class")


@dataclass(frozen=True)
class RetentionRule:
    """Periods for the events a rule matches (every given match key must hold). `data_class`
    matches events where redaction removed a value of that kind (`pan`, `email`, `ssn`...:
    the `kind` of an entry of `sensitive_fields`)."""

    periods: Periods
    stream: str | None = None
    server: str | None = None
    tool: str | None = None
    kind: str | None = None
    data_class: str | None = None

    def matches(
        self,
        stream: str,
        server: str | None,
        tool: str | None,
        kind: str,
        data_classes: frozenset[str] = frozenset(),
    ) -> bool:
        return (
            (self.stream is None or self.stream == stream)
            and (self.server is None or self.server == server)
            and (self.tool is None or self.tool == tool)
            and (self.kind is None or self.kind == kind)
            and (self.data_class is None or self.data_class in data_classes)
        )

    def to_dict(self) -> dict[str, Any]:
        match = {k: getattr(self, k) for k in _MATCH_KEYS if getattr(self, k) is not None}
        return {"match": match, **self.periods.to_dict()}


def _periods(table: Mapping[str, Any], where: str) -> Periods:
    hot = parse_days(table.get("hot"), f"{where}.hot")
    total = parse_days(table.get("total"), f"{where}.total")
    if hot is not None and total is not None and hot > total:
        raise ConfigError(f"{where}: hot ({hot} days) is longer than total ({total} days)")
    return Periods(hot, total)


@dataclass(frozen=True)
class RetentionPolicy:
    """The effective policy: defaults, rules (first match wins), where archived segments go."""

    default: Periods = field(default_factory=Periods)
    rules: tuple[RetentionRule, ...] = ()
    payload_days: int | None = None
    archive: str | None = None
    basis: str = ""

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> RetentionPolicy:
        """From the `[retention]` table of mcp-notary.toml (what `init --template` writes)."""
        known = {"hot", "total", "payload", "basis", "archive", "rules"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"[retention]: unknown setting(s) {', '.join(unknown)}")
        rules: list[RetentionRule] = []
        raw_rules = table.get("rules", [])
        if not isinstance(raw_rules, list):
            raise ConfigError("[retention].rules must be an array of tables ([[retention.rules]])")
        for i, raw in enumerate(raw_rules):
            where = f"[[retention.rules]] #{i + 1}"
            if not isinstance(raw, dict):
                raise ConfigError(f"{where} must be a table")
            extra = sorted(set(raw) - {*_MATCH_KEYS, "hot", "total"})
            if extra:
                raise ConfigError(f"{where}: unknown setting(s) {', '.join(extra)}")
            match = {k: raw[k] for k in _MATCH_KEYS if k in raw}
            if not match or not all(isinstance(v, str) for v in match.values()):
                raise ConfigError(f"{where}: match on at least one of {', '.join(_MATCH_KEYS)}")
            rules.append(RetentionRule(_periods(raw, where), **match))
        archive = table.get("archive")
        if archive is not None and (not isinstance(archive, str) or not archive):
            raise ConfigError("[retention].archive must be a directory path or s3:// URL")
        basis = table.get("basis", "")
        return cls(
            default=_periods(table, "[retention]"),
            rules=tuple(rules),
            payload_days=parse_days(table.get("payload"), "[retention].payload"),
            archive=archive,
            basis=basis if isinstance(basis, str) else "",
        )

    def periods_for(
        self,
        stream: str,
        server: str | None,
        tool: str | None,
        kind: str,
        data_classes: frozenset[str] = frozenset(),
    ) -> Periods:
        for rule in self.rules:
            if rule.matches(stream, server, tool, kind, data_classes):
                return rule.periods
        return self.default

    @property
    def uses_data_classes(self) -> bool:
        """Whether deciding needs each event's redaction manifest (its body)."""
        return any(r.data_class is not None for r in self.rules)

    def shortest_any(self) -> int | None:
        """The shortest period of any kind: events younger than this are never touched."""
        values = [v for p in self._all() for v in (p.hot, p.total) if v is not None]
        return min(values, default=None)

    def longest_total(self) -> int | None:
        """The longest total period of any rule (None if some event is kept forever): how
        long an archived segment, whatever it holds, must be kept."""
        totals = [p.total for p in self._all()]
        return None if any(t is None for t in totals) else max(t for t in totals if t is not None)

    def _all(self) -> Sequence[Periods]:
        return [self.default, *(r.periods for r in self.rules)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "default": self.default.to_dict(),
            "rules": [r.to_dict() for r in self.rules],
            "payload": days_text(self.payload_days),
            "archive": self.archive,
            "basis": self.basis,
            "never_pruned_kinds": sorted(NEVER_PRUNED),
        }

    @property
    def version(self) -> str:
        """A digest of the policy: each retention record names the policy it applied."""
        body = {k: v for k, v in self.to_dict().items() if k != "basis"}
        return hashlib.sha256(rfc8785.dumps(body)).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"RetentionPolicy({asdict(self)!r})"
