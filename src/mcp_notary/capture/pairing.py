"""JSON-RPC request/response pairing, shared by every capture path (stdio relay, HTTP proxy,
middleware). Pure: it is fed parsed copies of messages and returns what completed.

It knows just enough MCP to link things: which request a response answers (ids are compared by
type and value, so `0`, `"0"` and `1` are all distinct and valid), which call a progress or
cancellation notification refers to, which call a server-to-client request happened during,
which earlier call an MRTR retry continues (by a digest of `requestState`) and which call
created a task (by `taskId`). It never changes a message.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from mcp_notary.identity.principal import Principal
from mcp_notary.ids import new_event_id
from mcp_notary.vocabulary import Direction

MODERN_META_PREFIX = "io.modelcontextprotocol/"
Problem = Literal[
    "not_utf8", "invalid_json", "not_jsonrpc", "oversized", "unmatched_response", "duplicate_id"
]
EndedBy = Literal["cancelled", "transport_error"]


@dataclass(frozen=True)
class WireMessage:
    """A parsed copy of one message as it crossed the proxy."""

    direction: Direction
    at: float
    size: int
    obj: dict[str, Any] | None = None
    problem: Problem | None = None


def parse_line(line: bytes, direction: Direction, at: float) -> list[WireMessage]:
    """Parse one newline-delimited frame. Never raises: what cannot be parsed comes back as a
    message with a `problem`, so it is audited as an anomaly."""
    size = len(line)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return [WireMessage(direction, at, size, problem="not_utf8")]
    try:
        value = json.loads(text)
    except ValueError:
        return [WireMessage(direction, at, size, problem="invalid_json")]
    # JSON-RPC batches existed in 2025-03-26 only; audit each member if one shows up.
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, dict) and item.get("jsonrpc") == "2.0":
            out.append(WireMessage(direction, at, size, obj=item))
        else:
            out.append(WireMessage(direction, at, size, problem="not_jsonrpc"))
    return out


def _id_key(value: Any) -> tuple[str, Any]:
    # Type-tagged so that 1 and "1" never pair with each other.
    return (type(value).__name__, value)


def _opposite(direction: Direction) -> Direction:
    return "server_to_client" if direction == "client_to_server" else "client_to_server"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


@dataclass
class SessionFacts:
    """What the handshake (or per-request `_meta`) told us about the two peers."""

    protocol_version: str | None = None
    client_name: str | None = None
    client_version: str | None = None
    server_name: str | None = None
    server_version: str | None = None


@dataclass
class Exchange:
    """A completed unit of audit: a call (request plus response, or request that never got
    one), a notification, or an anomaly."""

    kind: Literal["call", "call_started", "notification", "anomaly"]
    event_id: str
    request: WireMessage | None = None
    response: WireMessage | None = None
    ended_by: EndedBy | None = None
    # When a call without a response was seen to end (its cancellation arrived, the
    # connection closed). It is recorded then, after whatever happened meanwhile, so its
    # event must say so: a start time alone would put its end before earlier events.
    ended_at: float | None = None
    parent_event_id: str | None = None
    protocol_version: str | None = None
    problem: Problem | None = None
    principal: Principal | None = None  # per-request identity (HTTP); None: the connection's


@dataclass
class _Open:
    event_id: str
    message: WireMessage
    method: str
    parent_event_id: str | None


@dataclass
class Pairer:
    """Pairing state for one connection (one stdio child, one HTTP session or stream)."""

    session: SessionFacts = field(default_factory=SessionFacts)
    _open: dict[tuple[Direction, tuple[str, Any]], _Open] = field(default_factory=dict)
    _progress: dict[tuple[str, Any], str] = field(default_factory=dict)
    _request_state: dict[str, str] = field(default_factory=dict)
    _tasks: dict[str, str] = field(default_factory=dict)

    def open_requests(self) -> int:
        return len(self._open)

    def feed(self, message: WireMessage) -> list[Exchange]:
        """Account for one message; return what it completed (possibly nothing)."""
        if message.problem is not None or message.obj is None:
            return [self._anomaly(message, message.problem or "not_jsonrpc")]
        obj = message.obj
        method = obj.get("method")
        has_id = "id" in obj
        if isinstance(method, str) and has_id:
            return self._request(message, obj, method)
        if isinstance(method, str):
            return self._notification(message, obj, method)
        if has_id and ("result" in obj or "error" in obj):
            return self._response(message, obj)
        return [self._anomaly(message, "not_jsonrpc")]

    def started(self, message: WireMessage) -> Exchange | None:
        """The `call_started` record of a request `feed` just opened (strict durability)."""
        obj = message.obj or {}
        if "id" not in obj or "method" not in obj:
            return None
        pending = self._open.get((message.direction, _id_key(obj["id"])))
        if pending is None or pending.message is not message:
            return None
        return Exchange(
            "call_started",
            new_event_id(message.at),
            request=message,
            parent_event_id=pending.event_id,
            protocol_version=self._protocol_version(message),
        )

    def refuse(self, request: WireMessage, reply: WireMessage) -> Exchange | None:
        """The proxy answered `request` itself (fail closed); close it with that reply."""
        obj = request.obj or {}
        pending = self._open.pop((request.direction, _id_key(obj.get("id"))), None)
        if pending is None:
            return None
        return Exchange(
            "call",
            pending.event_id,
            request=pending.message,
            response=reply,
            parent_event_id=pending.parent_event_id,
            protocol_version=self._protocol_version(pending.message),
        )

    def close(self, ended_by: EndedBy, at: float) -> list[Exchange]:
        """The connection ended (seen at `at`): every request still open is recorded, never
        dropped."""
        done = [
            Exchange(
                "call",
                p.event_id,
                request=p.message,
                ended_by=ended_by,
                ended_at=at,
                parent_event_id=p.parent_event_id,
                protocol_version=self._protocol_version(p.message),
            )
            for p in self._open.values()
        ]
        self._open.clear()
        return done

    # -- message kinds -----------------------------------------------------------------------

    def _request(self, message: WireMessage, obj: dict[str, Any], method: str) -> list[Exchange]:
        key = (message.direction, _id_key(obj["id"]))
        out: list[Exchange] = []
        if key in self._open:
            # The peer reused an id still in flight; keep the old request on record.
            previous = self._open.pop(key)
            out.append(self._anomaly(message, "duplicate_id"))
            out.append(
                Exchange(
                    "call",
                    previous.event_id,
                    request=previous.message,
                    ended_by="cancelled",
                    ended_at=message.at,
                    parent_event_id=previous.parent_event_id,
                    protocol_version=self._protocol_version(previous.message),
                )
            )
        params = obj.get("params") if isinstance(obj.get("params"), dict) else {}
        assert isinstance(params, dict)
        event_id = new_event_id(message.at)
        parent = self._parent_of_request(message, params)
        self._open[key] = _Open(event_id, message, method, parent)
        meta = params.get("_meta")
        if isinstance(meta, dict) and "progressToken" in meta:
            self._progress[_id_key(meta["progressToken"])] = event_id
        self._learn_from_request(method, params)
        return out

    def _parent_of_request(self, message: WireMessage, params: dict[str, Any]) -> str | None:
        state = params.get("requestState")
        if state is not None:
            parent = self._request_state.get(_digest(state))
            if parent:
                return parent
        task_id = params.get("taskId")
        if isinstance(task_id, str) and task_id in self._tasks:
            return self._tasks[task_id]
        if message.direction == "server_to_client":
            # stdio carries no link between a server's request and the call it serves; the
            # newest client request still open is the call in flight.
            for pending in reversed(list(self._open.values())):
                if pending.message.direction == "client_to_server":
                    return pending.event_id
        return None

    def _response(self, message: WireMessage, obj: dict[str, Any]) -> list[Exchange]:
        key = (_opposite(message.direction), _id_key(obj["id"]))
        pending = self._open.pop(key, None)
        if pending is None:
            return [self._anomaly(message, "unmatched_response")]
        result = obj.get("result")
        if isinstance(result, dict):
            self._learn_from_result(pending.method, result, pending.event_id)
        return [
            Exchange(
                "call",
                pending.event_id,
                request=pending.message,
                response=message,
                parent_event_id=pending.parent_event_id,
                protocol_version=self._protocol_version(pending.message),
            )
        ]

    def _notification(
        self, message: WireMessage, obj: dict[str, Any], method: str
    ) -> list[Exchange]:
        params = obj.get("params") if isinstance(obj.get("params"), dict) else {}
        assert isinstance(params, dict)
        parent: str | None = None
        out: list[Exchange] = []
        if method == "notifications/progress" and "progressToken" in params:
            parent = self._progress.get(_id_key(params["progressToken"]))
        elif method == "notifications/cancelled" and "requestId" in params:
            # The sender cancels its own request; the receiver should not answer it.
            key = (message.direction, _id_key(params["requestId"]))
            pending = self._open.pop(key, None)
            if pending is not None:
                parent = pending.event_id
                out.append(
                    Exchange(
                        "call",
                        pending.event_id,
                        request=pending.message,
                        ended_by="cancelled",
                        ended_at=message.at,
                        parent_event_id=pending.parent_event_id,
                        protocol_version=self._protocol_version(pending.message),
                    )
                )
        elif method == "notifications/tasks/status" and isinstance(params.get("taskId"), str):
            parent = self._tasks.get(params["taskId"])
        out.insert(
            0,
            Exchange(
                "notification",
                new_event_id(message.at),
                request=message,
                parent_event_id=parent,
                protocol_version=self._protocol_version(message),
            ),
        )
        return out

    def _anomaly(self, message: WireMessage, problem: Problem) -> Exchange:
        return Exchange(
            "anomaly",
            new_event_id(message.at),
            request=message,
            problem=problem,
            protocol_version=self.session.protocol_version,
        )

    # -- session facts -----------------------------------------------------------------------

    def _protocol_version(self, message: WireMessage) -> str | None:
        params = (message.obj or {}).get("params")
        if isinstance(params, dict):
            meta = params.get("_meta")
            if isinstance(meta, dict):
                version = meta.get(MODERN_META_PREFIX + "protocolVersion")
                if isinstance(version, str):
                    return version
        return self.session.protocol_version

    def _learn_from_request(self, method: str, params: dict[str, Any]) -> None:
        info: Any = None
        if method == "initialize":
            info = params.get("clientInfo")
        meta = params.get("_meta")
        if isinstance(meta, dict) and isinstance(meta.get(MODERN_META_PREFIX + "clientInfo"), dict):
            info = meta[MODERN_META_PREFIX + "clientInfo"]
        if isinstance(info, dict):
            self.session.client_name = _str_or_none(info.get("name"))
            self.session.client_version = _str_or_none(info.get("version"))

    def _learn_from_result(self, method: str, result: dict[str, Any], event_id: str) -> None:
        if method == "initialize":
            self.session.protocol_version = _str_or_none(result.get("protocolVersion"))
        info = result.get("serverInfo")
        meta = result.get("_meta")
        if isinstance(meta, dict) and isinstance(meta.get(MODERN_META_PREFIX + "serverInfo"), dict):
            info = meta[MODERN_META_PREFIX + "serverInfo"]
        if isinstance(info, dict):
            self.session.server_name = _str_or_none(info.get("name"))
            self.session.server_version = _str_or_none(info.get("version"))
        if method == "server/discover" and self.session.protocol_version is None:
            versions = result.get("supportedVersions")
            if isinstance(versions, list) and versions and isinstance(versions[0], str):
                self.session.protocol_version = versions[0]
        if result.get("resultType") == "input_required" and "requestState" in result:
            self._request_state[_digest(result["requestState"])] = event_id
        task = result.get("task")
        task_id = task.get("taskId") if isinstance(task, dict) else result.get("taskId")
        if isinstance(task_id, str):
            self._tasks[task_id] = event_id


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
