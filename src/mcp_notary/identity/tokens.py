"""Bearer tokens: who a remote caller is, from a token an authorization server signed.

Two ways to validate, both standard and neither hand-written crypto:
- JWT access tokens (RFC 9068) checked by PyJWT against the issuer's JWKS, which is fetched,
  cached, refreshed on an unknown `kid` (key rotation) and kept when a refresh fails;
- opaque tokens asked about at the issuer's RFC 7662 introspection endpoint.

The principal is `iss` + `sub` (a `sub` is unique only per issuer), with `client_id`/`azp`, the
`act` delegation chain, scopes and audience as details. A token is never stored or printed.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx2
import jwt

from mcp_notary.errors import NotaryError
from mcp_notary.identity.principal import Principal

DEFAULT_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "EdDSA",
)
DEFAULT_LEEWAY_S = 60.0
JWKS_TTL_S = 300.0
JWKS_MIN_REFRESH_S = 10.0  # an unknown kid refetches at most this often (no fetch storms)
INTROSPECTION_CACHE_S = 30.0
INTROSPECTION_CACHE_SIZE = 10_000

Reason = Literal[
    "missing",
    "not_bearer",
    "malformed",
    "bad_signature",
    "unknown_key",
    "bad_algorithm",
    "expired",
    "not_yet_valid",
    "wrong_audience",
    "wrong_issuer",
    "missing_claim",
    "inactive",
    "issuer_unreachable",
]


class TokenRejected(NotaryError):
    """A token did not validate. `reason` is a stable code; `claimed` holds the `iss`/`sub` of
    a token whose signature verified but whose claims did not (useful evidence, not identity)."""

    def __init__(self, reason: Reason, message: str, claimed: dict[str, Any] | None = None):
        super().__init__(message)
        self.reason: Reason = reason
        self.claimed = claimed


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Principal:
        """The principal the token stands for; raises `TokenRejected`."""


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """`iss#sub`, typed `service` when the subject is the client itself (client credentials)."""
    issuer = str(claims.get("iss") or "")
    subject = str(claims.get("sub") or "")
    client_id = claims.get("client_id") or claims.get("azp")
    scope = claims.get("scope")
    scopes = scope.split() if isinstance(scope, str) else claims.get("scp")
    details: dict[str, Any] = {
        "client_id": client_id,
        "scopes": scopes if isinstance(scopes, list) else None,
        "act": claims.get("act"),
        "aud": claims.get("aud"),
    }
    kind: Literal["user", "service"] = (
        "service" if client_id is not None and client_id == subject else "user"
    )
    return Principal(
        id=f"{issuer}#{subject}",
        type=kind,
        source="token",
        details={k: v for k, v in details.items() if v is not None},
    )


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- JWT / JWKS ---------------------------------------------------------------------------------


@dataclass
class JWKSCache:
    """The issuer's signing keys. Refetched when stale or when a token names an unknown `kid`,
    at most every `min_refresh` seconds; a failed refetch keeps the keys already known."""

    url: str
    http: httpx2.AsyncClient
    ttl: float = JWKS_TTL_S
    min_refresh: float = JWKS_MIN_REFRESH_S
    _keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    _fetched_at: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def key(self, kid: str | None) -> jwt.PyJWK:
        now = time.monotonic()
        if now - self._fetched_at > self.ttl or (
            kid not in self._keys and now - self._fetched_at > self.min_refresh
        ):
            await self._refresh(now)
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        found = self._keys.get(kid or "")
        if found is None:
            raise TokenRejected("unknown_key", f"no key {kid!r} in the issuer's JWKS")
        return found

    async def _refresh(self, now: float) -> None:
        async with self._lock:
            if self._fetched_at >= now:  # another task refreshed while we waited
                return
            try:
                response = await self.http.get(self.url, headers={"accept": "application/json"})
                response.raise_for_status()
                keyset = jwt.PyJWKSet.from_dict(response.json())
            except (httpx2.HTTPError, ValueError, jwt.PyJWTError) as exc:
                self._fetched_at = time.monotonic()
                if not self._keys:
                    raise TokenRejected(
                        "issuer_unreachable", f"cannot fetch JWKS {self.url}: {exc}"
                    ) from exc
                return  # keep the keys we have
            self._keys = {k.key_id or "": k for k in keyset.keys}
            self._fetched_at = time.monotonic()


_CLAIM_ERRORS: tuple[tuple[type[Exception], Reason], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
)


class JWTVerifier:
    """Validates RFC 9068 JWT access tokens: signature (JWKS), `iss`, `aud`, `exp`/`nbf` with
    `leeway` seconds of clock skew."""

    def __init__(
        self,
        issuer: str,
        audience: str | Sequence[str],
        http: httpx2.AsyncClient,
        *,
        jwks_url: str | None = None,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        leeway: float = DEFAULT_LEEWAY_S,
        jwks_min_refresh: float = JWKS_MIN_REFRESH_S,
    ) -> None:
        self.issuer = issuer
        self.audience = [audience] if isinstance(audience, str) else list(audience)
        self.algorithms = list(algorithms)
        self.leeway = leeway
        self.http = http
        self.jwks_min_refresh = jwks_min_refresh
        self._jwks = JWKSCache(jwks_url, http, min_refresh=jwks_min_refresh) if jwks_url else None

    async def _keys(self) -> JWKSCache:
        if self._jwks is None:
            url = await discover_jwks_url(self.issuer, self.http)
            self._jwks = JWKSCache(url, self.http, min_refresh=self.jwks_min_refresh)
        return self._jwks

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise TokenRejected("malformed", "not a JWT") from exc
        if header.get("alg") not in self.algorithms:
            raise TokenRejected("bad_algorithm", f"algorithm {header.get('alg')!r} not allowed")
        key = await (await self._keys()).key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "sub", "aud"]},
            )
        except jwt.InvalidSignatureError as exc:
            raise TokenRejected("bad_signature", "signature does not verify") from exc
        except jwt.PyJWTError as exc:
            for kind, reason in _CLAIM_ERRORS:
                if isinstance(exc, kind):
                    # PyJWT checks claims only after the signature verified, so these are the
                    # issuer's words about a token that is no good here: worth keeping.
                    raise TokenRejected(reason, str(exc), _claimed(token)) from exc
            raise TokenRejected("malformed", str(exc)) from exc
        return principal_from_claims(claims)


def _claimed(token: str) -> dict[str, Any]:
    claims = jwt.decode(token, options={"verify_signature": False})
    return {k: claims[k] for k in ("iss", "sub", "aud", "exp") if k in claims}


async def discover_jwks_url(issuer: str, http: httpx2.AsyncClient) -> str:
    """RFC 8414 / OpenID Connect discovery of `jwks_uri`."""
    base = issuer.rstrip("/")
    for suffix in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        try:
            response = await http.get(base + suffix)
            if response.status_code == 200:
                url = response.json().get("jwks_uri")
                if isinstance(url, str):
                    return url
        except (httpx2.HTTPError, ValueError):
            continue
    raise TokenRejected("issuer_unreachable", f"no jwks_uri in {issuer}'s metadata")


# -- RFC 7662 introspection ---------------------------------------------------------------------


class IntrospectionVerifier:
    """Asks the authorization server about opaque tokens (RFC 7662), authenticating as a
    resource server with client credentials. Answers are cached briefly by token digest, never
    past the token's own `exp`."""

    def __init__(
        self,
        url: str,
        http: httpx2.AsyncClient,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        audience: str | Sequence[str] | None = None,
        issuer: str | None = None,
        cache_seconds: float = INTROSPECTION_CACHE_S,
    ) -> None:
        self.url = url
        self.http = http
        self._auth: tuple[str | bytes, str | bytes] | None = (
            (client_id, client_secret or "") if client_id else None
        )
        self.audience = [audience] if isinstance(audience, str) else list(audience or [])
        self.issuer = issuer
        self.cache_seconds = cache_seconds
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def __repr__(self) -> str:  # the client secret never shows up in a log or traceback
        return f"IntrospectionVerifier(url={self.url!r})"

    async def verify(self, token: str) -> Principal:
        digest = token_digest(token)
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > time.time():
            return hit[1]
        try:
            response = await self.http.post(
                self.url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._auth if self._auth is not None else httpx2.USE_CLIENT_DEFAULT,
                headers={"accept": "application/json"},
            )
            response.raise_for_status()
            body = response.json()
        except (httpx2.HTTPError, ValueError) as exc:
            raise TokenRejected("issuer_unreachable", f"introspection failed: {exc}") from exc
        if not isinstance(body, dict) or body.get("active") is not True:
            raise TokenRejected("inactive", "the authorization server says the token is inactive")
        self._check_claims(body)
        principal = principal_from_claims(
            {**body, "iss": body.get("iss") or self.issuer or self.url}
        )
        expires = min(time.time() + self.cache_seconds, float(body.get("exp") or "inf"))
        self._cache[digest] = (expires, principal)
        while len(self._cache) > INTROSPECTION_CACHE_SIZE:
            self._cache.popitem(last=False)
        return principal

    def _check_claims(self, body: dict[str, Any]) -> None:
        claimed: dict[str, Any] = {k: body[k] for k in ("iss", "sub", "aud", "exp") if k in body}
        if self.issuer and body.get("iss") not in (None, self.issuer):
            raise TokenRejected("wrong_issuer", "issuer does not match", claimed)
        if self.audience:
            aud = body.get("aud")
            auds = aud if isinstance(aud, list) else [aud] if aud is not None else []
            if not set(self.audience) & set(auds):
                raise TokenRejected("wrong_audience", "token was not minted for us", claimed)
        exp = body.get("exp")
        if isinstance(exp, int | float) and exp < time.time() - DEFAULT_LEEWAY_S:
            raise TokenRejected("expired", "token expired", claimed)
