"""`finalize`: every raw field of a draft, every method shape, and the no-leak guarantee."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest
from secretgen import KINDS

from mcp_notary.events.model import AuditEvent, ClientInfo, EventDraft, Principal, ServerInfo
from mcp_notary.redact.api import Redactor
from mcp_notary.redact.policy import PolicyRedactor, RedactionPolicy
from mcp_notary.redact.tokens import RedactionKey

KEY = RedactionKey(b"finalize-tests-key-0123456789ab")


def redactor(table: dict[str, Any] | None = None) -> PolicyRedactor:
    return PolicyRedactor(RedactionPolicy.from_mapping(table or {}), KEY)


def draft(method: str | None, params: Any = None, result: Any = None, **fields: Any) -> EventDraft:
    return EventDraft(
        kind=fields.pop("kind", "call"),
        timestamp="2026-11-24T22:16:00.000000Z",
        method=method,
        raw_params=params,
        raw_result=result,
        server=fields.pop("server", ServerInfo("srv")),
        **fields,
    )


def stored(event: AuditEvent) -> str:
    return json.dumps(event.body("stream", 1), ensure_ascii=False)


def test_policy_redactor_is_a_redactor() -> None:
    r: Redactor = redactor()
    assert r.finalize(draft("ping")).arguments is None


def test_tools_call_arguments_exclude_everything_but_arguments() -> None:
    event = redactor().finalize(
        draft(
            "tools/call",
            {
                "name": "t",
                "arguments": {"q": "weather", "limit": 3},
                "_meta": {"progressToken": "p1", "authorization": "x"},
                "inputResponses": {"r1": {"action": "accept"}},
                "requestState": "opaque",
            },
            tool="t",
        )
    )
    assert event.arguments == {"q": "weather", "limit": 3}


def test_no_params_means_no_arguments_and_generic_params_drop_meta() -> None:
    r = redactor()
    assert r.finalize(draft("tools/list")).arguments is None
    event = r.finalize(
        draft("resources/read", {"uri": "file:///etc/hosts", "_meta": {"traceparent": "t"}})
    )
    assert event.arguments == {"uri": "file:///etc/hosts"}


def test_target_passes_the_detectors() -> None:
    event = redactor().finalize(
        draft(
            "resources/read",
            {"uri": "https://u:pa55w0rdX@host/x"},
            target="https://u:pa55w0rdX@host/x",
        )
    )
    assert "pa55w0rdX" not in stored(event)
    assert event.target.startswith("https://u:[REDACTED:password:")
    assert any(f.pointer == "/target" for f in event.sensitive_fields)


def test_errors_keep_code_and_redacted_message_and_data() -> None:
    event = redactor().finalize(
        draft(
            "tools/call",
            {"name": "t", "arguments": {}},
            error_code=-32602,
            raw_error_message="login failed for bob@example.com with password=Sup3rS3cret!",
            raw_error_data={"token": "abc", "detail": "ghp_" + "A1b2C3d4E5" * 4},
            outcome="protocol_error",
        )
    )
    assert event.error is not None and event.error["code"] == -32602
    assert event.error["message"].startswith("login failed for [REDACTED:email:")
    body = stored(event)
    assert "Sup3rS3cret" not in body and "bob@example.com" not in body and "A1b2C3d4E5" not in body
    assert {f.pointer for f in event.sensitive_fields} >= {"/error/message", "/error/data/token"}


def test_blobs_are_never_stored() -> None:
    payload = base64.b64encode(b"\x89PNG" + bytes(range(256)) * 8).decode()
    result = {
        "content": [
            {"type": "image", "data": payload, "mimeType": "image/png"},
            {"type": "audio", "data": payload, "mimeType": "audio/wav"},
            {
                "type": "resource",
                "resource": {
                    "uri": "file:///a.bin",
                    "mimeType": "application/octet-stream",
                    "blob": payload,
                },
            },
            {
                "type": "resource",
                "resource": {"uri": "file:///a.txt", "text": "embedded text body"},
            },
            {"type": "resource_link", "uri": "file:///b.txt", "name": "b"},
        ]
    }
    for verbosity in ("summary", "full", "digest"):
        event = redactor({"verbosity": verbosity}).finalize(
            draft("tools/call", {"name": "t"}, result, tool="t")
        )
        body = stored(event)
        assert payload[:40] not in body, verbosity
        assert "embedded text body" not in body or verbosity == "full"
    summary = (
        redactor().finalize(draft("tools/call", {"name": "t"}, result, tool="t")).response_summary
    )
    assert summary["attachments"][0] == {
        "index": 0,
        "type": "image",
        "bytes": 8 * 256 + 4,
        "digest": summary["attachments"][0]["digest"],
        "mimeType": "image/png",
    }
    assert (
        summary["resources"][0]["bytes"] == 8 * 256 + 4 and summary["resources"][1]["chars"] == 18
    )
    assert summary["links"] == [{"index": 4, "uri": "file:///b.txt", "name": "b"}]


def test_long_base64_strings_anywhere_are_blobs() -> None:
    payload = base64.b64encode(bytes(range(256)) * 8).decode()
    event = redactor().finalize(
        draft("tools/call", {"name": "t", "arguments": {"file": payload}}, tool="t")
    )
    assert event.arguments["file"].startswith("[REDACTED:blob:")


def test_structured_content_and_its_json_copy_get_the_same_tokens() -> None:
    structured = {"user": "alice@example.com", "api_key": "k-123", "n": 1}
    result = {
        "content": [{"type": "text", "text": json.dumps(structured)}],
        "structuredContent": structured,
    }
    full = redactor({"verbosity": "full"}).finalize(
        draft("tools/call", {"name": "t"}, result, tool="t")
    )
    copy = json.loads(full.response_summary["content"][0]["text"])
    assert copy == full.response_summary["structuredContent"]
    assert copy["user"].startswith("[REDACTED:email:") and copy["api_key"].startswith(
        "[REDACTED:api_key:"
    )
    summary = (
        redactor().finalize(draft("tools/call", {"name": "t"}, result, tool="t")).response_summary
    )
    assert summary["structured_copies"] == 1 and "text" not in summary
    assert summary["structuredContent"] == copy


def test_json_text_is_walked_so_keys_count() -> None:
    text = json.dumps({"config": {"password": "plain", "host": "db"}})
    event = redactor().finalize(
        draft("tools/call", {"name": "t"}, {"content": [{"type": "text", "text": text}]}, tool="t")
    )
    assert (
        "plain" not in event.response_summary["text"]
        and '"host": "db"' in event.response_summary["text"]
    )


def test_list_results_keep_count_and_names() -> None:
    tools = [{"name": f"tool{i}", "inputSchema": {"type": "object"}} for i in range(3)]
    summary = (
        redactor()
        .finalize(draft("tools/list", {}, {"tools": tools, "nextCursor": "c"}))
        .response_summary
    )
    assert summary == {"count": 3, "names": ["tool0", "tool1", "tool2"], "next_cursor": True}


def test_notifications_params_data_is_redacted() -> None:
    event = redactor().finalize(
        draft(
            "notifications/message",
            {
                "level": "info",
                "logger": "db",
                "data": {"msg": "connected as postgresql://app:Zq9!xx7@db/x", "password": "p"},
            },
            kind="notification",
        )
    )
    assert "Zq9!xx7" not in stored(event) and event.arguments["level"] == "info"
    assert event.arguments["data"]["password"].startswith("[REDACTED:password:")


def test_elicitation_request_and_answer() -> None:
    params = {
        "message": "Please sign in",
        "requestedSchema": {
            "type": "object",
            "properties": {
                "username": {"type": "string"},
                "password": {"type": "string", "format": "password"},
                "plan": {"type": "string", "enum": ["free", "pro"]},
                "agree": {"type": "boolean"},
            },
        },
    }
    answer = {"username": "Ada Lovelace", "password": "letmein", "plan": "pro", "agree": True}
    result = {"action": "accept", "content": answer}
    event = redactor().finalize(draft("elicitation/create", params, result))
    # The schema describes fields: its "password" member is kept, not mistaken for a secret.
    properties = event.arguments["requestedSchema"]["properties"]
    assert properties["password"] == {"type": "string", "format": "password"}
    summary = event.response_summary
    assert summary["action"] == "accept"
    # What the user typed is their data: tokens. Yes/no and offered choices show consent.
    assert summary["content"]["username"].startswith("[REDACTED:user_input:")
    assert summary["content"]["password"].startswith("[REDACTED:sensitive:")
    assert summary["content"]["plan"] == "pro" and summary["content"]["agree"] is True
    assert "letmein" not in stored(event) and "Lovelace" not in stored(event)
    full = redactor({"verbosity": "full"}).finalize(draft("elicitation/create", params, result))
    assert full.response_summary["content"]["username"] == "Ada Lovelace"  # full: detectors only
    assert "letmein" not in stored(full)


def test_sampling_request_and_result() -> None:
    image = base64.b64encode(bytes(200)).decode()
    params = {
        "messages": [
            {"role": "user", "content": {"type": "text", "text": "my card is 4111 1111 1111 1111"}},
            {"role": "user", "content": {"type": "image", "data": image, "mimeType": "image/png"}},
        ],
        "maxTokens": 100,
        "systemPrompt": "You are helpful.",
    }
    result = {
        "role": "assistant",
        "content": {"type": "text", "text": "Noted: 4111 1111 1111 1111"},
        "model": "m",
        "stopReason": "endTurn",
    }
    event = redactor().finalize(draft("sampling/createMessage", params, result))
    body = stored(event)
    assert "4111 1111 1111 1111" not in body and image[:20] not in body
    assert event.arguments["maxTokens"] == 100
    assert event.response_summary["model"] == "m" and event.response_summary["text"].startswith(
        "Noted: [REDACTED:payment_card:411111"
    )


def test_input_required_results_are_summarised_redacted() -> None:
    result = {
        "resultType": "input_required",
        "inputRequests": {
            "r1": {
                "method": "elicitation/create",
                "params": {"message": "Confirm transfer to DE89370400440532013000"},
            }
        },
        "requestState": "opaque-state",
        "content": [],
    }
    summary = (
        redactor().finalize(draft("tools/call", {"name": "t"}, result, tool="t")).response_summary
    )
    assert summary["result_type"] == "input_required"
    assert "DE89370400440532013000" not in json.dumps(summary)
    assert "opaque-state" not in json.dumps(summary)


def test_server_command_and_client_info_are_redacted() -> None:
    event = redactor().finalize(
        draft(
            "ping",
            server=ServerInfo(
                "srv",
                "1",
                [
                    "npx",
                    "server",
                    "--api-key",
                    "k3yv4lu3xx",
                    "DATABASE_URL=postgres://u:hunter22@h/db",
                ],
            ),
            client=ClientInfo("client sk_live_" + "a1B2c3D4e5F6g7H8i9J0", "1.0"),
        )
    )
    body = stored(event)
    assert (
        "k3yv4lu3xx" not in body and "hunter22" not in body and "a1B2c3D4e5F6g7H8i9J0" not in body
    )
    assert event.server.command[:3] == ["npx", "server", "--api-key"]
    assert event.server.name == "srv"


def test_manifest_holds_no_values() -> None:
    rng = random.Random(4)
    texts = [KINDS[k](rng) for k in sorted(KINDS)]
    event = redactor().finalize(
        draft(
            "tools/call",
            {"name": "t", "arguments": {f"f{i}": t for i, (t, _) in enumerate(texts)}},
            tool="t",
        )
    )
    manifest = json.dumps([f.to_dict() for f in event.sensitive_fields])
    for _text, secret in texts:
        assert secret not in manifest
    assert all(
        set(f.to_dict()) == {"pointer", "kind", "rule", "rule_version"}
        for f in event.sensitive_fields
    )


@pytest.mark.parametrize("verbosity", ["summary", "full", "digest"])
def test_finalize_never_leaks(verbosity: str) -> None:
    """Secrets of every kind in every raw field of every draft shape: none reaches the body."""
    rng = random.Random(verbosity)
    planted: list[str] = []

    def s() -> str:
        text, secret = KINDS[rng.choice(sorted(KINDS))](rng)
        planted.append(secret)
        return text

    structured = {"k": s(), "nested": [{"v": s()}], "password": s()}
    result = {
        "content": [
            {"type": "text", "text": f"result {s()} end"},
            {"type": "text", "text": json.dumps(structured)},
            {
                "type": "image",
                "data": base64.b64encode(s().encode()).decode(),
                "mimeType": "image/png",
            },
            {"type": "resource", "resource": {"uri": f"file:///{s()}", "text": s()}},
            {"type": "resource_link", "uri": s(), "name": s()},
        ],
        "structuredContent": structured,
        "isError": True,
        "_meta": {"x": s()},
    }
    drafts = [
        draft(
            "tools/call",
            {
                "name": "t",
                "arguments": {"a": s(), "b": [s(), {"c": s()}], s(): "v"},
                "_meta": {"m": s()},
                "inputResponses": {"r": s()},
            },
            result,
            tool="t",
            raw_error_message=s(),
            raw_error_data={"d": s()},
            error_code=-32000,
            details={"problem": s()},
            client=ClientInfo(s(), s()),
            server=ServerInfo("srv", "1", ["cmd", s(), "--token", "plainvalue"]),
            principal=Principal("alice", "user", "token"),
        ),
        draft(
            "resources/read",
            {"uri": s()},
            {"contents": [{"uri": s(), "text": s()}, {"uri": s(), "blob": s()}]},
            target=s(),
        ),
        draft(
            "prompts/get",
            {"name": "p", "arguments": {"x": s()}},
            {
                "description": s(),
                "messages": [{"role": "user", "content": {"type": "text", "text": s()}}],
            },
            target="p",
        ),
        draft(
            "notifications/message",
            {"level": "error", "data": [s(), {"e": s()}]},
            kind="notification",
        ),
        draft(
            "elicitation/create",
            {"message": s(), "requestedSchema": {"type": "object"}},
            {"action": "accept", "content": {"a": s()}},
        ),
        draft(
            "sampling/createMessage",
            {"messages": [{"role": "user", "content": {"type": "text", "text": s()}}]},
            {"role": "assistant", "content": [{"type": "text", "text": s()}], "model": s()},
        ),
        draft(
            "completion/complete",
            {"ref": {"type": "ref/prompt", "name": s()}, "argument": {"name": "n", "value": s()}},
            {"completion": {"values": [s(), s()]}},
        ),
        draft("vendor/custom", [s(), {"deep": {"deeper": s()}}], {"anything": [s()]}),
    ]
    strings: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                collect(k)
                collect(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                collect(v)

    for d in drafts:
        collect(
            [d.raw_params, d.raw_result, d.raw_error_message, d.raw_error_data, d.target, d.details]
        )
        collect([d.client.name, d.client.version] if d.client else [])
        collect(d.server.command if d.server else [])
    present = [secret for secret in planted if any(secret in text for text in strings)]
    assert len(present) >= len(planted) - 1  # the image's secret is only there base64-encoded
    r = redactor({"verbosity": verbosity})
    for d in drafts:
        body = stored(r.finalize(d))
        for secret in planted:
            assert secret not in body, (d.method, secret)
    assert "plainvalue" not in stored(r.finalize(drafts[0]))


def test_odd_values_are_scanned_not_passed_through() -> None:
    deep: Any = "bottom bob@example.com"
    for _ in range(200):
        deep = [deep]
    event = redactor().finalize(
        draft(
            "vendor/x",
            {
                "t": ("bob@example.com", 1),
                "b": b"password=hunter2x",
                "nan": float("nan"),
                "deep": deep,
            },
            details={"seen": ("carol@example.com",)},
        )
    )
    body = json.dumps(event.body("s", 0), allow_nan=False)
    assert (
        "bob@example.com" not in body and "hunter2x" not in body and "carol@example.com" not in body
    )
    assert event.arguments["nan"] == "nan"


def test_events_validate_against_the_event_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from pathlib import Path

    import mcp_notary.events

    schema_path = Path(mcp_notary.events.__file__).parent / "schema" / "audit-event-v1.json"
    schema = json.loads(schema_path.read_text())
    r = redactor()
    drafts = [
        draft(
            "tools/call",
            {"name": "t", "arguments": {"a": "bob@example.com"}},
            {"content": [{"type": "text", "text": "hi"}]},
            tool="t",
            outcome="success",
        ),
        draft(
            "tools/call",
            {"name": "t"},
            None,
            tool="t",
            error_code=-32602,
            raw_error_message="bad",
            raw_error_data={"x": 1},
            outcome="protocol_error",
        ),
        draft("notifications/progress", {"progressToken": 1, "progress": 0.5}, kind="notification"),
        draft(
            "ping",
            server=ServerInfo("srv", "1", ["x", "--password", "p"]),
            client=ClientInfo("c", None),
        ),
    ]
    for d in drafts:
        jsonschema.validate(r.finalize(d).body("s", 1), schema)


def test_json_text_is_scanned_whole_even_where_summaries_are_bounded() -> None:
    deep: Any = {"g": "password=Hx9kq2LpZw"}
    for name in "fedcba":
        deep = {name: deep}
    meta = {"_meta": {"note": "sk_live_" + "a1B2c3D4e5F6g7H8i9J0"}}
    many = [f"item{i}" for i in range(30)] + ["bob@example.com"]
    for text in (json.dumps(deep), json.dumps(meta), json.dumps(many)):
        result = {"content": [], "structuredContent": {"blob": text}}
        for verbosity in ("summary", "full"):
            body = stored(
                redactor({"verbosity": verbosity, "summary_chars": 1000}).finalize(
                    draft("tools/call", {"name": "t"}, result, tool="t")
                )
            )
            assert (
                "Hx9kq2LpZw" not in body
                and "a1B2c3D4e5F6" not in body
                and "bob@example.com" not in body
            )
