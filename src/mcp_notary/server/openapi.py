"""The OpenAPI 3.0 document of the JSON API, written by hand so it says exactly what the
server does (the test suite fuzzes the server against it with schemathesis)."""

from __future__ import annotations

from typing import Any

from mcp_notary.events.model import KINDS, OUTCOMES
from mcp_notary.query.model import MAX_LIMIT, MAX_TEXT, SORTS, TIME_PATTERN
from mcp_notary.server.auth import MAX_PURPOSE

__all__ = ["openapi_document"]

UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

_ERROR = {"$ref": "#/components/schemas/Error"}


def _response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"description": description}
    if schema is not None:
        body["content"] = {"application/json": {"schema": schema}}
    return body


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Invalid filter, search or cursor",
        401: "Missing or invalid credential (recorded as a denied access)",
        403: "The caller's roles do not allow this (recorded as a denied access)",
        404: "No such event (or not the viewer's own)",
        409: "No trusted checkpoint covers the event yet, or its stream does not verify",
        503: "The audit store cannot record this read, so it is refused",
    }
    return {str(c): _response(text[c], _ERROR) for c in codes}


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, "maxLength": MAX_TEXT, **extra}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_TIME = {"type": "string", "pattern": TIME_PATTERN, "maxLength": 40}
_PURPOSE = _query(
    "purpose",
    {"type": "string", "maxLength": MAX_PURPOSE, "description": "Why you are reading"},
    "Recorded with the access event (or send the X-Audit-Purpose header)",
)
_FILTERS = [
    _query("since", _TIME, "From this time (RFC 3339 or date), inclusive"),
    _query("until", _TIME, "Before this time (RFC 3339 or date), exclusive"),
    _query("principal", _string("Principal id"), "Only this principal's events"),
    _query("tool", _string("Tool name"), "Only calls of this tool"),
    _query("server", _string("Server name"), "Only events of this server"),
    _query("method", _string("JSON-RPC method"), "Only this method"),
    _query("outcome", {"type": "string", "enum": list(OUTCOMES)}, "Only this outcome"),
    _query(
        "kind",
        {"type": "string", "enum": list(KINDS)},
        "Only this kind (audit_access events are left out unless asked for)",
    ),
    _query("redaction_kind", _string("Redaction kind"), "Only events where this was redacted"),
    _query("trace_id", {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "W3C trace id"),
    _query("event_id", {"type": "string", "pattern": UUID_PATTERN}, "One event id"),
    _query("stream", _string("Stream"), "Only this writer stream"),
    _query("q", _string("Search text"), 'Full-text search: words, "phrases", prefix*, -exclude'),
    _query("sort", {"type": "string", "enum": list(SORTS)}, "newest (default) or oldest first"),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "Page size"),
    _query("cursor", {"type": "string", "maxLength": 400}, "next_cursor of the previous page"),
    _PURPOSE,
]
_EVENT_ID = {
    "name": "event_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 64},
}
_COUNTS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["key", "count"],
        "properties": {"key": {"type": "string"}, "count": {"type": "integer"}},
    },
}


