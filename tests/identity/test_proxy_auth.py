"""Bearer tokens at the proxy, end to end: a test issuer on loopback (keys generated here), a
real `MCPServer` upstream, `mcp-notary proxy --auth require|observe`, and the official Python
client. Valid, expired, wrong-audience, wrong-signature and missing tokens are each recorded
correctly; `require` refuses all but the valid one with 401 and an RFC 9728 challenge; a token
not minted for this resource never reaches the upstream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from e2e_notary import Notary
from http_events import Event, calls, store_bytes, wait_events
from http_issuer import Issuer, new_key, running_issuer
from http_procs import Running, free_port, mcpserver_argv, proxy_argv, running
from http_raw import post_call
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer() as running_one:
        yield running_one


@pytest.fixture(scope="module")
def upstream() -> Iterator[Running]:
    port = free_port()
    with running(mcpserver_argv(port), port) as server:
        yield server


def _tokens(issuer: Issuer, audience: str) -> dict[str, str | None]:
    now = int(time.time())
    return {
        "valid": issuer.mint(issuer.claims(audience)),
        "expired": issuer.mint(issuer.claims(audience, exp=now - 3600)),
        "wrong_audience": issuer.mint(issuer.claims("https://elsewhere.example/mcp")),
        "bad_signature": issuer.mint(issuer.claims(audience), key=new_key()),
        "missing": None,
    }


def _auth_proxy(
    notary: Notary, issuer: Issuer, upstream: Running, store: Path, mode: str, *extra: str
) -> tuple[list[str], int, str]:
    port = free_port()
    audience = f"http://127.0.0.1:{port}/mcp"  # the canonical URL clients connect to
    argv = proxy_argv(
        notary.argv, upstream.url, port, store,
        "--auth", mode, "--issuer", issuer.url, "--audience", audience, *extra,
    )  # fmt: skip
    return argv, port, audience


async def _client_calls(url: str, token: str) -> list[str]:
    headers = {"authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=15, trust_env=False) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        echo = await client.call_tool("echo", {"text": "through"})
        seen = await client.call_tool("seen_authorization", {})
        return [echo.content[0].text, seen.content[0].text]  # type: ignore[union-attr]


def _auth_events(events: list[Event]) -> list[Event]:
    return [e for e in events if e["kind"] == "auth"]


def test_require_mode(issuer: Issuer, upstream: Running, notary: Notary, tmp_path: Path) -> None:
    store = tmp_path / "audit.db"
    argv, port, audience = _auth_proxy(notary, issuer, upstream, store, "require")
    tokens = _tokens(issuer, audience)
    with running(argv, port) as proxy:
        valid = tokens["valid"]
        assert valid is not None
        echoed, seen = anyio.run(_client_calls, proxy.url, valid)
        assert echoed == "through"
        assert seen == f"Bearer {valid}"  # deployment (a): proxy at the canonical URL
        replies: dict[str, Any] = {}
        for name, token in tokens.items():
            if name != "valid":
                replies[name] = post_call(proxy.url, "echo", {"text": "x"}, token=token)
        events = wait_events(notary, store, lambda evs: len(_auth_events(evs)) >= 4)

    for name, reply in replies.items():
        assert reply.status == 401, name
        challenge = reply.headers["www-authenticate"]
        assert challenge.startswith('Bearer resource_metadata="http://127.0.0.1:')
        assert "/.well-known/oauth-protected-resource/mcp" in challenge
        assert ('error="invalid_token"' in challenge) == (name != "missing"), challenge
    denied = {e["principal"]["details"]["reason"]: e for e in _auth_events(events)}
    assert set(denied) == {"expired", "wrong_audience", "bad_signature", "missing"}
    for event in denied.values():
        assert event["outcome"] == "denied"
        assert event["principal"]["type"] == "unauthenticated"
        assert event["method"] == "tools/call" and event["tool"] == "echo"
        assert event["details"]["http"]["status"] == 401
        assert event["arguments"] is None  # a refused request's body is never stored
    # a rejected token whose signature verified still tells who it claimed to be
    assert denied["expired"]["principal"]["details"]["claimed"]["sub"] == "alice"
    assert "claimed" not in denied["bad_signature"]["principal"]["details"]
    tool_calls = calls(events)
    assert [e["tool"] for e in tool_calls] == ["echo", "seen_authorization"]
    for event in tool_calls:
        assert event["principal"]["id"] == f"{issuer.url}#alice"
        assert event["principal"]["source"] == "token"
        assert event["principal"]["details"]["client_id"] == "inspector"
        assert event["principal"]["details"]["scopes"] == ["mcp:tools", "mcp:read"]
    stored = store_bytes(store)
    for token in tokens.values():
        if token:
            assert token.encode() not in stored
            assert token.split(".")[2].encode() not in stored  # not even the signature


def test_observe_mode(issuer: Issuer, upstream: Running, notary: Notary, tmp_path: Path) -> None:
    store = tmp_path / "audit.db"
    argv, port, audience = _auth_proxy(notary, issuer, upstream, store, "observe")
    tokens = _tokens(issuer, audience)
    with running(argv, port) as proxy:
        seen = {
            name: post_call(proxy.url, "seen_authorization", {}, token=token)
            for name, token in tokens.items()
        }
        events = wait_events(notary, store, lambda evs: len(calls(evs)) >= 5)

    for name, reply in seen.items():
        assert reply.status == 200, name
        # only a token minted for this resource is passed on; the others are withheld
        expected = f"Bearer {tokens['valid']}" if name == "valid" else "<none>"
        assert reply.text() == expected, name
    principals = [e["principal"] for e in calls(events)]
    assert principals[0]["id"] == f"{issuer.url}#alice"
    assert [p["details"]["reason"] for p in principals[1:]] == [
        "expired", "wrong_audience", "bad_signature", "missing"
    ]  # fmt: skip
    assert all(p["type"] == "unauthenticated" for p in principals[1:])
    assert not _auth_events(events)


def test_separate_upstream_credential(
    issuer: Issuer, upstream: Running, notary: Notary, tmp_path: Path
) -> None:
    """Deployment (b): the client's token is validated and replaced by the proxy's own
    credential for the upstream; the client's token never goes further."""
    store = tmp_path / "audit.db"
    argv, port, audience = _auth_proxy(
        notary, issuer, upstream, store, "require", "--upstream-token-env", "UPSTREAM_TOKEN"
    )
    valid = _tokens(issuer, audience)["valid"]
    with running(argv, port, env={"UPSTREAM_TOKEN": "upstream-only-credential"}) as proxy:
        reply = post_call(proxy.url, "seen_authorization", {}, token=valid)
    assert reply.status == 200
    assert reply.text() == "Bearer upstream-only-credential"
    assert b"upstream-only-credential" not in store_bytes(store)


def test_well_known_metadata_needs_no_token(
    issuer: Issuer, upstream: Running, notary: Notary, tmp_path: Path
) -> None:
    """RFC 9728 metadata is fetched before a client has a token: it passes through (here the
    upstream has none, so its own 404 comes back, not our 401)."""
    store = tmp_path / "audit.db"
    argv, port, _ = _auth_proxy(notary, issuer, upstream, store, "require")
    with running(argv, port) as proxy:
        url = proxy.origin + "/.well-known/oauth-protected-resource/mcp"
        through = httpx2.get(url, trust_env=False, timeout=10)
        direct = httpx2.get(upstream.origin + "/.well-known/oauth-protected-resource/mcp")
    assert through.status_code == direct.status_code != 401
    assert through.content == direct.content
