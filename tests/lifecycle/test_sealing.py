"""Sealing payloads under a subject key: pure round trips and bindings."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from factories import event
from hypothesis import given
from hypothesis import strategies as st

from mcp_notary.errors import ConfigError
from mcp_notary.events.model import EventDraft, Principal
from mcp_notary.ledger.canonical import canonical_bytes
from mcp_notary.lifecycle.sealing import (
    ERASED,
    SubjectRule,
    open_body,
    rules_from_config,
    seal_event,
    subject_of,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(arguments=json_values, summary=json_values)
def test_sealed_fields_open_to_what_was_sealed(arguments: object, summary: object) -> None:
    key, day = AESGCM.generate_key(256), AESGCM.generate_key(256)
    original = replace(event(), arguments=arguments, response_summary=summary,
                       error={"code": -1, "message": "boom"})  # fmt: skip
    sealed = seal_event(original, ["subj_1", "payload_2026-11-24"], [key, day])
    body = json.loads(canonical_bytes(sealed.body("s", 1)))
    assert body["details"]["sealed_under"] == ["subj_1", "payload_2026-11-24"]
    opened = open_body(body, {"subj_1": key, "payload_2026-11-24": day}.get)
    expected = [None if v is None else v for v in (arguments, summary)]
    assert [opened["arguments"], opened["response_summary"]] == expected
    assert opened["error"] == {"code": -1, "message": "boom"}


def test_without_the_key_or_in_another_event_a_payload_is_erased() -> None:
    key, day = AESGCM.generate_key(256), AESGCM.generate_key(256)
    ids = ["subj_1", "payload_2026-11-24"]
    keys = {"subj_1": key, "payload_2026-11-24": day}
    one = json.loads(canonical_bytes(seal_event(replace(event(), arguments={"ssn": 1}),
                                                ids, [key, day]).body("s", 1)))  # fmt: skip
    two = json.loads(canonical_bytes(seal_event(event(), ids, [key, day]).body("s", 2)))
    assert open_body(one, keys.get)["arguments"] == {"ssn": 1}
    # Either key destroyed is enough: the subject's (erasure) or the day's (payload period).
    assert open_body(one, {"subj_1": key}.get)["arguments"] == {ERASED: ["payload_2026-11-24"]}
    assert open_body(one, {"payload_2026-11-24": day}.get)["arguments"] == {ERASED: ["subj_1"]}
    moved = {**two, "arguments": one["arguments"]}  # an envelope copied into another event
    assert open_body(moved, keys.get)["arguments"] == {ERASED: ids}
    wrong = {**keys, "subj_1": AESGCM.generate_key(256)}  # the subject's key after an erasure
    assert open_body(one, wrong.get)["arguments"] == {ERASED: ids}


def draft(tool: str, arguments: object, principal: str = "alice") -> EventDraft:
    return EventDraft(
        kind="call", timestamp="t", tool=tool, principal=Principal(principal, "user", "os"),
        raw_params={"name": tool, "arguments": arguments},
    )  # fmt: skip


def test_subject_rules() -> None:
    rules = rules_from_config({"subjects": [
        {"tool": "lookup_patient", "argument": "/patient/id"},
        {"principal": True},
    ]})  # fmt: skip
    assert rules == (SubjectRule("lookup_patient", "/patient/id"), SubjectRule(principal=True))
    assert subject_of(draft("lookup_patient", {"patient": {"id": 42}}), rules) == "42"
    assert subject_of(draft("lookup_patient", {"patient": {}}), rules) == "alice"
    assert subject_of(draft("other", {}, "unknown"), rules) is None


@pytest.mark.parametrize(
    "table",
    [
        {"subjects": [{"tool": "x"}]},
        {"subjects": [{"argument": "patient_id"}]},
        {"subjects": [{"argument": "/a", "principal": True}]},
        {"subjects": "principal"},
        {"subject": []},
    ],
)
def test_bad_erasure_config_is_refused(table: dict) -> None:
    with pytest.raises(ConfigError):
        rules_from_config(table)