def openapi_document() -> dict[str, Any]:
    secured: list[dict[str, list[str]]] = [{"bearer": []}, {"session": []}]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "mcp-notary read API",
            "version": "1",
            "description": "Read the tamper-evident MCP audit trail. Every call is itself "
            "recorded as an audit_access event (who, what query, how many events, purpose).",
        },
        "security": secured,
        "paths": {
            "/api/events": {
                "get": {
                    "operationId": "searchEvents",
                    "summary": "Filter and search events, newest first, one page at a time",
                    "parameters": _FILTERS,
                    "responses": {
                        "200": _response("A page of events", {"$ref": "#/components/schemas/Page"}),
                        **_errors(400, 401, 403, 503),
                    },
                }
            },
            "/api/events/{event_id}": {
                "get": {
                    "operationId": "getEvent",
                    "summary": "One event, with its position in the chain",
                    "parameters": [_EVENT_ID, _PURPOSE],
                    "responses": {
                        "200": _response("The event", {"$ref": "#/components/schemas/EventDetail"}),
                        **_errors(400, 401, 403, 404, 503),
                    },
                }
            },
            "/api/events/{event_id}/proof": {
                "get": {
                    "operationId": "getInclusionProof",
                    "summary": "Offline inclusion-proof bundle (check: mcp-notary verify-proof)",
                    "parameters": [_EVENT_ID, _PURPOSE],
                    "responses": {
                        "200": _response(
                            "mcp-notary/inclusion-proof@v1 bundle",
                            {
                                "type": "object",
                                "required": [
                                    "format",
                                    "event_id",
                                    "stream",
                                    "seq",
                                    "event_b64",
                                    "tlog_proof",
                                ],
                            },
                        ),
                        **_errors(400, 401, 403, 404, 409, 503),
                    },
                }
            },
            "/api/verify": {
                "get": {
                    "operationId": "verifyTrail",
                    "summary": "Verify every stream against its hashes and signed checkpoints",
                    "parameters": [_PURPOSE],
                    "responses": {
                        "200": _response(
                            "Verification report",
                            {
                                "type": "object",
                                "required": ["result", "exit_status", "events", "findings"],
                            },
                        ),
                        **_errors(400, 401, 403, 409, 503),
                    },
                }
            },
            "/api/stats": {
                "get": {
                    "operationId": "activityStats",
                    "summary": "Counts per time bucket, tool, principal, outcome and kind",
                    "parameters": [_FILTERS[0], _FILTERS[1], _PURPOSE],
                    "responses": {
                        "200": _response("Activity", {"$ref": "#/components/schemas/Activity"}),
                        **_errors(400, 401, 403, 503),
                    },
                }
            },
            "/api/checkpoints": {
                "get": {
                    "operationId": "listCheckpoints",
                    "summary": "Stored signed checkpoints (C2SP signed notes)",
                    "parameters": [_query("stream", _string("Stream"), "One stream"), _PURPOSE],
                    "responses": {
                        "200": _response(
                            "Checkpoints",
                            {
                                "type": "object",
                                "required": ["checkpoints"],
                                "properties": {
                                    "checkpoints": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Checkpoint"},
                                    }
                                },
                            },
                        ),
                        **_errors(400, 401, 403, 503),
                    },
                }
            },
            "/api/whoami": {
                "get": {
                    "operationId": "whoami",
                    "summary": "The caller's principal and roles",
                    "responses": {
                        "200": _response(
                            "Caller",
                            {
                                "type": "object",
                                "required": ["principal", "roles", "via"],
                                "properties": {
                                    "principal": {"type": "string"},
                                    "roles": {"type": "array", "items": {"type": "string"}},
                                    "via": {"type": "string"},
                                },
                            },
                        ),
                        **_errors(401, 503),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token from `mcp-notary access token create`, or an "
                    "OIDC access token when the server trusts an issuer",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "mcpn_session"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
                "Event": {
                    "type": "object",
                    "description": "An AuditEvent v1 (see audit-event-v1.json)",
                    "required": ["event_id", "stream", "seq", "timestamp", "kind", "principal"],
                },
                "Page": {
                    "type": "object",
                    "required": ["events", "next_cursor", "count"],
                    "properties": {
                        "events": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Event"},
                        },
                        "next_cursor": {"type": "string", "nullable": True},
                        "count": {"type": "integer"},
                    },
                },
                "EventDetail": {
                    "type": "object",
                    "required": ["event", "stream", "seq", "leaf_hash", "chain_hash"],
                    "properties": {
                        "event": {"$ref": "#/components/schemas/Event"},
                        "stream": {"type": "string"},
                        "seq": {"type": "integer"},
                        "leaf_hash": {"type": "string"},
                        "chain_hash": {"type": "string"},
                    },
                },
                "Activity": {
                    "type": "object",
                    "required": ["total", "bucket", "by_time", "by_tool", "by_principal"],
                    "properties": {
                        "since": {"type": "string", "nullable": True},
                        "until": {"type": "string", "nullable": True},
                        "total": {"type": "integer"},
                        "bucket": {"type": "string", "enum": ["hour", "day"]},
                        "by_time": _COUNTS,
                        "by_tool": _COUNTS,
                        "by_principal": _COUNTS,
                        "by_outcome": _COUNTS,
                        "by_kind": _COUNTS,
                    },
                },
                "Checkpoint": {
                    "type": "object",
                    "required": ["stream", "origin", "size", "root", "created_at", "note"],
                    "properties": {
                        "stream": {"type": "string"},
                        "origin": {"type": "string"},
                        "size": {"type": "integer"},
                        "root": {"type": "string"},
                        "created_at": {"type": "string"},
                        "note": {"type": "string"},
                    },
                },
            },
        },
    }
