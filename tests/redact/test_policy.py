"""RedactionPolicy: the [redaction] table, overlays, schema-declared fields, verbosity."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcp_notary.errors import ConfigError
from mcp_notary.events.model import AuditEvent, EventDraft, ServerInfo
from mcp_notary.redact.policy import PolicyRedactor, RedactionPolicy
from mcp_notary.redact.tokens import RedactionKey

KEY = RedactionKey(b"policy-tests-key-0123456789abcd")


def redactor(table: dict[str, Any] | None = None) -> PolicyRedactor:
    return PolicyRedactor(RedactionPolicy.from_mapping(table or {}), KEY)


def call(
    arguments: Any, result: Any = None, *, tool: str = "login", server: str = "srv"
) -> EventDraft:
    return EventDraft(
        kind="call",
        timestamp="2026-11-24T22:16:00.000000Z",
        method="tools/call",
        tool=tool,
        server=ServerInfo(server),
        raw_params={"name": tool, "arguments": arguments},
        raw_result=result,
    )


def manifest(event: AuditEvent) -> dict[str, tuple[str, str]]:
    return {f.pointer: (f.kind, f.rule) for f in event.sensitive_fields}


# -- the table -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"verbosty": "full"}, "unknown setting"),
        ({"verbosity": "loud"}, "verbosity must be one of"),
        ({"summary_chars": 0}, "positive integer"),
        ({"summary_chars": True}, "positive integer"),
        ({"sensitive": "/params/arguments/x"}, "list of JSON Pointers"),
        ({"sensitive": ["params/arguments/x"]}, "must start with '/'"),
        ({"drop": ["/arguments/x"]}, "must start with /params, /result or /error"),
        ({"hash": ["/params/a~2b"]}, "~0"),
        ({"disable_rules": ["pii.nope"]}, "unknown rule id"),
        ({"servers": {"s": {"tools": {"t": {"allow": [1]}}}}}, "redaction.servers.s.tools.t"),
        ({"servers": {"s": {"prompts": []}}}, "redaction.servers.s.prompts"),
        ({"servers": {"s": {"tools": {"t": {"tools": {}}}}}}, "unknown setting"),
        ({"key_file": 3}, "key_file"),
    ],
)
def test_bad_tables_are_refused_with_the_setting_named(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RedactionPolicy.from_mapping(table)


def test_resolution_most_specific_wins() -> None:
    policy = RedactionPolicy.from_mapping(
        {
            "verbosity": "summary",
            "summary_chars": 100,
            "servers": {"gh": {"verbosity": "digest", "tools": {"create": {"verbosity": "full"}}}},
        }
    )
    assert policy.resolve("other").verbosity == "summary"
    assert policy.resolve("gh").verbosity == "digest"
    assert policy.resolve("gh", "create").verbosity == "full"
    assert policy.resolve("gh", "create").summary_chars == 100
    assert RedactionPolicy.from_mapping({}).resolve(None).summary_chars == 200


# -- schema-declared sensitivity ---------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {
        "api_key": {"type": "string", "writeOnly": True},
        "user": {"type": "string"},
        "profile": {
            "type": "object",
            "properties": {
                "pin": {"type": "string", "format": "password"},
                "city": {"type": "string"},
            },
        },
        "accounts": {"type": "array", "items": {"$ref": "#/$defs/account"}},
        "extra": {
            "type": "object",
            "additionalProperties": {"type": "string", "x-sensitive": True},
        },
        "mode": {
            "anyOf": [
                {"type": "string"},
                {"type": "object", "properties": {"code": {"sensitive": True}}},
            ]
        },
    },
    "$defs": {
        "account": {
            "type": "object",
            "properties": {
                "secret_answer": {"type": "string", "writeOnly": True},
                "nick": {"type": "string"},
            },
        }
    },
}


def test_schema_declared_fields_are_tokenised_whatever_they_look_like() -> None:
    r = redactor()
    r.observe_tools("srv", [{"name": "login", "inputSchema": SCHEMA}])
    event = r.finalize(
        call(
            {
                "api_key": "plainlowercase",
                "user": "bob",
                "profile": {"pin": "1234", "city": "Oslo"},
                "accounts": [
                    {"secret_answer": "fluffy", "nick": "a"},
                    {"secret_answer": "rex", "nick": "b"},
                ],
                "extra": {"anything": "goes", "more": "here"},
                "mode": {"code": 42},
            }
        )
    )
    body = json.dumps(event.body("s", 0))
    for value in ("plainlowercase", "1234", "fluffy", "rex", "goes", "here", ": 42"):
        assert value not in body
    args = event.arguments
    assert (
        args["user"] == "bob"
        and args["profile"]["city"] == "Oslo"
        and args["accounts"][1]["nick"] == "b"
    )
    found = manifest(event)
    assert found["/arguments/api_key"] == ("sensitive", "schema.writeOnly")
    assert found["/arguments/profile/pin"] == ("sensitive", "schema.format-password")
    assert found["/arguments/accounts/0/secret_answer"] == ("sensitive", "schema.writeOnly")
    assert found["/arguments/extra/anything"] == ("sensitive", "schema.x-sensitive")
    assert found["/arguments/mode/code"] == ("sensitive", "schema.sensitive")


def test_schemas_are_per_server_and_merge_across_pages() -> None:
    r = redactor()
    r.observe_tools("srv", [{"name": "login", "inputSchema": SCHEMA}])
    r.observe_tools("srv", [{"name": "other", "inputSchema": {"type": "object"}}])  # page 2
    assert "plainlowercase" not in json.dumps(
        r.finalize(call({"api_key": "plainlowercase"})).arguments
    )
    other_server = r.finalize(call({"api_key": "plainlowercase"}, server="elsewhere"))
    assert other_server.arguments["api_key"].startswith("[REDACTED:api_key:")  # key name still


def test_recursive_and_hostile_schemas_do_not_hang() -> None:
    recursive = {
        "type": "object",
        "properties": {"a": {"$ref": "#"}, "b": {"$ref": "#"}, "p": {"writeOnly": True}},
    }
    r = redactor()
    r.observe_tools(
        "srv", [{"name": "t", "inputSchema": recursive}, {"name": "u", "inputSchema": "nonsense"}]
    )
    event = r.finalize(call({"a": {"a": {"p": "deep"}}, "p": "top"}, tool="t"))
    assert "deep" not in json.dumps(event.arguments) and "top" not in json.dumps(event.arguments)


def test_output_schema_covers_structured_content_and_its_text_copy() -> None:
    r = redactor()
    out_schema = {
        "type": "object",
        "properties": {"session": {"type": "string", "x-sensitive": True}},
    }
    r.observe_tools(
        "srv", [{"name": "login", "inputSchema": {"type": "object"}, "outputSchema": out_schema}]
    )
    structured = {"session": "opaque-session-value", "ok": True}
    result = {
        "content": [{"type": "text", "text": json.dumps(structured)}],
        "structuredContent": structured,
    }
    for verbosity in ("summary", "full", "digest"):
        r.policy = RedactionPolicy.from_mapping({"verbosity": verbosity})
        r._tries.clear()
        body = json.dumps(r.finalize(call({}, result)).body("s", 0))
        assert "opaque-session-value" not in body, verbosity


# -- operator overlays ------------------------------------------------------------------------


def test_overlays_sensitive_allow_drop_hash() -> None:
    r = redactor(
        {
            "servers": {
                "srv": {
                    "tools": {
                        "login": {
                            "sensitive": ["/params/arguments/note"],
                            "allow": ["/params/arguments/contact"],
                            "drop": ["/params/arguments/blob", "/params/arguments/list/1"],
                            "hash": ["/params/arguments/customer/*/id"],
                        }
                    }
                }
            }
        }
    )
    event = r.finalize(
        call(
            {
                "note": "nothing secret looking",
                "contact": "bob@example.com",
                "blob": "x" * 50,
                "list": ["a", "b", "c"],
                "customer": [{"id": "C-1"}, {"id": "C-2"}],
            }
        )
    )
    args = event.arguments
    assert args["note"].startswith("[REDACTED:sensitive:")
    assert args["contact"] == "bob@example.com"  # allowed: verbatim, no detectors
    assert "blob" not in args and args["list"] == ["a", None, "c"]
    assert args["customer"][0]["id"].startswith("[REDACTED:hash:")
    assert args["customer"][0]["id"] != args["customer"][1]["id"]
    found = manifest(event)
    assert found["/arguments/note"] == ("sensitive", "overlay.tool.sensitive")
    assert found["/arguments/blob"] == ("dropped", "overlay.tool.drop")
    assert found["/arguments/customer/1/id"] == ("hash", "overlay.tool.hash")


def test_operator_allow_beats_schema_and_specific_beats_general() -> None:
    r = redactor(
        {
            "drop": ["/params/arguments/debug"],
            "servers": {
                "srv": {
                    "allow": ["/params/arguments/debug"],
                    "tools": {"login": {"allow": ["/params/arguments/api_key"]}},
                }
            },
        }
    )
    r.observe_tools("srv", [{"name": "login", "inputSchema": SCHEMA}])
    args = r.finalize(call({"api_key": "declared-but-allowed", "debug": "on"})).arguments
    assert args == {"api_key": "declared-but-allowed", "debug": "on"}
    assert "debug" not in r.finalize(call({"debug": "on"}, server="other")).arguments


def test_prompt_overlays_match_the_prompt_name() -> None:
    r = redactor(
        {"servers": {"srv": {"prompts": {"greet": {"sensitive": ["/params/arguments/name"]}}}}}
    )
    draft = EventDraft(
        kind="call",
        timestamp="2026-11-24T22:16:00.000000Z",
        method="prompts/get",
        target="greet",
        server=ServerInfo("srv"),
        raw_params={"name": "greet", "arguments": {"name": "Alice"}},
    )
    assert r.finalize(draft).arguments["name"].startswith("[REDACTED:sensitive:")


def test_result_overlays_apply_in_full_mode() -> None:
    r = redactor({"verbosity": "full", "drop": ["/result/structuredContent/internal"]})
    event = r.finalize(call({}, {"content": [], "structuredContent": {"internal": "x", "ok": 1}}))
    assert event.response_summary["structuredContent"] == {"ok": 1}


# -- verbosity -----------------------------------------------------------------------------


RESULT = {
    "content": [
        {"type": "text", "text": "The answer is 42. " * 30},
        {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
    ],
    "isError": False,
    "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "x"}},
}


def test_summary_mode_keeps_a_prefix_sizes_and_digests() -> None:
    summary = redactor({"summary_chars": 50}).finalize(call({"q": "x"}, RESULT)).response_summary
    assert summary["text"] == ("The answer is 42. " * 3)[:50]
    assert summary["truncated"] is True and summary["text_chars"] == len("The answer is 42. " * 30)
    assert len(summary["text_digest"]) == 32
    assert summary["content"] == {"count": 2, "types": {"text": 1, "image": 1}}
    assert (
        summary["attachments"][0]["mimeType"] == "image/png"
        and summary["attachments"][0]["bytes"] == 8
    )
    assert summary["is_error"] is False


def test_full_mode_keeps_the_whole_result_without_blobs_and_meta() -> None:
    summary = redactor({"verbosity": "full"}).finalize(call({"q": "x"}, RESULT)).response_summary
    assert summary["content"][0]["text"] == RESULT["content"][0]["text"]
    assert "data" not in summary["content"][1] and summary["content"][1]["bytes"] == 8
    assert "_meta" not in summary


def test_digest_mode_keeps_only_hashes_and_counts() -> None:
    event = redactor({"verbosity": "digest"}).finalize(call({"q": "some query"}, RESULT))
    assert set(event.arguments) == {"bytes", "digest"}
    assert set(event.response_summary) == {"bytes", "digest", "is_error", "content"}
    assert "answer" not in json.dumps(event.body("s", 0))
    assert manifest(event)["/arguments"] == ("digest", "policy.verbosity.digest")


def test_long_arguments_are_cut_in_summary_mode_only() -> None:
    long = "word " * 2000
    short = redactor({"argument_chars": 100}).finalize(call({"body": long})).arguments["body"]
    assert short.startswith("word word") and short.endswith("chars]") and len(short) < 130
    assert redactor({"verbosity": "full"}).finalize(call({"body": long})).arguments["body"] == long
