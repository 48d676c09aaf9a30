"""The web console: server-rendered pages (Jinja2) over the same audited read operations as
the API. Login with an API token opens a session; every page view is an `audit_access`
event naming the page, the filters and how many events it showed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from mcp_notary.access.control import AccessDenied, AuthenticationFailed, Caller
from mcp_notary.access.roles import ROLES
from mcp_notary.errors import ConfigError, StoreError
from mcp_notary.events.model import KINDS, OUTCOMES
from mcp_notary.query.model import Query
from mcp_notary.server.api import FILTER_PARAMS, query_from
from mcp_notary.server.auth import SESSION_COOKIE, Session, Sessions
from mcp_notary.server.service import ReadService
from mcp_notary.server.views import EventView, bars, columns, fill_buckets

__all__ = ["console_routes", "templates"]

_TEMPLATES = Path(__file__).parent / "templates"
templates = Environment(
    loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(["html"]), enable_async=False
)
RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}

Page = Callable[[Request, Caller, Session | None], Any]


def render(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
    caller: Caller | None = context.get("caller")
    service: ReadService = request.app.state.service
    can = {}
    if caller is not None:
        for action in ("search", "stats", "checkpoints", "verify"):
            can[action] = service.side.control.authorize(caller, action).allowed
    html = templates.get_template(name).render(
        request=request, can=can, kinds=KINDS, outcomes=OUTCOMES, roles=ROLES, **context
    )
    return HTMLResponse(html, code)


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/console/login?" + urlencode({"next": target}), 303)


def _page(work: Page) -> Callable[[Request], Awaitable[Response]]:
    async def page(request: Request) -> Response:
        service: ReadService = request.app.state.service
        sessions: Sessions = request.app.state.sessions
        session = sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return _login_redirect(request)
        try:
            caller = await run_in_threadpool(service.side.control.token_caller, session.token_id)
        except AuthenticationFailed as exc:
            # The token behind the session was revoked or expired: end it, and record the try.
            await run_in_threadpool(
                service.side.control.record,
                exc.principal,
                "console_view",
                False,
                "console",
                query={"page": request.url.path},
                basis=f"authentication: {exc.reason}",
            )
            sessions.drop(request.cookies.get(SESSION_COOKIE))
            return _login_redirect(request)
        try:
            result = await run_in_threadpool(work, request, caller, session)
        except AccessDenied as exc:
            return render(
                request,
                "error.html",
                403,
                caller=caller,
                session=session,
                title="Not allowed",
                message=str(exc),
            )
        except StoreError as exc:
            return render(
                request,
                "error.html",
                503,
                caller=caller,
                session=session,
                title="Audit store unavailable",
                message=str(exc),
            )
        if isinstance(result, Response):
            return result
        name, context = result
        return render(request, name, caller=caller, session=session, **context)

    return page


def _events(request: Request, caller: Caller, session: Session | None) -> Any:
    service: ReadService = request.app.state.service
    purpose = session.purpose if session else None
    params = {k: v for k, v in request.query_params.items() if k in FILTER_PARAMS and v}
    error = None
    try:
        query = query_from(request, allow_empty=True)
        page = service.search(caller, query, "console", purpose, page="events")
        rows = [EventView.of(r) for r in page.rows]
        next_cursor = page.next_cursor
    except ConfigError as exc:
        error, rows, next_cursor = str(exc), [], None
    older = None
    if next_cursor:
        older = "?" + urlencode(
            {**{k: v for k, v in params.items() if k != "cursor"}, "cursor": next_cursor}
        )
    first = "?" + urlencode({k: v for k, v in params.items() if k != "cursor"})
    return "events.html", {
        "title": "Events",
        "events": rows,
        "params": params,
        "error": error,
        "older": older,
        "first": first if "cursor" in params else None,
        "own_only": service.side.control.authorize(caller, "search").own_only,
    }


def _event(request: Request, caller: Caller, session: Session | None) -> Any:
    service: ReadService = request.app.state.service
    purpose = session.purpose if session else None
    event_id = request.path_params["event_id"]
    row = service.event(caller, event_id, "console", purpose, page="event")
    if row is None:
        message = f"There is no event {event_id} you may see."
        return render(
            request,
            "error.html",
            404,
            caller=caller,
            session=session,
            title="No such event",
            message=message,
        )
    checkpoint = service.side.store.latest_checkpoint(row.stream)
    covered = checkpoint is not None and checkpoint.size >= row.seq
    return "event.html", {
        "title": f"Event {row.event_id}",
        "e": EventView.of(row),
        "checkpoint": checkpoint,
        "covered": covered,
    }


def _integrity(request: Request, caller: Caller, session: Session | None) -> Any:
    service: ReadService = request.app.state.service
    status = service.integrity(caller, "console", session.purpose if session else None)
    return "integrity.html", {"title": "Integrity", "status": status}


def _activity(request: Request, caller: Caller, session: Session | None) -> Any:
    service: ReadService = request.app.state.service
    span = request.query_params.get("range", "7d")
    if span not in (*RANGES, "all"):
        span = "7d"
    since = None
    if span in RANGES:
        since = (datetime.now(UTC) - RANGES[span]).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    activity = service.stats(caller, since, None, "console", session.purpose if session else None)
    return "activity.html", {
        "title": "Activity",
        "activity": activity,
        "range": span,
        "ranges": [*RANGES, "all"],
        "timeline": columns(fill_buckets(activity.by_time, activity.bucket)),
        "tools": bars(activity.by_tool),
        "principals": bars(activity.by_principal),
        "outcome_bars": bars(activity.by_outcome, width=260),
    }


def _safe_next(target: str | None) -> str:
    """Only a path on this server (no open redirect)."""
    if not target:
        return "/console/events"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/console"):
        return "/console/events"
    return target


def _same_origin(request: Request) -> bool:
    """A POST must come from this server's own pages (cookies are SameSite=Strict too)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def login_page(request: Request) -> Response:
    return render(request, "login.html", next=_safe_next(request.query_params.get("next")))


