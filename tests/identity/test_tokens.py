"""Bearer-token validation against a real (loopback) test issuer: JWT with JWKS caching,
rotation and clock skew; RFC 7662 introspection; the require/observe decision."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import anyio
import httpx2
import jwt
import pytest
from http_issuer import INTROSPECTION_CLIENT, Issuer, new_key, running_issuer

from mcp_notary.identity.bearer import BearerAuthenticator
from mcp_notary.identity.principal import Principal
from mcp_notary.identity.tokens import IntrospectionVerifier, JWTVerifier, TokenRejected

pytestmark = pytest.mark.timeout(60)
AUD = "http://127.0.0.1:9/mcp"
T = TypeVar("T")


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with running_issuer() as running:
        yield running


def run(make: Callable[[httpx2.AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with httpx2.AsyncClient(timeout=5, trust_env=False) as http:
            return await make(http)

    return anyio.run(main)


def verify(issuer: Issuer, token: str, **options: Any) -> Principal:
    async def go(http: httpx2.AsyncClient) -> Principal:
        return await JWTVerifier(issuer.url, AUD, http, **options).verify(token)

    return run(go)


def rejected(issuer: Issuer, token: str, **options: Any) -> TokenRejected:
    with pytest.raises(TokenRejected) as info:
        verify(issuer, token, **options)
    return info.value


def test_valid_token_gives_issuer_qualified_principal(issuer: Issuer) -> None:
    act = {"sub": "agent-7", "act": {"sub": "orchestrator"}}
    principal = verify(issuer, issuer.mint(issuer.claims(AUD, act=act)))
    assert principal.id == f"{issuer.url}#alice"
    assert principal.type == "user" and principal.source == "token"
    assert principal.details == {
        "client_id": "inspector",
        "scopes": ["mcp:tools", "mcp:read"],
        "act": act,
        "aud": AUD,
    }
    assert issuer.jwks_fetches == 1  # discovered through RFC 8414 metadata, fetched once


def test_client_credentials_token_is_a_service(issuer: Issuer) -> None:
    token = issuer.mint(issuer.claims(AUD, sub="svc-backup", client_id="svc-backup"))
    assert verify(issuer, token).type == "service"


def test_expired_beyond_leeway_is_refused_within_leeway_accepted(issuer: Issuer) -> None:
    now = int(time.time())
    late = issuer.mint(issuer.claims(AUD, exp=now - 30))
    assert verify(issuer, late, leeway=60).id.endswith("#alice")  # clock skew tolerated
    error = rejected(issuer, late, leeway=5)
    assert error.reason == "expired"
    assert error.claimed is not None and error.claimed["sub"] == "alice"


def test_not_yet_valid(issuer: Issuer) -> None:
    token = issuer.mint(issuer.claims(AUD, nbf=int(time.time()) + 600))
    assert rejected(issuer, token).reason == "not_yet_valid"


def test_wrong_audience_and_wrong_issuer(issuer: Issuer) -> None:
    other = issuer.mint(issuer.claims("https://other.example/mcp"))
    error = rejected(issuer, other)
    assert error.reason == "wrong_audience"
    assert error.claimed is not None and error.claimed["aud"] == "https://other.example/mcp"
    foreign = issuer.mint(issuer.claims(AUD, iss="https://evil.example"))
    assert rejected(issuer, foreign, jwks_url=issuer.url + "/jwks").reason == "wrong_issuer"


def test_wrong_signature_and_forgeries(issuer: Issuer) -> None:
    forged = issuer.mint(issuer.claims(AUD), kid="k1", key=new_key())
    error = rejected(issuer, forged)
    assert error.reason == "bad_signature" and error.claimed is None
    claims = issuer.claims(AUD)
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})
    assert rejected(issuer, unsigned).reason == "bad_algorithm"
    confused = jwt.encode(
        claims, "k1-public-key-used-as-an-hmac-secret", algorithm="HS256", headers={"kid": "k1"}
    )
    assert rejected(issuer, confused).reason == "bad_algorithm"  # no algorithm confusion
    assert rejected(issuer, "not-a-jwt").reason == "malformed"


def test_missing_required_claims(issuer: Issuer) -> None:
    token = issuer.mint(issuer.claims(AUD, sub=None))
    assert rejected(issuer, token).reason == "missing_claim"


def test_key_rotation_refetches_once_then_caches(issuer: Issuer) -> None:
    async def scenario(http: httpx2.AsyncClient) -> list[str]:
        verifier = JWTVerifier(
            issuer.url, AUD, http, jwks_url=issuer.url + "/jwks", jwks_min_refresh=0.3
        )
        seen = [(await verifier.verify(issuer.mint(issuer.claims(AUD)))).id]
        await anyio.sleep(0.4)
        new_kid = issuer.add_key("k2")  # the issuer rotates
        rotated = issuer.mint(issuer.claims(AUD, sub="bob"), kid=new_kid)
        seen.append((await verifier.verify(rotated)).id)
        seen.append((await verifier.verify(rotated)).id)
        await anyio.sleep(0.4)
        bogus = issuer.mint(issuer.claims(AUD), kid="k9", key=new_key())
        for _ in range(3):  # unknown kids do not cause a fetch storm: one refetch, no more
            with pytest.raises(TokenRejected) as info:
                await verifier.verify(bogus)
            assert info.value.reason == "unknown_key"
        return seen

    ids = run(scenario)
    assert [i.rsplit("#", 1)[1] for i in ids] == ["alice", "bob", "bob"]
    assert issuer.jwks_fetches == 3  # initial, one for the new kid, one for the bogus kid


def test_issuer_down_keeps_cached_keys(issuer: Issuer) -> None:
    async def scenario(http: httpx2.AsyncClient) -> str:
        verifier = JWTVerifier(issuer.url, AUD, http, jwks_url=issuer.url + "/jwks")
        token = issuer.mint(issuer.claims(AUD))
        await verifier.verify(token)
        assert verifier._jwks is not None
        verifier._jwks.url = "http://127.0.0.1:9/jwks"  # nothing listens there
        verifier._jwks._fetched_at = float("-inf")  # force a refresh attempt
        return (await verifier.verify(token)).id

    assert run(scenario).endswith("#alice")


def test_unreachable_issuer_without_keys_is_a_clear_rejection() -> None:
    async def scenario(http: httpx2.AsyncClient) -> TokenRejected:
        verifier = JWTVerifier("http://127.0.0.1:9", AUD, http)
        with pytest.raises(TokenRejected) as info:
            await verifier.verify(Issuer(url="x", keys={"k1": new_key()}).mint({"sub": "a"}))
        return info.value

    assert run(scenario).reason == "issuer_unreachable"


def test_introspection(issuer: Issuer) -> None:
    now = int(time.time())
    issuer.add_opaque(
        "opaque-good",
        {"active": True, "sub": "carol", "client_id": "cli", "scope": "a b", "aud": AUD,
         "iss": issuer.url, "exp": now + 100},
    )  # fmt: skip
    issuer.add_opaque("opaque-other-aud", {"active": True, "sub": "dan", "aud": "https://x"})

    async def scenario(http: httpx2.AsyncClient) -> list[Any]:
        verifier = IntrospectionVerifier(
            issuer.url + "/introspect",
            http,
            client_id=INTROSPECTION_CLIENT[0],
            client_secret=INTROSPECTION_CLIENT[1],
            audience=AUD,
            issuer=issuer.url,
        )
        out: list[Any] = [
            await verifier.verify("opaque-good"),
            await verifier.verify("opaque-good"),
        ]
        for token in ("opaque-other-aud", "unknown-token"):
            with pytest.raises(TokenRejected) as info:
                await verifier.verify(token)
            out.append(info.value.reason)
        assert "rs-secret" not in repr(verifier)
        return out

    good, again, wrong_aud, inactive = run(scenario)
    assert good == again and good.id == f"{issuer.url}#carol"
    assert good.details["scopes"] == ["a", "b"]
    assert (wrong_aud, inactive) == ("wrong_audience", "inactive")
    assert issuer.introspections == 3  # the second "opaque-good" came from the cache


@pytest.mark.parametrize("mode", ["require", "observe"])
def test_decisions_and_challenges(issuer: Issuer, mode: str) -> None:
    async def scenario(http: httpx2.AsyncClient) -> dict[str, Any]:
        auth = BearerAuthenticator(
            JWTVerifier(issuer.url, AUD, http),
            mode,
            scope="mcp:tools",
        )
        expired = issuer.mint(issuer.claims(AUD, exp=int(time.time()) - 3600))
        return {
            "valid": await auth.decide("Bearer " + issuer.mint(issuer.claims(AUD))),
            "missing": await auth.decide(None),
            "basic": await auth.decide("Basic dXNlcjpwdw=="),
            "expired": await auth.decide("bearer " + expired),
            "auth": auth,
        }

    out = run(scenario)
    auth = out.pop("auth")
    assert out["valid"].allowed and out["valid"].token_valid
    for name in ("missing", "basic", "expired"):
        decision = out[name]
        assert decision.allowed == (mode == "observe")
        assert not decision.token_valid
        assert decision.principal.type == "unauthenticated"
        assert decision.principal.details["reason"] == {
            "missing": "missing", "basic": "not_bearer", "expired": "expired"
        }[name]  # fmt: skip
    bare = auth.challenge(out["missing"], "http://h/.well-known/oauth-protected-resource/mcp")
    assert bare == (
        'Bearer resource_metadata="http://h/.well-known/oauth-protected-resource/mcp", '
        'scope="mcp:tools"'
    )
    invalid = auth.challenge(out["expired"], "http://h/x")
    assert 'error="invalid_token"' in invalid and "error_description=" in invalid
