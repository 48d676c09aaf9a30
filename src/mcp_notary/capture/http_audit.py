"""Audit bookkeeping of the HTTP proxy: which `Pairer` a message belongs to, who sent it, and
what HTTP facts go with its event. No I/O: the proxy feeds it parsed copies.

Pairing is the stdio relay's (`capture/pairing.py`): one `Pairer` per legacy session (keyed by
`Mcp-Session-Id`, or by the POST endpoint a legacy HTTP+SSE stream announced), and a fresh one
per request otherwise (2026-07-28 is stateless; a request without a session carries all its
context in `_meta`). Per-request pairers share one bounded map of MRTR `requestState` digests
and task ids, so a retry or a `tasks/get` still links to the call it continues.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from mcp_notary.capture.pairing import EndedBy, Exchange, Pairer, SessionFacts, WireMessage
from mcp_notary.identity.principal import Principal
from mcp_notary.vocabulary import Direction, Kind, Outcome

MAX_SESSIONS = 10_000
MAX_CORRELATIONS = 100_000


class HttpSink(Protocol):
    """The audit pipeline as the proxy sees it (`AuditRecorder` is one)."""

    def record(
        self,
        exchange: Exchange,
        session: SessionFacts,
        *,
        details: dict[str, Any] | None = None,
        outcome: Outcome | None = None,
    ) -> Any: ...

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
    ) -> Any: ...


class BoundedDict(OrderedDict[str, str]):
    """Keeps the newest `limit` entries: correlation hints must not grow without end."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key, value)
        if len(self) > self.limit:
            self.popitem(last=False)