async def login(request: Request) -> Response:
    service: ReadService = request.app.state.service
    if not _same_origin(request):
        return render(request, "login.html", 403, error="Cross-site login refused.")
    form = await request.form()
    token = str(form.get("token") or "").strip()
    purpose = str(form.get("purpose") or "").strip()[:200] or None
    target = _safe_next(str(form.get("next") or ""))
    control = service.side.control
    try:
        caller = await run_in_threadpool(control.authenticate_token, token)
    except AuthenticationFailed as exc:
        await run_in_threadpool(
            control.record,
            exc.principal,
            "console_view",
            False,
            "console",
            query={"page": "login"},
            basis=f"authentication: {exc.reason}",
        )
        return render(request, "login.html", 401, error="That token is not valid.", next=target)
    try:
        await run_in_threadpool(service.login, caller, purpose)
    except AccessDenied:
        message = f"{caller.principal.id} holds no role that may use the console."
        return render(request, "login.html", 403, next=target, error=message)
    assert caller.token_id is not None
    session_id = request.app.state.sessions.create(caller.token_id, purpose)
    response = RedirectResponse(target, 303)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        httponly=True,
        samesite="strict",
        secure=service.settings.secure_cookies,
        path="/",
    )
    return response


async def logout(request: Request) -> Response:
    if _same_origin(request):
        request.app.state.sessions.drop(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/console/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def home(request: Request) -> Response:
    return RedirectResponse("/console/events", 303)


def console_routes() -> list[Route]:
    return [
        Route("/", home, methods=["GET"]),
        Route("/console", home, methods=["GET"]),
        Route("/console/login", login_page, methods=["GET"]),
        Route("/console/login", login, methods=["POST"]),
        Route("/console/logout", logout, methods=["POST"]),
        Route("/console/events", _page(_events), methods=["GET"]),
        Route("/console/events/{event_id}", _page(_event), methods=["GET"]),
        Route("/console/integrity", _page(_integrity), methods=["GET"]),
        Route("/console/activity", _page(_activity), methods=["GET"]),
    ]


def filter_link(params: dict[str, str], **changes: str | None) -> str:
    merged = {k: v for k, v in {**params, **changes}.items() if v and k != "cursor"}
    return "?" + urlencode(merged)


templates.globals["filter_link"] = filter_link
templates.globals["Query"] = Query
