"""Build event drafts from what the capture stage saw. One builder for every transport."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mcp_notary.capture.pairing import Exchange, SessionFacts
from mcp_notary.events.model import ClientInfo, EventDraft, Outcome, Principal, ServerInfo
from mcp_notary.ids import utc_timestamp

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")

# Methods whose `params` name what was touched, and where.
_TARGET_PARAM = {
    "resources/read": "uri",
    "resources/subscribe": "uri",
    "resources/unsubscribe": "uri",
    "prompts/get": "name",
}


@dataclass(frozen=True)
class CaptureContext:
    """Facts about the connection that the messages themselves do not carry."""

    principal: Principal
    transport: str
    server_name: str | None = None
    server_command: tuple[str, ...] | None = None
    launch: dict[str, Any] | None = None  # recorded once, in the stream's `started` event


def outcome_of(exchange: Exchange) -> tuple[Outcome, int | None]:
    """Map a finished exchange to the outcome taxonomy, with the JSON-RPC error code if any."""
    if exchange.ended_by is not None:
        return exchange.ended_by, None
    response = exchange.response.obj if exchange.response else None
    if response is None:
        return "transport_error", None
    error = response.get("error")
    if error is not None:
        code = error.get("code") if isinstance(error, dict) else None
        return "protocol_error", code if isinstance(code, int) else None
    result = response.get("result")
    if isinstance(result, dict):
        if result.get("isError") is True:
            return "tool_error", None
        result_type = result.get("resultType")
        if result_type == "input_required":
            return "input_required", None
        if result_type == "task" or isinstance(result.get("task"), dict):
            return "task", None
    return "success", None


def _trace_id(params: dict[str, Any]) -> str | None:
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return None
    match = _TRACEPARENT.match(str(meta.get("traceparent", "")))
    return match.group(1) if match else None


def build_draft(exchange: Exchange, session: SessionFacts, context: CaptureContext) -> EventDraft:
    """The draft of the event recording `exchange`. Raw payloads stay in `raw_*` fields."""
    request = exchange.request
    obj = request.obj if request and request.obj is not None else {}
    raw_params = obj.get("params")
    params = raw_params if isinstance(raw_params, dict) else {}
    method = obj.get("method") if isinstance(obj.get("method"), str) else None
    server = ServerInfo(
        name=context.server_name or session.server_name,
        version=session.server_version,
        command=list(context.server_command) if context.server_command else None,
    )
    client = (
        ClientInfo(session.client_name, session.client_version)
        if session.client_name or session.client_version
        else None
    )
    draft = EventDraft(
        kind=exchange.kind,
        timestamp=utc_timestamp(request.at if request else None),
        event_id=exchange.event_id,
        method=method,
        principal=exchange.principal or context.principal,
        client=client,
        server=server,
        transport=context.transport,
        direction=request.direction if request else None,
        protocol_version=exchange.protocol_version,
        jsonrpc_id=obj.get("id") if "id" in obj and not isinstance(obj.get("id"), bool) else None,
        trace_id=_trace_id(params),
        parent_event_id=exchange.parent_event_id,
        raw_params=raw_params,
    )
    if method == "tools/call" and isinstance(params.get("name"), str):
        draft.tool = params["name"]
    elif method in _TARGET_PARAM and isinstance(params.get(_TARGET_PARAM[method]), str):
        draft.target = params[_TARGET_PARAM[method]]
    details: dict[str, Any] = {}
    if request is not None:
        details["request_bytes"] = request.size
    if exchange.kind == "anomaly":
        draft.raw_params = None  # unparsed bytes are never stored, only their size and why
        details["problem"] = exchange.problem
    if exchange.kind == "call":
        outcome, code = outcome_of(exchange)
        draft.outcome = outcome
        draft.error_code = code
        response = exchange.response
        ended_at = response.at if response is not None else exchange.ended_at
        if ended_at is not None and request is not None:
            # Request to response, or to the moment the call was seen to end without one:
            # the event's end, which the verifier orders against the events recorded before.
            draft.duration_ms = round(max(0.0, ended_at - request.at) * 1000, 3)
        if response is not None:
            details["response_bytes"] = response.size
            body = response.obj or {}
            draft.raw_result = body.get("result")
            error = body.get("error")
            if isinstance(error, dict):
                message = error.get("message")
                draft.raw_error_message = message if isinstance(message, str) else None
                draft.raw_error_data = error.get("data")
    draft.details = details or None
    return draft
