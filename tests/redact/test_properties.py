"""Properties that must hold for any input (hypothesis)."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from secretgen import KINDS, embed

from mcp_notary.events.model import EventDraft, ServerInfo
from mcp_notary.redact.detectors import default_detectors
from mcp_notary.redact.policy import PolicyRedactor, RedactionPolicy
from mcp_notary.redact.tokens import RedactionKey

KEY = RedactionKey(b"property-tests-key-0123456789ab")
REDACTOR = PolicyRedactor(RedactionPolicy.from_mapping({}), KEY)

words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | words,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(words, inner, max_size=5),
    max_leaves=30,
)


@st.composite
def planted(draw: st.DrawFn) -> tuple[str, str]:
    """Some text with a random secret of a random kind somewhere in it."""
    kind = draw(st.sampled_from(sorted(KINDS)))
    rng = random.Random(draw(st.integers(0, 2**32)))
    text, secret = KINDS[kind](rng)
    before = draw(st.text(alphabet="abcdefghij XYZ.,;:-\n", max_size=30))
    after = draw(st.text(alphabet="abcdefghij XYZ.,;:-\n", max_size=30))
    return f"{before} {embed(rng, text)} {after}", secret


@settings(max_examples=300, deadline=None)
@given(planted())
def test_a_planted_secret_never_survives(case: tuple[str, str]) -> None:
    text, secret = case
    assert secret not in REDACTOR.redact_payload(text).value


@settings(max_examples=200, deadline=None)
@given(st.lists(planted(), min_size=1, max_size=4), words)
def test_redaction_is_idempotent(cases: list[tuple[str, str]], filler: str) -> None:
    text = filler.join(t for t, _ in cases)
    once = default_detectors().redact(text, KEY).text
    assert default_detectors().redact(once, KEY).text == once
    payload = REDACTOR.redact_payload({"a": text, "b": [text]}).value
    assert REDACTOR.redact_payload(payload).value == payload


@settings(max_examples=200, deadline=None)
@given(json_values, json_values, st.lists(planted(), max_size=3))
def test_finalize_output_is_json_and_secret_free(
    params: Any, result: Any, secrets: list[tuple[str, str]]
) -> None:
    arguments = {"data": params, **{f"s{i}": text for i, (text, _) in enumerate(secrets)}}
    draft = EventDraft(
        kind="call",
        timestamp="2026-11-24T22:16:00.000000Z",
        method="tools/call",
        tool="t",
        server=ServerInfo("srv"),
        raw_params={"name": "t", "arguments": arguments},
        raw_result={
            "content": [{"type": "text", "text": t} for t, _ in secrets],
            "structuredContent": result,
        },
    )
    body = json.dumps(REDACTOR.finalize(draft).body("s", 0), allow_nan=False)
    for _, secret in secrets:
        assert secret not in body


@settings(max_examples=200, deadline=None)
@given(words)
def test_arbitrary_text_round_trips_when_clean(text: str) -> None:
    out = default_detectors().redact(text, KEY)
    if not out.hits:
        assert out.text == text
    else:
        assert "[REDACTED:" in out.text
