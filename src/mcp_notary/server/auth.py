"""Who is calling the server: a bearer token (API), or a console session opened by logging in
with an API token. Sessions live in memory (a restart logs everyone out) and hold only the
token's public id: roles, revocation and expiry are re-checked on every request."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from mcp_notary.access.control import AccessControl, AuthenticationFailed, Caller
from mcp_notary.access.secrets import TOKEN_PREFIX
from mcp_notary.identity.bearer import unauthenticated
from mcp_notary.query.model import QueryError

__all__ = ["SESSION_COOKIE", "Session", "Sessions", "authenticate", "purpose_of"]

SESSION_COOKIE = "mcpn_session"
PURPOSE_HEADER = "x-audit-purpose"
MAX_PURPOSE = 200
SESSION_TTL_S = 8 * 3600.0
SESSION_IDLE_S = 3600.0


@dataclass
class Session:
    token_id: str
    purpose: str | None
    created: float
    seen: float


class Sessions:
    def __init__(self, ttl_s: float = SESSION_TTL_S, idle_s: float = SESSION_IDLE_S) -> None:
        self.ttl_s = ttl_s
        self.idle_s = idle_s
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, token_id: str, purpose: str | None) -> str:
        session_id = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._sessions[session_id] = Session(token_id, purpose, now, now)
        return session_id

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.created > self.ttl_s or now - session.seen > self.idle_s:
                del self._sessions[session_id]
                return None
            session.seen = now
            return session

    def drop(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)


def purpose_of(request: Request, session: Session | None = None) -> str | None:
    """The reader's stated purpose: the `X-Audit-Purpose` header, the `purpose` parameter, or
    the one given at console login."""
    value = request.headers.get(PURPOSE_HEADER) or request.query_params.get("purpose")
    if value:
        if len(value) > MAX_PURPOSE:
            raise QueryError(f"purpose: longer than {MAX_PURPOSE} characters")
        return value
    return session.purpose if session else None


async def authenticate(
    request: Request, control: AccessControl, sessions: Sessions
) -> tuple[Caller, Session | None]:
    """The caller of an API request (bearer header first, else a console session cookie).
    Raises `AuthenticationFailed`."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise AuthenticationFailed(
                "not_bearer", "authorization is not a bearer token", unauthenticated("not_bearer")
            )
        if value.startswith(TOKEN_PREFIX) or control.oidc is None:
            # Argon2 takes tens of milliseconds: never on the event loop.
            return await run_in_threadpool(control.authenticate_token, value), None
        return await control.authenticate_bearer(value), None
    session = sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is not None:
        return await run_in_threadpool(control.token_caller, session.token_id), session
    raise AuthenticationFailed("missing", "no bearer token", unauthenticated("missing"))
