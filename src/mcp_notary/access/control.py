"""Access control of the read side: who the caller is, what they may do, and the changes to
who may read (grants, revocations, tokens), each announced in the ledger before it takes effect.

Callers reach the read side three ways:
- the CLI, as the OS user running it. Until anyone holds a role, that user is the store's
  owner and may do everything (a fresh install must be usable, and whoever can write the file
  could anyway); once grants exist, local users need roles like everyone else. Until someone
  holds `admin`, the local user may manage access: that is how the first admin is made.
- an API token (`mcpn_...`), issued by an admin, stored hashed;
- an OIDC bearer token, when the server is configured with an issuer (identity module).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from mcp_notary.access.audit import AccessRecord, Interface, ReadAuditor
from mcp_notary.access.registry import (
    AccessState,
    AccessStore,
    GrantChange,
    TokenRecord,
    TokenRevocation,
)
from mcp_notary.access.roles import ROLES, Action, Decision, Role, decide
from mcp_notary.access.secrets import (
    TOKEN_PREFIX,
    IssuedToken,
    hash_secret,
    new_token,
    parse_token,
    token_digest,
    verify_secret,
)
from mcp_notary.errors import ConfigError, NotaryError
from mcp_notary.events.model import Principal
from mcp_notary.identity.bearer import unauthenticated
from mcp_notary.identity.tokens import TokenRejected, TokenVerifier
from mcp_notary.ids import utc_timestamp

__all__ = ["AccessControl", "AccessDenied", "AuthenticationFailed", "Caller"]

_MANAGE: frozenset[Action] = frozenset(
    {"grant", "revoke", "token_create", "token_revoke", "access_list"}
)
_CACHE_SIZE = 1024
_CACHE_TTL_S = 60.0


class AuthenticationFailed(NotaryError):
    """No valid credential. `principal` is what the audit record names (unauthenticated, with
    the public token id and the claimed owner when a known token was refused)."""

    exit_code = 5  # the CLI's "access denied"

    def __init__(self, reason: str, message: str, principal: Principal) -> None:
        super().__init__(message)
        self.reason = reason
        self.principal = principal


class AccessDenied(NotaryError):
    """The caller's roles do not allow the action (already recorded in the ledger)."""

    exit_code = 5


@dataclass(frozen=True)
class Caller:
    """An authenticated reader. `local_owner` and `bootstrap` are the CLI's owner rules."""

    principal: Principal
    roles: frozenset[Role]
    via: str  # "token", "oidc" or "os"
    token_id: str | None = None
    local_owner: bool = False
    bootstrap: bool = False


