"""The JSON API: /api/events, /api/events/{id}, /api/events/{id}/proof, /api/verify,
/api/stats, /api/checkpoints, /api/whoami. Bearer-token auth (or a console session), role
checks, and an `audit_access` event for every attempt, refused ones included."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_notary.access.control import AccessDenied, AuthenticationFailed, Caller
from mcp_notary.access.roles import Action
from mcp_notary.errors import ConfigError, IntegrityError, StoreError
from mcp_notary.query.model import MAX_TEXT, Query, QueryError, normalise_time
from mcp_notary.query.proofs import NotCovered
from mcp_notary.server.auth import Sessions, authenticate, purpose_of
from mcp_notary.server.service import (
    ReadService,
    activity_json,
    checkpoint_json,
    event_json,
)

__all__ = ["FILTER_PARAMS", "api_routes", "error_response"]

# Query-string names of the event filters (`q` is the search text).
FILTER_PARAMS = (
    "since",
    "until",
    "principal",
    "tool",
    "server",
    "method",
    "outcome",
    "kind",
    "redaction_kind",
    "trace_id",
    "event_id",
    "stream",
    "q",
    "sort",
    "limit",
    "cursor",
)

Handler = Callable[[Request, Caller, str | None], Any]


def error_response(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="mcp-notary"'} if status == 401 else None
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


def query_from(request: Request, *, allow_empty: bool = False) -> Query:
    """The query of a request's parameters. The API refuses an empty value (`?until=`): it
    is a mistake, not "any"; the console's plain HTML form sends empty fields, so it may."""
    params = request.query_params
    raw: dict[str, Any] = {k: params.get(k) for k in FILTER_PARAMS if params.get(k) is not None}
    empty = sorted(k for k, v in raw.items() if v == "")
    if empty and not allow_empty:
        raise QueryError(f"{empty[0]}: empty value")
    if "q" in raw:
        raw["text"] = raw.pop("q")
    raw.setdefault("limit", 50)
    return Query.parse(**raw)


def _param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value == "":
        raise QueryError(f"{name}: empty value")
    if value is not None and len(value) > MAX_TEXT:
        raise QueryError(f"{name}: longer than {MAX_TEXT} characters")
    return value


def _endpoint(action: Action, work: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        service: ReadService = request.app.state.service
        sessions: Sessions = request.app.state.sessions
        control = service.side.control
        try:
            caller, session = await authenticate(request, control, sessions)
        except AuthenticationFailed as exc:
            try:
                await run_in_threadpool(
                    control.record, exc.principal, action, False, "api",
                    query={"path": request.url.path}, basis=f"authentication: {exc.reason}",
                )  # fmt: skip
            except StoreError:
                return error_response(503, "unavailable", "the audit store cannot record reads")
            return error_response(401, "unauthorized", str(exc))
        try:
            purpose = purpose_of(request, session)
            result = await run_in_threadpool(work, request, caller, purpose)
        except AccessDenied as exc:
            return error_response(403, "forbidden", str(exc))
        except NotCovered as exc:
            return error_response(409, "not_covered", str(exc))
        except ConfigError as exc:  # QueryError included
            return error_response(400, "bad_request", str(exc))
        except IntegrityError as exc:
            return error_response(409, "integrity", str(exc))
        except StoreError as exc:
            return error_response(503, "unavailable", f"audit store: {exc}")
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    return endpoint


def _events(request: Request, caller: Caller, purpose: str | None) -> Any:
    service: ReadService = request.app.state.service
    page = service.search(caller, query_from(request), "api", purpose)
    return {
        "events": [event_json(r) for r in page.rows],
        "next_cursor": page.next_cursor,
        "count": len(page.rows),
    }


def _event(request: Request, caller: Caller, purpose: str | None) -> Any:
    service: ReadService = request.app.state.service
    event_id = request.path_params["event_id"]
    row = service.event(caller, event_id, "api", purpose)
    if row is None:
        return error_response(404, "not_found", f"no event {event_id}")
    return {
        "event": event_json(row),
        "stream": row.stream,
        "seq": row.seq,
        "leaf_hash": row.leaf_hash.hex(),
        "chain_hash": row.chain_hash.hex(),
    }


def _proof(request: Request, caller: Caller, purpose: str | None) -> Any:
    service: ReadService = request.app.state.service
    event_id = request.path_params["event_id"]
    found = service.proof(caller, event_id, "api", purpose)
    if found is None:
        return error_response(404, "not_found", f"no event {event_id}")
    bundle, _size = found
    return Response(
        bundle.to_json() + "\n",
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{event_id}.proof.json"'},
    )


def _verify(request: Request, caller: Caller, purpose: str | None) -> Any:
    service: ReadService = request.app.state.service
    return service.verify(caller, "api", purpose)


def _stats(request: Request, caller: Caller, purpose: str | None) -> Any:
    service: ReadService = request.app.state.service
    since = normalise_time(_param(request, "since"), "since")
    until = normalise_time(_param(request, "until"), "until")
    return activity_json(service.stats(caller, since, until, "api", purpose))


def _checkpoints(request: Request, caller: Caller, purpose: str | None) -> Any:
    service: ReadService = request.app.state.service
    stream = _param(request, "stream")
    rows = service.checkpoints(caller, stream, "api", purpose)
    return {"checkpoints": [checkpoint_json(r) for r in rows]}


async def _whoami(request: Request) -> Response:
    """Not a read of the trail: unaudited when it succeeds (a failure is an invalid access
    attempt, and is recorded like any other)."""
    service: ReadService = request.app.state.service
    try:
        caller, _ = await authenticate(request, service.side.control, request.app.state.sessions)
    except AuthenticationFailed as exc:
        try:
            await run_in_threadpool(
                service.side.control.record, exc.principal, "console_view", False, "api",
                query={"path": request.url.path}, basis=f"authentication: {exc.reason}",
            )  # fmt: skip
        except StoreError:
            return error_response(503, "unavailable", "the audit store cannot record reads")
        return error_response(401, "unauthorized", str(exc))
    return JSONResponse(
        {"principal": caller.principal.id, "roles": sorted(caller.roles), "via": caller.via}
    )


def api_routes() -> list[Route]:
    return [
        Route("/api/events", _endpoint("search", _events), methods=["GET"]),
        Route("/api/events/{event_id}", _endpoint("show", _event), methods=["GET"]),
        Route("/api/events/{event_id}/proof", _endpoint("proof", _proof), methods=["GET"]),
        Route("/api/verify", _endpoint("verify", _verify), methods=["GET"]),
        Route("/api/stats", _endpoint("stats", _stats), methods=["GET"]),
        Route("/api/checkpoints", _endpoint("checkpoints", _checkpoints), methods=["GET"]),
        Route("/api/whoami", _whoami, methods=["GET"]),
    ]
