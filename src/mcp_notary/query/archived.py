"""Reading archived events (retention's segments) with the same queries as the store.

The store's search runs in SQL; archived events are read back from their segments and matched
here, in Python, with the same meaning: every filter must hold, and every search term must
appear among the event's words (as the store's tokenizer splits them; a quoted phrase in order,
``word*`` as a prefix, ``-term`` must not appear).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from mcp_notary.ledger.merkle import leaf_hash
from mcp_notary.ledger.segment import Segment
from mcp_notary.ledger.store import EventRow
from mcp_notary.query.model import _TERM_RE, _TOKEN_RE, Query

__all__ = ["event_matches", "segment_rows"]

_SEARCHED = ("tool", "target", "arguments", "response_summary", "details", "trace_id")


def _words(event: Mapping[str, Any]) -> list[str]:
    parts = [event.get(k) for k in _SEARCHED]
    parts.append((event.get("error") or {}).get("message"))
    parts.append((event.get("server") or {}).get("name"))
    parts += [f.get("kind") for f in event.get("sensitive_fields") or [] if isinstance(f, dict)]
    text = " ".join(
        p if isinstance(p, str) else json.dumps(p, ensure_ascii=False)
        for p in parts
        if p is not None
    )
    return [w.casefold() for w in _TOKEN_RE.findall(text)]


def _has(words: list[str], term: str, prefix: bool) -> bool:
    wanted = [w.casefold() for w in _TOKEN_RE.findall(term)]
    if not wanted:
        return True
    n = len(wanted)
    for i in range(len(words) - n + 1):
        head = words[i : i + n]
        if head[:-1] == wanted[:-1] and (
            head[-1].startswith(wanted[-1]) if prefix else head[-1] == wanted[-1]
        ):
            return True
    return False


def event_matches(query: Query, event: Mapping[str, Any]) -> bool:
    """Whether a stored event (parsed) matches `query`'s filters and search text."""
    ts = str(event.get("timestamp", ""))
    if query.since is not None and ts < query.since:
        return False
    if query.until is not None and ts >= query.until:
        return False
    principal = (event.get("principal") or {}).get("id")
    server = (event.get("server") or {}).get("name")
    kind = event.get("kind")
    if query.kind is None and kind == "audit_access":
        return False
    for wanted, actual in (
        (query.principal, principal),
        (query.tool, event.get("tool")),
        (query.server, server),
        (query.method, event.get("method")),
        (query.outcome, event.get("outcome")),
        (query.kind, kind),
        (query.trace_id, event.get("trace_id")),
        (query.event_id, event.get("event_id")),
        (query.stream, event.get("stream")),
    ):
        if wanted is not None and wanted != actual:
            return False
    if query.redaction_kind is not None and not any(
        isinstance(f, dict) and f.get("kind") == query.redaction_kind
        for f in event.get("sensitive_fields") or []
    ):
        return False
    if query.text is not None:
        words = _words(event)
        for minus, phrase, word in _TERM_RE.findall(query.text):
            raw = phrase or word
            prefix = not phrase and raw.endswith("*")
            if _has(words, raw.rstrip("*"), prefix) == bool(minus):
                return False
    return True


def segment_rows(segment: Segment, query: Query, now: str | None = None) -> Iterator[EventRow]:
    """The segment's events matching `query`, as rows (hashes recomputed from the bytes).
    With `now`, an event whose own total period ended by then is not returned: it is past
    its retention even if the archive still holds it (a locked object, a run not yet done)."""
    if now is not None and segment.expires_at is not None and segment.expires_at < now:
        return
    prev = segment.prev_chain_hash
    for seq, body, _, given in segment.entries():
        if body is None:
            assert given is not None
            prev = given
            continue
        prev = hashlib.sha256(prev + body).digest()
        try:
            event = json.loads(body)
        except ValueError:
            continue  # `verify --archive` reports it
        if not isinstance(event, dict) or not event_matches(query, event):
            continue
        if now is not None and segment.expired(str(event.get("timestamp", "")), now):
            continue
        yield EventRow(
            stream=segment.stream,
            seq=seq,
            event_id=str(event.get("event_id")),
            timestamp=str(event.get("timestamp")),
            kind=str(event.get("kind")),
            method=event.get("method"),
            tool=event.get("tool"),
            principal_id=(event.get("principal") or {}).get("id"),
            outcome=event.get("outcome"),
            body=body,
            leaf_hash=leaf_hash(body),
            chain_hash=prev,
        )
