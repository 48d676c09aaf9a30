"""Bad input and failures at the proxy: malformed and oversized bodies, a slow client, the
upstream down or resetting mid-stream, a client hanging up. The client gets what the upstream
would have given it (or a clear 502), the proxy stays up, and the store says what happened."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from e2e_notary import Notary
from http_events import Event, calls, http, wait_events
from http_fake_upstream import fake_upstream
from http_procs import Running, free_port, mcpserver_argv, proxy_argv, running
from http_raw import call_body, call_headers, post_call

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Running]:
    port = free_port()
    with running(mcpserver_argv(port), port) as server:
        yield server


@pytest.fixture
def proxy(upstream: Running, notary: Notary, tmp_path: Path) -> Iterator[tuple[Running, Path]]:
    store = tmp_path / "audit.db"
    port = free_port()
    options = ("--max-audited-body", "65536", "--body-timeout", "1")
    with running(proxy_argv(notary.argv, upstream.url, port, store, *options), port) as running_:
        yield running_, store


def _post(url: str, body: bytes, tool: str = "echo") -> httpx2.Response:
    return httpx2.post(url, content=body, headers=call_headers(tool), timeout=15, trust_env=False)


def _phases(events: list[Event]) -> list[str]:
    return [e["details"]["phase"] for e in events if e["kind"] == "lifecycle"]


def _anomalies(events: list[Event]) -> list[Event]:
    return [e for e in events if e["kind"] == "anomaly"]


def test_malformed_and_oversized_bodies_answered_like_upstream(
    upstream: Running, proxy: tuple[Running, Path], notary: Notary
) -> None:
    via, store = proxy
    bodies = {
        "invalid_json": b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {',
        "not_jsonrpc": b'{"hello": "world"}',
        "oversized": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo",'
        b'"arguments":{"text":"' + b"A" * (5 * 1024 * 1024) + b'"}}}',
    }
    for problem, body in bodies.items():
        direct = _post(upstream.url, body)
        proxied = _post(via.url, body)
        assert proxied.status_code == direct.status_code, problem
        assert proxied.content == direct.content, problem
    assert post_call(via.url, "echo", {"text": "still up"}).text() == "still up"
    events = wait_events(
        notary, store, lambda evs: len(_anomalies(evs)) >= 3 and len(calls(evs)) >= 1
    )
    problems = {e["details"]["problem"]: e for e in _anomalies(events)}
    assert set(problems) >= set(bodies)
    assert problems["oversized"]["details"]["request_bytes"] > 5 * 1024 * 1024
    assert (
        http(problems["invalid_json"])["status"]
        == _post(upstream.url, bodies["invalid_json"]).status_code
    )
    assert calls(events)[-1]["outcome"] == "success"


def test_slow_client_gets_408_and_others_are_served(
    proxy: tuple[Running, Path], notary: Notary
) -> None:
    via, store = proxy
    with socket.create_connection(("127.0.0.1", via.port), timeout=10) as slow:
        slow.sendall(
            b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b'content-length: 500\r\n\r\n{"jsonrpc":'
        )
        # while it dawdles, another client is served normally
        assert post_call(via.url, "echo", {"text": "fast"}).text() == "fast"
        slow.settimeout(10)
        answer = slow.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408")
    events = wait_events(notary, store, lambda evs: bool(_anomalies(evs)))
    assert _anomalies(events)[0]["details"]["problem"] == "slow_body"


def test_upstream_down_gives_clear_502(notary: Notary, tmp_path: Path) -> None:
    store = tmp_path / "audit.db"
    port, dead = free_port(), free_port()
    argv = proxy_argv(notary.argv, f"http://127.0.0.1:{dead}/mcp", port, store)
    with running(argv, port) as via:
        reply = post_call(via.url, "echo", {"text": "x"})
        again = post_call(via.url, "echo", {"text": "y"})  # the proxy stays up
        wait_events(notary, store, lambda evs: len(calls(evs)) >= 2)
    # stopped by SIGTERM: the stop is recorded, so the stream did not end uncleanly
    events = wait_events(notary, store, lambda evs: _phases(evs)[-1:] == ["stopped"])
    assert _phases(events) == ["started", "stopped"]
    assert reply.status == again.status == 502
    message = reply.message()
    assert message is not None and message["id"] == 1 and message["error"]["code"] == -32000
    assert "upstream unavailable" in message["error"]["message"]
    for event in calls(events):
        assert event["outcome"] == "transport_error"
        assert http(event)["status"] == 502
        assert http(event)["error"].startswith("upstream: Connect")


def test_upstream_reset_mid_stream(notary: Notary, tmp_path: Path) -> None:
    store = tmp_path / "audit.db"
    port = free_port()
    with (
        fake_upstream() as fake,
        running(proxy_argv(notary.argv, fake.url, port, store), port) as via,
    ):
        received = b""
        # the client sees the break, as it would directly
        with pytest.raises(httpx2.HTTPError), httpx2.stream(
            "POST", via.url, content=_json(call_body("reset", {})),
            headers=call_headers("reset"), timeout=10, trust_env=False,
        ) as response:  # fmt: skip
            assert response.status_code == 200
            for chunk in response.iter_raw():
                received += chunk
        # what arrived before the break was passed on byte for byte
        assert received.startswith(b": keep-alive\r\n\r\nid: ev-1\r\nretry: 250\r\n")
        ok = post_call(via.url, "fine", {})
        assert ok.status == 200 and ok.message() is not None  # the proxy stays up
        events = wait_events(notary, store, lambda evs: len(calls(evs)) >= 2)
    reset, fine = calls(events)[:2]
    assert reset["tool"] == "reset" and reset["outcome"] == "transport_error"
    assert http(reset)["error"].startswith("upstream_reset")
    progress = [e for e in events if e["method"] == "notifications/progress"]
    assert progress and progress[0]["parent_event_id"] in (None, reset["event_id"])
    assert fine["outcome"] == "success"


def test_client_disconnect_is_propagated_upstream(notary: Notary, tmp_path: Path) -> None:
    """In 2026-07-28 closing a request's stream is its cancellation: the proxy must hang up on
    the upstream too, and record the call as cancelled."""
    store = tmp_path / "audit.db"
    port = free_port()
    with (
        fake_upstream() as fake,
        running(proxy_argv(notary.argv, fake.url, port, store), port) as via,
    ):
        with httpx2.stream(
            "POST", via.url, content=_json(call_body("hold", {})),
            headers=call_headers("hold"), timeout=10, trust_env=False,
        ) as response:  # fmt: skip
            first = next(response.iter_raw())
            assert first
        assert fake.peer_closed.wait(10), "the upstream never saw the client leave"
        events = wait_events(notary, store, lambda evs: len(calls(evs)) >= 1)
    held = calls(events)[0]
    assert held["outcome"] == "cancelled"
    assert http(held)["error"] == "client_disconnected"


def _json(body: object) -> bytes:
    return json.dumps(body).encode()
