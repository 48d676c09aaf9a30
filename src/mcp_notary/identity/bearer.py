"""Deciding on a request's bearer token: who it is, whether it may pass, what to answer if not.

`require` refuses a missing or invalid token with 401 and a `WWW-Authenticate` challenge in
the MCP authorization spec's form (RFC 6750 + RFC 9728 `resource_metadata`); `observe` lets the
request through and records the caller as unauthenticated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mcp_notary.identity.principal import Principal
from mcp_notary.identity.tokens import Reason, TokenRejected, TokenVerifier

AuthMode = Literal["require", "observe"]


def unauthenticated(reason: str, details: dict[str, Any] | None = None) -> Principal:
    return Principal(
        id="anonymous",
        type="unauthenticated",
        source="none",
        details={"reason": reason, **(details or {})},
    )


@dataclass(frozen=True)
class AuthDecision:
    principal: Principal
    allowed: bool
    reason: Reason | None = None
    token_valid: bool = False  # only a token valid for our audience may ever go upstream
    message: str | None = None


class BearerAuthenticator:
    def __init__(
        self,
        verifier: TokenVerifier,
        mode: AuthMode,
        *,
        resource_metadata: str | None = None,
        scope: str | None = None,
    ) -> None:
        self.verifier = verifier
        self.mode = mode
        self.resource_metadata = resource_metadata
        self.scope = scope

    async def decide(self, authorization: str | None) -> AuthDecision:
        """Check the `Authorization` header value (None when absent)."""
        if authorization is None or not authorization.strip():
            return self._refuse("missing", "no bearer token")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self._refuse("not_bearer", "authorization is not a bearer token")
        try:
            principal = await self.verifier.verify(token.strip())
        except TokenRejected as exc:
            details = {"claimed": exc.claimed} if exc.claimed else None
            return self._refuse(exc.reason, str(exc), details)
        return AuthDecision(principal, allowed=True, token_valid=True)

    def _refuse(
        self, reason: Reason, message: str, details: dict[str, Any] | None = None
    ) -> AuthDecision:
        return AuthDecision(
            unauthenticated(reason, details),
            allowed=self.mode == "observe",
            reason=reason,
            message=message,
        )

    def challenge(self, decision: AuthDecision, default_metadata_url: str) -> str:
        """The `WWW-Authenticate` value for a refusal: a bare challenge when no token was sent
        (RFC 6750 §3.1), `invalid_token` when one was."""
        parts = [f'resource_metadata="{self.resource_metadata or default_metadata_url}"']
        if self.scope:
            parts.append(f'scope="{self.scope}"')
        if decision.reason not in ("missing", "not_bearer"):
            parts.append('error="invalid_token"')
            parts.append(f'error_description="{_quote_safe(decision.message or "")}"')
        return "Bearer " + ", ".join(parts)


def _quote_safe(text: str) -> str:
    # RFC 6750 error_description: %x20-21 / %x23-5B / %x5D-7E only.
    return "".join(c for c in text if 0x20 <= ord(c) <= 0x7E and c not in '"\\')[:200]
