"""In-process capture: audit middleware for the official SDK's `MCPServer` / low-level `Server`
(its provisional server middleware list) and for FastMCP (`add_middleware`).

The SDK middleware sees the raw wire dict of each inbound message (`ctx.params`, before
validation) and `call_next` returns the wire-form result, so the middleware rebuilds the two
JSON-RPC messages as `WireMessage`s and hands them to the same `Pairer` and recorder as the
stdio relay and the HTTP proxy: same events, same outcomes. FastMCP hands typed models, which
are dumped by alias (the closest available to the wire). The principal is the SDK's
authenticated access token when the transport has one.

    import mcp_notary
    mcp_notary.install(server)            # or install(server, store="audit.db")
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from mcp_notary.capture.http_audit import HttpSink, end_one
from mcp_notary.capture.pairing import Exchange, Pairer, WireMessage
from mcp_notary.identity.principal import Principal

TRANSPORT = "inprocess"
INTERNAL_ERROR = -32603
INVALID_PARAMS = -32602

Listener = Callable[[Exchange, Any], None]
_listeners: list[Listener] = []  # testing hooks (`mcp_notary.testing.capture_events`)


def add_listener(listener: Listener) -> None:
    _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    _listeners.remove(listener)


def principal_from_access_token(token: Any) -> Principal | None:
    """The SDK's `AccessToken` (validated by the server's own token verifier) as a principal:
    `iss#sub` when the verifier supplied them, else the OAuth client."""
    if token is None:
        return None
    claims = dict(getattr(token, "claims", None) or {})
    issuer = claims.get("iss")
    subject = getattr(token, "subject", None) or claims.get("sub")
    client_id = getattr(token, "client_id", None)
    details = {
        "client_id": client_id,
        "scopes": list(getattr(token, "scopes", None) or []),
        "act": claims.get("act"),
        "aud": claims.get("aud") or getattr(token, "resource", None),
    }
    details = {k: v for k, v in details.items() if v not in (None, [])}
    if subject:
        if subject == client_id:  # client credentials: the client acts for itself
            return Principal(f"{issuer or ''}#{subject}", "service", "token", details)
        return Principal(f"{issuer or ''}#{subject}", "user", "token", details)
    return Principal(f"client:{client_id}", "service", "token", details)


def sdk_principal() -> Principal | None:
    try:
        from mcp.server.auth.middleware.auth_context import get_access_token
    except ImportError:  # pragma: no cover - the SDK without auth support
        return None
    return principal_from_access_token(get_access_token())


class _Tap:
    """Turns one inbound message and its outcome into wire copies for the shared pairer."""

    def __init__(self, sink: HttpSink) -> None:
        self.sink = sink
        # One pairer per connection (its session facts: clientInfo, protocol version);
        # weak, so a finished session leaves nothing behind.
        self._pairers: weakref.WeakKeyDictionary[Any, Pairer] = weakref.WeakKeyDictionary()
        self._stateless = Pairer()

    def pairer(self, connection: Any) -> Pairer:
        if connection is None:
            return self._stateless
        try:
            found = self._pairers.get(connection)
            if found is None:
                found = self._pairers[connection] = Pairer()
        except TypeError:  # not weak-referenceable: fall back to per-call pairing
            return Pairer()
        return found

    def request(
        self, pairer: Pairer, method: str, request_id: Any, params: Any, principal: Principal | None
    ) -> WireMessage:
        obj: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if request_id is not None:
            obj["id"] = request_id
        if params is not None:
            obj["params"] = params
        message = _wire("client_to_server", obj)
        self._record(pairer, pairer.feed(message), principal)
        return message

    def result(
        self, pairer: Pairer, request: WireMessage, result: Any, principal: Principal | None
    ) -> None:
        assert request.obj is not None
        body = {"jsonrpc": "2.0", "id": request.obj["id"], "result": result}
        self._record(pairer, pairer.feed(_wire("server_to_client", body)), principal)

    def error(
        self,
        pairer: Pairer,
        request: WireMessage,
        error: dict[str, Any],
        principal: Principal | None,
    ) -> None:
        assert request.obj is not None
        body = {"jsonrpc": "2.0", "id": request.obj["id"], "error": error}
        self._record(pairer, pairer.feed(_wire("server_to_client", body)), principal)

    def cancelled(self, pairer: Pairer, request: WireMessage, principal: Principal | None) -> None:
        exchange = end_one(pairer, request, "cancelled")
        if exchange is not None:
            self._record(pairer, [exchange], principal)

    def _record(
        self, pairer: Pairer, exchanges: list[Exchange], principal: Principal | None
    ) -> None:
        for exchange in exchanges:
            exchange.principal = principal
            try:
                self.sink.record(exchange, pairer.session)
            except Exception as exc:  # auditing never breaks the server's own call
                print(f"mcp-notary: audit record failed: {exc!r}", file=sys.stderr)
            for listener in list(_listeners):
                listener(exchange, pairer.session)


def _wire(direction: Any, obj: dict[str, Any]) -> WireMessage:
    size = len(json.dumps(obj, separators=(",", ":"), default=str))
    return WireMessage(direction, time.time(), size, obj=obj)


def _dump(value: Any) -> Any:
    for convert in ("to_mcp_tool", "to_mcp_resource", "to_mcp_template", "to_mcp_prompt"):
        if hasattr(value, convert):  # FastMCP components hold functions; dump their MCP form
            return _dump(getattr(value, convert)())
    if isinstance(value, BaseModel):
        try:
            return value.model_dump(by_alias=True, mode="json", exclude_none=True)
        except (ValueError, TypeError):  # something not JSON-shaped: say so, never fail the call
            return {"unserializable": type(value).__name__}
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _error_of(exc: BaseException) -> dict[str, Any]:
    inner = getattr(exc, "error", None)  # the SDK's MCPError carries the JSON-RPC error
    code = getattr(inner, "code", None)
    if isinstance(code, int):
        body: dict[str, Any] = {"code": code, "message": str(getattr(inner, "message", exc))}
        data = getattr(inner, "data", None)
        if data is not None:
            body["data"] = _dump(data)
        return body
    if isinstance(exc, ValidationError):
        return {"code": INVALID_PARAMS, "message": "invalid params"}
    return {"code": INTERNAL_ERROR, "message": type(exc).__name__}


# -- official SDK ----------------------------------------------------------------------------


class SDKAuditMiddleware:
    """`ServerMiddleware` for `mcp` 2.x `MCPServer` / `Server` (`server.middleware`)."""

    def __init__(self, sink: HttpSink) -> None:
        self.sink = sink
        self._tap = _Tap(sink)

    async def __call__(self, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        principal = sdk_principal()
        pairer = self._tap.pairer(getattr(ctx, "session", None))
        params = dict(ctx.params) if ctx.params is not None else None
        request = self._tap.request(pairer, ctx.method, ctx.request_id, params, principal)
        if ctx.request_id is None:
            return await call_next(ctx)
        try:
            result = await call_next(ctx)
        except asyncio.CancelledError:
            self._tap.cancelled(pairer, request, principal)
            raise
        except Exception as exc:
            self._tap.error(pairer, request, _error_of(exc), principal)
            raise
        self._tap.result(pairer, request, _dump(result) if result is not None else {}, principal)
        return result


# -- FastMCP ---------------------------------------------------------------------------------


def fastmcp_middleware(sink: HttpSink) -> Any:
    """A FastMCP `Middleware` recording every message through `sink`."""
    from fastmcp.exceptions import ToolError
    from fastmcp.server.dependencies import get_access_token
    from fastmcp.server.middleware import Middleware

    tap = _Tap(sink)

    class FastMCPAuditMiddleware(Middleware):
        sink: HttpSink

        async def on_message(self, context: Any, call_next: Any) -> Any:
            principal = principal_from_access_token(get_access_token())
            fctx = context.fastmcp_context
            session = _safe(lambda: fctx.session) if fctx is not None else None
            request_id = _safe(lambda: fctx.request_id) if fctx is not None else None
            if context.type == "request" and request_id is None:
                request_id = f"inprocess-{id(context)}"  # no transport id (direct call)
            pairer = tap.pairer(session)
            method = context.method or "unknown"
            params = _dump(context.message)
            request = tap.request(
                pairer,
                method,
                request_id if context.type == "request" else None,
                params if isinstance(params, dict) else None,
                principal,
            )
            if context.type != "request":
                return await call_next(context)
            try:
                result = await call_next(context)
            except asyncio.CancelledError:
                tap.cancelled(pairer, request, principal)
                raise
            except ToolError as exc:
                failed = {"content": [{"type": "text", "text": str(exc)}], "isError": True}
                tap.result(pairer, request, failed, principal)
                raise
            except Exception as exc:
                tap.error(pairer, request, _error_of(exc), principal)
                raise
            tap.result(pairer, request, _fastmcp_result(method, result), principal)
            return result

    middleware = FastMCPAuditMiddleware()
    middleware.sink = sink  # as on the SDK middleware: lets the embedder close the recorder
    return middleware


_LIST_KEYS = {
    "tools/list": "tools",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
    "prompts/list": "prompts",
}


def _fastmcp_result(method: str, result: Any) -> Any:
    convert = getattr(result, "to_mcp_result", None)
    if convert is None:
        dumped = _dump(result)
        if isinstance(dumped, list) and method in _LIST_KEYS:
            return {_LIST_KEYS[method]: dumped}
        return dumped if isinstance(dumped, dict) else {"value": dumped}
    mcp_result = convert()
    if isinstance(mcp_result, tuple):
        content, structured = mcp_result
        return {"content": _dump(content), "structuredContent": structured}
    if isinstance(mcp_result, list):
        return {"content": _dump(mcp_result)}
    return _dump(mcp_result)


def _safe(get: Callable[[], Any]) -> Any:
    try:
        return get()
    except (RuntimeError, LookupError, AttributeError, ValueError):
        return None  # outside a request (e.g. a direct in-memory call)


# -- installing ------------------------------------------------------------------------------


def attach(server: Any, sink: Any) -> Any:
    """Audit every message `server` handles into `sink` (anything with the
    `AuditRecorder.record` signature). `server` is an `mcp` 2.x `MCPServer` or low-level
    `Server`, or a `fastmcp.FastMCP`. Returns the middleware."""
    if _is_fastmcp(server):
        middleware = fastmcp_middleware(sink)
        server.add_middleware(middleware)
        return middleware
    chain = getattr(server, "middleware", None)
    if not isinstance(chain, list):
        raise TypeError(
            f"cannot install on {type(server).__name__}: expected an MCPServer, a low-level "
            "Server (mcp >= 2) or a FastMCP server"
        )
    middleware = SDKAuditMiddleware(sink)
    chain.append(middleware)
    return middleware


def _is_fastmcp(server: Any) -> bool:
    return any(cls.__module__.startswith("fastmcp.") for cls in type(server).__mro__)
