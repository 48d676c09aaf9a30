"""Pairing is pure: feed parsed messages, check what completes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mcp_notary.capture.pairing import Exchange, Pairer, WireMessage, parse_line
from mcp_notary.events.build import CaptureContext, build_draft
from mcp_notary.identity.principal import Principal
from mcp_notary.vocabulary import Direction

C2S: Direction = "client_to_server"
S2C: Direction = "server_to_client"


def msg(direction: Direction, obj: dict[str, Any], at: float = 1.0) -> WireMessage:
    return WireMessage(direction, at, len(json.dumps(obj)), obj=obj)


def request(id_: Any, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        body["params"] = params
    return body


def result(id_: Any, value: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "result": value}


def test_ids_pair_by_type_and_value_including_zero() -> None:
    p = Pairer()
    assert p.feed(msg(C2S, request(0, "tools/list"))) == []
    assert p.feed(msg(C2S, request("0", "tools/list"))) == []
    done = p.feed(msg(S2C, result("0", {"tools": []})))
    assert [e.request.obj["id"] for e in done if e.request and e.request.obj] == ["0"]
    done = p.feed(msg(S2C, result(0, {"tools": []})))
    assert done[0].kind == "call" and done[0].request and done[0].request.obj
    assert done[0].request.obj["id"] == 0
    assert p.open_requests() == 0


def test_response_with_unknown_id_is_an_anomaly() -> None:
    (exchange,) = Pairer().feed(msg(S2C, result(7, {})))
    assert exchange.kind == "anomaly" and exchange.problem == "unmatched_response"


def test_duplicate_id_keeps_the_first_request_on_record() -> None:
    p = Pairer()
    p.feed(msg(C2S, request(1, "tools/list")))
    done = p.feed(msg(C2S, request(1, "prompts/list"), at=3.0))
    assert [e.kind for e in done] == ["anomaly", "call"]
    assert done[1].ended_by == "cancelled" and done[1].ended_at == 3.0


def test_progress_and_cancel_link_to_their_call() -> None:
    p = Pairer()
    p.feed(msg(C2S, request(5, "tools/call", {"name": "x", "_meta": {"progressToken": "tok"}})))
    (call_id,) = [o.event_id for o in p._open.values()]
    (note,) = p.feed(
        msg(S2C, {"jsonrpc": "2.0", "method": "notifications/progress",
                  "params": {"progressToken": "tok", "progress": 1}})
    )
    assert note.kind == "notification" and note.parent_event_id == call_id
    done = p.feed(
        msg(C2S, {"jsonrpc": "2.0", "method": "notifications/cancelled",
                  "params": {"requestId": 5}}, at=4.0)
    )
    assert [e.kind for e in done] == ["notification", "call"]
    assert done[1].event_id == call_id and done[1].ended_by == "cancelled"
    assert done[1].ended_at == 4.0
    assert p.open_requests() == 0


def test_server_request_links_to_the_call_in_flight() -> None:
    p = Pairer()
    p.feed(msg(C2S, request(1, "tools/call", {"name": "sample"})))
    call_id = next(iter(p._open.values())).event_id
    p.feed(msg(S2C, request(0, "sampling/createMessage", {"messages": []})))
    (answered,) = p.feed(msg(C2S, result(0, {"role": "assistant"})))
    assert answered.parent_event_id == call_id
    assert answered.request is not None and answered.request.direction == S2C


def test_mrtr_retry_links_to_the_first_round_by_request_state() -> None:
    p = Pairer()
    p.feed(msg(C2S, request(1, "tools/call", {"name": "t"})))
    (first,) = p.feed(
        msg(S2C, result(1, {"resultType": "input_required", "requestState": "opaque-1",
                            "inputRequests": {}}))
    )
    p.feed(msg(C2S, request(2, "tools/call", {"name": "t", "requestState": "opaque-1",
                                              "inputResponses": {}})))
    (retry,) = p.feed(msg(S2C, result(2, {"resultType": "complete", "content": []})))
    assert retry.parent_event_id == first.event_id


def test_session_facts_from_both_eras() -> None:
    p = Pairer()
    p.feed(msg(C2S, request(0, "initialize", {"clientInfo": {"name": "c", "version": "1"},
                                              "protocolVersion": "2025-11-25"})))
    p.feed(msg(S2C, result(0, {"protocolVersion": "2025-06-18",
                               "serverInfo": {"name": "s", "version": "2"}})))
    assert (p.session.client_name, p.session.server_name) == ("c", "s")
    assert p.session.protocol_version == "2025-06-18"
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "modern", "version": "9"}}
    p.feed(msg(C2S, request(1, "tools/list", {"_meta": meta})))
    (done,) = p.feed(msg(S2C, result(1, {"tools": []})))
    assert done.protocol_version == "2026-07-28"
    assert p.session.client_name == "modern"


def test_close_records_every_open_request() -> None:
    p = Pairer()
    for i in range(3):
        p.feed(msg(C2S, request(i, "tools/call", {"name": "slow"})))
    closed = p.close("transport_error", 9.5)
    assert len(closed) == 3 and all(e.ended_by == "transport_error" for e in closed)
    assert all(e.ended_at == 9.5 for e in closed)  # when the end was seen, not the start
    assert p.open_requests() == 0


def test_an_unanswered_call_lasts_until_its_end_was_seen() -> None:
    """Its event is recorded at the end, after what happened meanwhile: its duration says
    when that was, as a response's arrival does for an answered call."""
    p = Pairer()
    p.feed(msg(C2S, request(1, "tools/call", {"name": "slow"}), at=100.0))
    (closed,) = p.close("cancelled", 104.25)
    context = CaptureContext(Principal("u", "user", "os"), "stdio")
    draft = build_draft(closed, p.session, context)
    assert (draft.outcome, draft.duration_ms) == ("cancelled", 4250.0)
    assert draft.details == {"request_bytes": closed.request.size if closed.request else 0}


def test_parse_line_never_raises() -> None:
    assert parse_line(b"\xff\xfe\n", C2S, 0)[0].problem == "not_utf8"
    assert parse_line(b"{nope\n", C2S, 0)[0].problem == "invalid_json"
    assert parse_line(b"[1, 2]\n", C2S, 0)[0].problem == "not_jsonrpc"
    batch = parse_line(b'[{"jsonrpc":"2.0","id":1,"method":"a"},3]\n', C2S, 0)
    assert [m.problem for m in batch] == [None, "not_jsonrpc"]


@given(st.binary(max_size=200))
def test_any_bytes_become_messages_or_anomalies(data: bytes) -> None:
    p = Pairer()
    for message in parse_line(data, C2S, 0):
        for exchange in p.feed(message):
            assert isinstance(exchange, Exchange)


@given(st.lists(st.one_of(st.integers(), st.text(max_size=5)), unique_by=lambda v: (type(v), v),
                min_size=1, max_size=20))
def test_every_request_is_answered_exactly_once(ids: list[Any]) -> None:
    p = Pairer()
    for i in ids:
        p.feed(msg(C2S, request(i, "ping")))
    answered = [e for i in reversed(ids) for e in p.feed(msg(S2C, result(i, {})))]
    assert len(answered) == len(ids) and all(e.kind == "call" for e in answered)
    assert p.open_requests() == 0
