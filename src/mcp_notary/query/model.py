"""What a reader asks for: filters, full-text search, sort and cursor. Pure: no I/O.

Everything a person types is validated here, so a store backend receives only well-formed
values and a bad value becomes a `QueryError` naming the field (HTTP 400, CLI exit 3).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from mcp_notary.errors import ConfigError
from mcp_notary.events.model import KINDS, OUTCOMES
from mcp_notary.ledger.store import EventRow

__all__ = [
    "MAX_LIMIT",
    "SORTS",
    "TIME_PATTERN",
    "Cursor",
    "Page",
    "Query",
    "QueryError",
    "SqlRefused",
    "fts_expression",
    "normalise_time",
    "tsquery_expression",
]

MAX_LIMIT = 1000
MAX_TEXT = 500
SORTS = ("newest", "oldest")
Sort = Literal["newest", "oldest"]
_TRACE_RE = re.compile(r"^[0-9a-f]{32}$")
# RFC 3339 (offset optional: UTC is assumed) or a bare date; the OpenAPI document uses it too.
TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$"
_TIME_RE = re.compile(TIME_PATTERN)
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Search terms: "a phrase", a word, a prefix*; a leading '-' excludes. Tokens are then matched
# by the index's tokenizer (case-folded, split at punctuation), never parsed as FTS syntax.
_TERM_RE = re.compile(r'(-?)(?:"([^"]*)"|(\S+))')
_WORD_RE = re.compile(r"\w+", re.UNICODE)
# A word as FTS5's unicode61 tokenizer (and the PostgreSQL search vector) sees it: letters and
# digits; everything else, underscores included, separates words.
_TOKEN_RE = re.compile(r"[^\W_]+", re.UNICODE)


class QueryError(ConfigError):
    """A filter, search or cursor that cannot be used."""


class SqlRefused(QueryError):
    """A `sql` statement against the policy (a write, a table or function off the lists, more
    than one statement, a size or time limit), as opposed to one that failed on its own (a
    syntax error, an unknown column): the read audit records it as `denied`."""


def normalise_time(value: str | None, name: str) -> str | None:
    """Accept RFC 3339 or a date; return the stored form (UTC, microseconds, `Z`)."""
    if value is None or value == "":
        return None
    value = value.strip()
    if not _TIME_RE.match(value):
        raise QueryError(f"{name}: {value!r} is not an RFC 3339 time or a date")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise QueryError(f"{name}: {value!r} is not an RFC 3339 time or a date") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Cursor:
    """Keyset position: the (timestamp, stream, seq) of the last event of the previous page."""

    timestamp: str
    stream: str
    seq: int

    def encode(self) -> str:
        raw = json.dumps([self.timestamp, self.stream, self.seq], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            timestamp, stream, seq = json.loads(raw)
        except (ValueError, TypeError) as exc:
            raise QueryError("cursor: not a cursor this server issued") from exc
        if not (isinstance(timestamp, str) and isinstance(stream, str) and type(seq) is int):
            raise QueryError("cursor: not a cursor this server issued")
        return cls(timestamp, stream, seq)

    @classmethod
    def after(cls, row: EventRow) -> Cursor:
        return cls(row.timestamp, row.stream, row.seq)


def fts_expression(text: str) -> str:
    """An FTS5 MATCH expression for what a person typed: every term must match (AND); a
    quoted phrase matches in order; `word*` is a prefix; `-term` excludes. Each term is passed
    as a quoted string, so no input can be read as FTS5 syntax."""
    positive: list[str] = []
    negative: list[str] = []
    for minus, phrase, word in _TERM_RE.findall(text):
        raw = phrase if phrase else word
        prefix = not phrase and raw.endswith("*")
        words = _WORD_RE.findall(raw)
        if not words:
            continue
        term = '"' + " ".join(words).replace('"', '""') + '"' + ("*" if prefix else "")
        (negative if minus else positive).append(term)
    if not positive:
        raise QueryError("search: give at least one word to look for")
    expression = " AND ".join(positive)
    return f"({expression}) NOT ({' OR '.join(negative)})" if negative else expression


def tsquery_expression(text: str) -> str:
    """The search of `fts_expression` as a PostgreSQL `tsquery` over the store's search vector
    (words of letters and digits, case-folded): every term must match (`&`); a quoted phrase
    matches in order (`<->`); `word*` is a prefix (`:*`); `-term` excludes. Each word is a
    quoted lexeme of letters and digits only, so no input can be read as tsquery syntax."""
    positive: list[str] = []
    negative: list[str] = []
    for minus, phrase, word in _TERM_RE.findall(text):
        raw = phrase if phrase else word
        prefix = not phrase and raw.endswith("*")
        lexemes = [f"'{w.lower()}'" for w in _TOKEN_RE.findall(raw)]
        if not lexemes:
            continue
        if prefix:
            lexemes[-1] += ":*"
        term = " <-> ".join(lexemes)
        (negative if minus else positive).append(f"({term})" if len(lexemes) > 1 else term)
    if not positive:
        raise QueryError("search: give at least one word to look for")
    expression = " & ".join(positive)
    return f"({expression}) & !({' | '.join(negative)})" if negative else expression


def _choice(value: str | None, allowed: tuple[str, ...], name: str) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise QueryError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _text(value: str | None, name: str) -> str | None:
    if value is None or value.strip() == "":
        return None
    if len(value) > MAX_TEXT:
        raise QueryError(f"{name}: longer than {MAX_TEXT} characters")
    if "\x00" in value:
        raise QueryError(f"{name}: contains a NUL character")
    return value


@dataclass(frozen=True)
class Query:
    """Filters (all optional, combined with AND), search text, order and page.

    `audit_access` events are left out unless `kind` asks for them: they are the reads of the
    trail itself, and every page view adds one, so they would bury the traffic being audited.
    `limit=None` means every match (the CLI streams them; the API always sets a limit)."""

    since: str | None = None
    until: str | None = None
    principal: str | None = None
    tool: str | None = None
    server: str | None = None
    method: str | None = None
    outcome: str | None = None
    kind: str | None = None
    redaction_kind: str | None = None
    trace_id: str | None = None
    event_id: str | None = None
    stream: str | None = None
    text: str | None = None
    sort: Sort = "newest"
    limit: int | None = 50
    cursor: Cursor | None = None

    @classmethod
    def parse(cls, **raw: Any) -> Query:
        """Validate loosely typed input (query-string values, CLI options)."""
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise QueryError(f"unknown filter(s): {', '.join(sorted(unknown))}")
        trace = _text(raw.get("trace_id"), "trace_id")
        if trace is not None and not _TRACE_RE.match(trace):
            raise QueryError("trace_id: expected 32 lowercase hex digits")
        event_id = _text(raw.get("event_id"), "event_id")
        if event_id is not None and not _UUID_RE.match(event_id):
            raise QueryError("event_id: expected a UUID")
        since = normalise_time(raw.get("since"), "since")
        until = normalise_time(raw.get("until"), "until")
        if since is not None and until is not None and since > until:
            raise QueryError("since: later than until")
        limit = raw.get("limit", 50)
        if limit is not None:
            try:
                limit = int(limit)
            except (TypeError, ValueError) as exc:
                raise QueryError("limit: not an integer") from exc
            if not 1 <= limit <= MAX_LIMIT:
                raise QueryError(f"limit: must be between 1 and {MAX_LIMIT}")
        sort_text = raw.get("sort") or "newest"
        if sort_text not in SORTS:
            raise QueryError(f"sort: {sort_text!r} is not one of {', '.join(SORTS)}")
        sort: Sort = "oldest" if sort_text == "oldest" else "newest"
        cursor = raw.get("cursor")
        text = _text(raw.get("text"), "q")
        if text is not None:
            fts_expression(text)  # refuse an empty search now, not in the backend
        return cls(
            since=since,
            until=until,
            principal=_text(raw.get("principal"), "principal"),
            tool=_text(raw.get("tool"), "tool"),
            server=_text(raw.get("server"), "server"),
            method=_text(raw.get("method"), "method"),
            outcome=_choice(raw.get("outcome"), OUTCOMES, "outcome"),
            kind=_choice(raw.get("kind"), KINDS, "kind"),
            redaction_kind=_text(raw.get("redaction_kind"), "redaction_kind"),
            trace_id=trace,
            event_id=event_id,
            stream=_text(raw.get("stream"), "stream"),
            text=text,
            sort=sort,
            limit=limit,
            cursor=Cursor.decode(cursor) if isinstance(cursor, str) and cursor else None,
        )

    def own_only(self, principal_id: str) -> Query:
        """The same query, restricted to one principal's events (the viewer role)."""
        return replace(self, principal=principal_id)

    def describe(self) -> dict[str, Any]:
        """The non-default parts, for the audit record and for links."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "cursor":
                if self.cursor is not None:
                    out["cursor"] = self.cursor.encode()
                continue
            if value is not None and not (key == "sort" and value == "newest"):
                out[key] = value
        out.pop("limit", None)
        if self.limit is not None:
            out["limit"] = self.limit
        return out

    @property
    def needs_index(self) -> bool:
        """Whether the search index is needed (text, or filters on fields inside the body)."""
        return any(
            v is not None for v in (self.text, self.server, self.trace_id, self.redaction_kind)
        )


@dataclass(frozen=True)
class Page:
    """One page of matches in the requested order, and where the next page starts."""

    rows: list[EventRow]
    next_cursor: str | None