class AccessControl:
    def __init__(
        self,
        store: AccessStore,
        auditor: ReadAuditor,
        *,
        oidc: TokenVerifier | None = None,
    ) -> None:
        self.store = store
        self.auditor = auditor
        self.oidc = oidc
        # token digest -> (token id, monotonic expiry): skips Argon2 on every request, while
        # revocation and expiry are still checked against the records each time.
        self._verified: OrderedDict[str, tuple[str, float]] = OrderedDict()

    # -- state ---------------------------------------------------------------------------------

    def state(self) -> AccessState:
        return AccessState.replay(
            self.store.grant_changes(), self.store.tokens(), self.store.revocations()
        )

    # -- who is calling ----------------------------------------------------------------------------

    def local_caller(self, principal: Principal) -> Caller:
        state = self.state()
        return Caller(
            principal,
            state.roles_of(principal.id),
            via="os",
            local_owner=not state.has_grants,
            bootstrap=not state.has_admin,
        )

    def authenticate_token(self, value: str) -> Caller:
        """The caller an `mcpn_` token stands for. Raises `AuthenticationFailed`."""
        parsed = parse_token(value)
        if parsed is None:
            raise AuthenticationFailed(
                "malformed", "not an mcp-notary API token", unauthenticated("malformed")
            )
        token_id = parsed[0]
        state = self.state()
        record = state.tokens.get(token_id)
        if record is None:
            raise AuthenticationFailed(
                "unknown_token",
                "unknown API token",
                unauthenticated("unknown_token", {"token_id": token_id}),
            )
        claimed = {"token_id": token_id, "claimed": record.principal}
        if token_id in state.revoked:
            raise AuthenticationFailed(
                "revoked", "this API token was revoked", unauthenticated("revoked", claimed)
            )
        if state.active_token(token_id, utc_timestamp()) is None:
            raise AuthenticationFailed(
                "expired", "this API token has expired", unauthenticated("expired", claimed)
            )
        if not self._secret_ok(record, value):
            raise AuthenticationFailed(
                "bad_secret", "invalid API token", unauthenticated("bad_secret", claimed)
            )
        principal = Principal(record.principal, "user", "token", {"token_id": token_id})
        return Caller(principal, state.roles_of(record.principal), "token", token_id)

    def token_caller(self, token_id: str) -> Caller:
        """The caller of an already verified token (a console session), re-checked against the
        records: a revoked or expired token ends its sessions, a revoked role applies at once."""
        state = self.state()
        record = state.active_token(token_id, utc_timestamp())
        if record is None:
            raise AuthenticationFailed(
                "session_ended",
                "the session's API token was revoked or has expired",
                unauthenticated("session_ended", {"token_id": token_id}),
            )
        principal = Principal(record.principal, "user", "token", {"token_id": token_id})
        return Caller(principal, state.roles_of(record.principal), "token", token_id)

    async def authenticate_bearer(self, value: str) -> Caller:
        """An `mcpn_` API token, else an OIDC access token if an issuer is configured."""
        if value.startswith(TOKEN_PREFIX) or self.oidc is None:
            return self.authenticate_token(value)
        try:
            principal = await self.oidc.verify(value)
        except TokenRejected as exc:
            details = {"claimed": exc.claimed} if exc.claimed else None
            raise AuthenticationFailed(
                exc.reason, str(exc), unauthenticated(exc.reason, details)
            ) from exc
        return Caller(principal, self.state().roles_of(principal.id), "oidc")

    def _secret_ok(self, record: TokenRecord, value: str) -> bool:
        digest = token_digest(value)
        cached = self._verified.get(digest)
        if cached is not None and cached[0] == record.token_id and cached[1] > time.monotonic():
            return True
        if not verify_secret(record.secret_hash, value):
            return False
        self._verified[digest] = (record.token_id, time.monotonic() + _CACHE_TTL_S)
        self._verified.move_to_end(digest)
        while len(self._verified) > _CACHE_SIZE:
            self._verified.popitem(last=False)
        return True

    # -- what they may do --------------------------------------------------------------------------

    def authorize(self, caller: Caller, action: Action) -> Decision:
        if caller.local_owner:
            return Decision(True, "local store owner: no role is granted to anyone yet")
        if caller.bootstrap and action in _MANAGE:
            return Decision(True, "local store owner: no admin is granted yet")
        return decide(caller.roles, action)

    def record(
        self,
        caller: Caller | Principal,
        action: Action,
        decision: Decision | bool,
        interface: Interface,
        *,
        query: dict[str, object] | None = None,
        returned: int | None = None,
        purpose: str | None = None,
        basis: str | None = None,
    ) -> str:
        """Append the `audit_access` event for one attempt; returns its event id."""
        principal = caller.principal if isinstance(caller, Caller) else caller
        roles = caller.roles if isinstance(caller, Caller) else frozenset()
        allowed = decision.allowed if isinstance(decision, Decision) else decision
        row = self.auditor.record(
            AccessRecord(
                principal=principal,
                action=action,
                allowed=allowed,
                interface=interface,
                basis=basis or (decision.basis if isinstance(decision, Decision) else ""),
                query=dict(query or {}),
                returned=returned,
                purpose=purpose,
                roles=roles,
            )
        )
        return row.event_id

    def require(
        self,
        caller: Caller,
        action: Action,
        interface: Interface,
        *,
        query: dict[str, object] | None = None,
        purpose: str | None = None,
    ) -> Decision:
        """The decision if allowed; if not, record the refusal and raise `AccessDenied`."""
        decision = self.authorize(caller, action)
        if not decision.allowed:
            self.record(caller, action, decision, interface, query=query, purpose=purpose)
            raise AccessDenied(f"{caller.principal.id} may not {action}: {decision.basis}")
        return decision

    # -- changes to who may read -------------------------------------------------------------------

    def grant(
        self, actor: Caller, principal: str, role: str, interface: Interface, purpose: str | None
    ) -> GrantChange:
        return self._change_role(actor, principal, role, "grant", interface, purpose)

    def revoke(
        self, actor: Caller, principal: str, role: str, interface: Interface, purpose: str | None
    ) -> GrantChange:
        return self._change_role(actor, principal, role, "revoke", interface, purpose)

    def _change_role(
        self,
        actor: Caller,
        principal: str,
        role: str,
        action: Action,
        interface: Interface,
        purpose: str | None,
    ) -> GrantChange:
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
        if not principal.strip():
            raise ConfigError("principal id is empty")
        query: dict[str, object] = {"principal": principal, "role": role}
        self.require(actor, action, interface, query=query, purpose=purpose)
        event_id = self.record(
            actor, action, self.authorize(actor, action), interface, query=query, purpose=purpose
        )
        change = GrantChange(
            principal,
            role,  # checked against ROLES above
            "grant" if action == "grant" else "revoke",
            utc_timestamp(),
            actor.principal.id,
            event_id,
        )
        self.store.append_grant_change(change)
        return change

    def create_token(
        self,
        actor: Caller,
        principal: str,
        name: str,
        expires_at: str | None,
        interface: Interface,
        purpose: str | None = None,
    ) -> tuple[IssuedToken, TokenRecord]:
        """Issue a token for `principal`. The value is returned once and never stored."""
        if not principal.strip():
            raise ConfigError("principal id is empty")
        issued = new_token()
        query: dict[str, object] = {
            "principal": principal,
            "token_id": issued.token_id,
            "name": name,
            "expires_at": expires_at,
        }
        self.require(actor, "token_create", interface, query=query, purpose=purpose)
        decision = self.authorize(actor, "token_create")
        event_id = self.record(actor, "token_create", decision, interface, query=query,
                               purpose=purpose)  # fmt: skip
        record = TokenRecord(
            issued.token_id,
            principal,
            name,
            hash_secret(issued.value),
            utc_timestamp(),
            expires_at,
            actor.principal.id,
            event_id,
        )
        self.store.add_token(record)
        return issued, record

    def revoke_token(
        self, actor: Caller, token_id: str, interface: Interface, purpose: str | None = None
    ) -> TokenRevocation:
        state = self.state()
        record = state.tokens.get(token_id)
        query: dict[str, object] = {"token_id": token_id}
        if record is not None:
            query["principal"] = record.principal
        self.require(actor, "token_revoke", interface, query=query, purpose=purpose)
        if record is None:
            raise ConfigError(f"no API token {token_id}")
        decision = self.authorize(actor, "token_revoke")
        event_id = self.record(actor, "token_revoke", decision, interface, query=query,
                               purpose=purpose)  # fmt: skip
        revocation = TokenRevocation(token_id, utc_timestamp(), actor.principal.id, event_id)
        self.store.add_revocation(revocation)
        self._verified.clear()
        return revocation
