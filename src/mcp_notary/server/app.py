"""`mcp-notary serve`: the read API and the web console in one Starlette application.

Everything the browser needs ships in the package (templates, one stylesheet, one script);
nothing is fetched from a CDN or any other network at run time, and the Content Security
Policy forbids it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mcp_notary.server.api import api_routes, error_response
from mcp_notary.server.auth import Sessions
from mcp_notary.server.console import console_routes
from mcp_notary.server.openapi import openapi_document
from mcp_notary.server.service import ReadService

__all__ = ["create_app"]

STATIC = Path(__file__).parent / "static"
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on form posts,
    # and the login form's same-origin check needs the real origin.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class _SecurityHeaders(BaseHTTPMiddleware):
    """Every response: a strict CSP; audit data is never cached by the browser or a proxy."""

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.update(_HEADERS)
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response


async def _openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


async def _not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return error_response(404, "not_found", "no such endpoint")
    return Response("Not found", 404, media_type="text/plain")


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    response = error_response(405, "method_not_allowed", "method not allowed")
    allow = (getattr(exc, "headers", None) or {}).get("Allow")
    if allow:
        response.headers["Allow"] = allow  # RFC 9110: a 405 says what is allowed
    return response


def create_app(service: ReadService) -> Starlette:
    app = Starlette(
        routes=[
            Route("/openapi.json", _openapi, methods=["GET"]),
            *api_routes(),
            *console_routes(),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(_SecurityHeaders)],
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    app.state.service = service
    app.state.sessions = Sessions()
    app.state.openapi = openapi_document()
    return app