def digest(value: str) -> str:
    """Correlation handle of a session id: joins events of one session without storing the
    id itself (a legacy session id is a bearer capability)."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:32]


@dataclass
class HttpFacts:
    """What the HTTP layer said about one request; never a credential's value."""

    method: str
    path: str
    peer: str | None = None
    status: int | None = None
    mcp_method: str | None = None
    mcp_name: str | None = None
    session: str | None = None
    param_headers: tuple[str, ...] = ()
    authorization: str = "absent"
    cookies: bool = False
    query_keys: tuple[str, ...] = ()
    error: str | None = None

    def details(self, name_in_body: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"method": self.method, "path": self.path}
        for key in ("peer", "status", "mcp_method", "session", "error"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        if self.mcp_name is not None:
            # The value is already the event's tool/target; store only whether they agree.
            body["mcp_name_matches"] = self.mcp_name == name_in_body
        if self.param_headers:
            body["param_headers"] = list(self.param_headers)
        if self.query_keys:
            body["query_keys"] = list(self.query_keys)
        # Key names the redactor would treat as secrets are avoided on purpose: these are facts
        # about credentials (which scheme, whether any were sent), never the credentials.
        body["auth_scheme"] = self.authorization
        if self.cookies:
            body["cookies_sent"] = True
        return {"http": body}


@dataclass
class _Origin:
    principal: Principal
    facts: HttpFacts


@dataclass
class Conversation:
    """One pairing context plus the requests it has open (for per-request ending)."""

    pairer: Pairer
    key: str | None = None
    # Response chunks forwarded but not yet audited (the proxy lags audit work behind the
    # bytes); flushed before anything else of the conversation is fed, to keep order.
    lagging: set[Any] = field(default_factory=set)

    def catch_up(self) -> None:
        for pending in list(self.lagging):
            pending.flush()


@dataclass
class HttpAuditor:
    sink: HttpSink
    max_sessions: int = MAX_SESSIONS
    _sessions: OrderedDict[str, Conversation] = field(default_factory=OrderedDict)
    _request_state: BoundedDict = field(default_factory=lambda: BoundedDict(MAX_CORRELATIONS))
    _tasks: BoundedDict = field(default_factory=lambda: BoundedDict(MAX_CORRELATIONS))
    _origins: dict[int, _Origin] = field(default_factory=dict)

    # -- conversations ---------------------------------------------------------------------

    def conversation(self, key: str | None) -> Conversation:
        """The session's conversation (created if the proxy has not seen it, e.g. after a
        restart), or a fresh per-request one when `key` is None."""
        if key is None:
            return Conversation(self._new_pairer())
        found = self._sessions.get(key)
        if found is not None:
            self._sessions.move_to_end(key)
            return found
        return self.bind(key, Conversation(self._new_pairer()))

    def bind(self, key: str, conversation: Conversation) -> Conversation:
        """A response just named the session this conversation belongs to."""
        conversation.key = key
        self._sessions[key] = conversation
        while len(self._sessions) > self.max_sessions:
            _, evicted = self._sessions.popitem(last=False)
            self.close(evicted, "transport_error", None)
        return conversation

    def known(self, key: str) -> bool:
        return key in self._sessions

    def end_session(self, key: str, ended_by: EndedBy, facts: HttpFacts | None) -> None:
        conversation = self._sessions.pop(key, None)
        if conversation is not None:
            self.close(conversation, ended_by, facts)

    def close_all(self, ended_by: EndedBy) -> None:
        while self._sessions:
            _, conversation = self._sessions.popitem(last=False)
            self.close(conversation, ended_by, None)

    def _new_pairer(self) -> Pairer:
        # Dataclass fields, so shared maps can be handed in without touching pairing.py.
        return Pairer(_request_state=self._request_state, _tasks=self._tasks)

    # -- messages --------------------------------------------------------------------------

    def feed(
        self,
        conversation: Conversation,
        messages: list[WireMessage],
        principal: Principal,
        facts: HttpFacts,
    ) -> list[Exchange]:
        """Account for messages; requests remember who sent them and over which request."""
        conversation.catch_up()
        done: list[Exchange] = []
        for message in messages:
            obj = message.obj
            if obj is not None and "method" in obj and "id" in obj:
                self._origins[id(message)] = _Origin(principal, facts)
            for exchange in conversation.pairer.feed(message):
                done.append(exchange)
        return done

    def record(
        self,
        conversation: Conversation,
        exchanges: list[Exchange],
        principal: Principal,
        facts: HttpFacts | None,
        outcome: Outcome | None = None,
    ) -> None:
        session = conversation.pairer.session
        for exchange in exchanges:
            origin = self._origins.pop(id(exchange.request), None)
            if origin is None or exchange.kind != "call":
                origin_principal, origin_facts = principal, facts
            else:
                origin_principal, origin_facts = origin.principal, origin.facts
            exchange.principal = origin_principal
            details = origin_facts.details(_name_in(exchange)) if origin_facts else None
            self.sink.record(
                exchange,
                session,
                details=details,
                outcome=outcome if exchange.kind == "call" else None,
            )

    def end_requests(
        self,
        conversation: Conversation,
        messages: list[WireMessage],
        ended_by: EndedBy,
        facts: HttpFacts | None,
        outcome: Outcome | None = None,
    ) -> None:
        """Requests among `messages` still unanswered are over (stream ended, upstream
        failed, client went away): record each once."""
        ended = [e for m in messages if (e := end_one(conversation.pairer, m, ended_by))]
        if ended:
            self.record(conversation, ended, _anyone(), facts, outcome)

    def close(self, conversation: Conversation, ended_by: EndedBy, facts: HttpFacts | None) -> None:
        """The conversation is over: every request still open is recorded, never dropped."""
        leftovers = conversation.pairer.close(ended_by, time.time())
        if leftovers:
            self.record(conversation, leftovers, _anyone(), facts)


def end_one(pairer: Pairer, message: WireMessage, ended_by: EndedBy) -> Exchange | None:
    obj = message.obj
    if obj is None or "method" not in obj or "id" not in obj:
        return None
    # `Pairer.refuse` closes exactly one open request; the placeholder reply is dropped again.
    placeholder = WireMessage(message.direction, time.time(), 0, obj={"id": obj["id"]})
    exchange = pairer.refuse(message, placeholder)
    if exchange is not None:
        exchange.response = None
        exchange.ended_by = ended_by
        exchange.ended_at = placeholder.at
    return exchange


def _name_in(exchange: Exchange) -> str | None:
    obj = exchange.request.obj if exchange.request else None
    params = obj.get("params") if obj else None
    if isinstance(params, dict):
        for key in ("name", "uri"):
            if isinstance(params.get(key), str):
                return str(params[key])
    return None


def _anyone() -> Principal:
    # Only used when the origin of a request is unknown, which `feed` makes impossible for
    # requests; kept as an honest fallback rather than a guess.
    return Principal("unknown", "unknown", "none")
