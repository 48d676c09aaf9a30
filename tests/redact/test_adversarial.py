"""Redaction against payloads shaped to sidestep it (issue 14), at the `finalize` level.

The end-to-end counterpart, through the real `wrap` and `proxy`, is test_adversarial_e2e.py.
Here: a property suite that hides generated secrets in generated adversarial containers and
checks that no secret's bytes reach the stored event, and a fixed case for each shape and for
each shrunk counterexample hypothesis has found.
"""

from __future__ import annotations

import json
import random
import string
import urllib.parse
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from secretgen import ALNUM, KINDS, TOKENS, password, pick

from mcp_notary.events.model import EventDraft, ServerInfo
from mcp_notary.redact.detectors import decoded_view, default_detectors
from mcp_notary.redact.keynames import sensitive_key_kind
from mcp_notary.redact.policy import PolicyRedactor, RedactionPolicy
from mcp_notary.redact.tokens import RedactionKey

KEY = RedactionKey(b"adversarial-tests-key-0123456789")
REDACTOR = PolicyRedactor(RedactionPolicy.from_mapping({}), KEY)
FULL = PolicyRedactor(RedactionPolicy.from_mapping({"verbosity": "full"}), KEY)
MARKER = "[REDACTED:"


def finalize(redactor: PolicyRedactor = REDACTOR, **fields: Any) -> dict[str, Any]:
    draft = EventDraft(
        kind=fields.pop("kind", "call"),
        timestamp="2026-12-08T00:00:00.000000Z",
        server=fields.pop("server", ServerInfo("srv")),
        **fields,
    )
    body: dict[str, Any] = redactor.finalize(draft).body("stream", 1)
    return body


def stored(body: dict[str, Any]) -> str:
    """The event as the ledger stores it (RFC 8785 escapes nothing printable) and as JSON
    with every non-ASCII character escaped: a secret must be in neither."""
    return json.dumps(body, ensure_ascii=False) + json.dumps(body)


def call(arguments: Any, result: Any = None, **fields: Any) -> dict[str, Any]:
    return finalize(
        method="tools/call",
        tool=fields.pop("tool", "t"),
        raw_params={"name": "t", "arguments": arguments},
        raw_result=result,
        **fields,
    )


def pointers(body: dict[str, Any]) -> list[str]:
    return [f["pointer"] for f in body["sensitive_fields"]]


def rules(body: dict[str, Any]) -> list[str]:
    return [f["rule"] for f in body["sensitive_fields"]]


def ghp(rng: random.Random | None = None) -> str:
    return "ghp_" + pick(rng or random.Random(), ALNUM, 36)


# -- the property suite ------------------------------------------------------------------------


PII_VALUES: set[str] = set()


@st.composite
def secrets(draw: st.DrawFn) -> tuple[str, str]:
    """(text carrying a secret, the secret's bytes that must not be stored)."""
    kind = draw(st.sampled_from(sorted(KINDS)))
    text, secret = KINDS[kind](random.Random(draw(st.integers(0, 2**32))))
    if kind in ("us_ssn", "payment_card", "iban", "phone", "email"):
        PII_VALUES.add(text)
    return text, secret


def _json_deep(text: str, depth: int, as_object: bool) -> str:
    inner = json.dumps({"note": text})
    for _ in range(depth):
        inner = '{"a": ' + inner + "}" if as_object else "[" + inner + "]"
    return inner


WRAPPERS = {
    # JSON text inside a string, at any depth, with the secret under the FIRST of two keys.
    "repeated_key": lambda t, d: '{"note": ' + json.dumps(t) + ', "note": "ok"}',
    "deep_object": lambda t, d: _json_deep(t, d, True),
    "deep_array": lambda t, d: _json_deep(t, d, False),
    "json_in_text": lambda t, d: "Echo: " + json.dumps({"note": t}),
    "percent": lambda t, d: "redirect=" + urllib.parse.quote(" " + t, safe=""),
    "percent_twice": lambda t, d: "q=" + urllib.parse.quote(urllib.parse.quote(t, safe="")),
    "u_escaped": lambda t, d: "".join(f"\\u{ord(c):04x}" if c.isalpha() else c for c in t),
    "glued_letter": lambda t, d: "x" + t,
    "glued_digit": lambda t, d: "9" + t,
    "split_lines": lambda t, d: f"line one\n{t}\nline three",
    "assignment_prefix": lambda t, d: "SERVICE_TOKEN=" + t,
    "quoted_key_prefix": lambda t, d: '"config": "' + t + '"',
}


def _place(text: str, where: str, depth: int) -> dict[str, Any]:
    """Draft fields that put `text` in one attacker-chosen place."""
    if where == "argument":
        return {"method": "tools/call", "tool": "t", "raw_params": {"arguments": {"m": text}}}
    if where == "argument_key":
        return {"method": "tools/call", "tool": "t", "raw_params": {"arguments": {text: 1}}}
    if where == "pair_array":
        return {"method": "tools/call", "tool": "t", "raw_params": {"arguments": {"a": [text]}}}
    if where == "result_text":
        return {
            "method": "tools/call",
            "tool": "t",
            "raw_params": {"arguments": {}},
            "raw_result": {"content": [{"type": "text", "text": text}]},
        }
    if where == "error_message":
        return {"method": "tools/call", "tool": "t", "error_code": -32602,
                "raw_error_message": text, "raw_error_data": {"detail": text}}  # fmt: skip
    if where == "notification":
        return {"method": "notifications/cancelled", "kind": "notification",
                "raw_params": {"requestId": 3, "reason": text}}  # fmt: skip
    if where == "jsonrpc_id":
        return {"method": "tools/call", "tool": "t", "jsonrpc_id": text}
    if where == "tool_name":
        return {"method": "tools/call", "tool": text, "raw_params": {"name": text}}
    if where == "details":
        return {"kind": "lifecycle", "details": {"launch": {"parent_command": "x " * depth + text}}}
    raise AssertionError(where)


PLACES = ("argument", "argument_key", "pair_array", "result_text", "error_message",
          "notification", "jsonrpc_id", "tool_name", "details")  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    secrets(),
    st.sampled_from(sorted(WRAPPERS)),
    st.integers(0, 120),
    st.sampled_from(PLACES),
    st.sampled_from(("summary", "full")),
)
def test_no_secret_survives_any_container(
    case: tuple[str, str], wrapper: str, depth: int, where: str, verbosity: str
) -> None:
    text, secret = case
    # Glue hides nothing of a vendor token, but changes a number: `9494-98-6891` is no SSN.
    assume(not (wrapper.startswith("glued") and text in PII_VALUES))
    shaped = WRAPPERS[wrapper](text, depth)
    redactor = FULL if verbosity == "full" else REDACTOR
    body = finalize(redactor, **_place(shaped, where, depth))
    assert secret not in stored(body), (wrapper, where, body)
    assert body["sensitive_fields"], (wrapper, where)


@settings(max_examples=200, deadline=None)
@given(st.lists(secrets(), min_size=2, max_size=4), st.sampled_from((" ", "\n", "\t", ", ")))
def test_adjacent_secrets_of_any_kinds(cases: list[tuple[str, str]], joint: str) -> None:
    text = joint.join(t for t, _ in cases)
    out = default_detectors().redact(text, KEY).text
    for _, secret in cases:
        assert secret not in out
    assert default_detectors().redact(out, KEY).text == out  # a fixed point


@settings(max_examples=200, deadline=None)
@given(secrets(), st.integers(1, 300))
def test_a_cut_never_leaves_a_scannable_piece(case: tuple[str, str], limit: int) -> None:
    """Truncation happens after redaction, and the cut text is scanned again."""
    text, secret = case
    table = {"argument_chars": limit, "summary_chars": limit}
    redactor = PolicyRedactor(RedactionPolicy.from_mapping(table), KEY)
    body = finalize(redactor, **_place("pad " * 40 + text + " tail", "result_text", 0))
    body2 = finalize(redactor, **_place("pad " * 40 + text + " tail", "argument", 0))
    assert secret not in stored(body) + stored(body2)


# -- fixed cases, one per shape of the issue ---------------------------------------------------


def test_repeated_key_first_copy_is_never_stored() -> None:
    token = ghp()
    body = call({"m": '{"note": "' + token + '", "note": "ok"}'})
    assert token not in stored(body)
    assert "json.duplicate_key" in rules(body) or "secret.github_token" in rules(body)
    # A secret that only a key name reveals, under the first copy, is dropped with it.
    body = call({"m": '{"password": "hunter2-is-long", "password": ""}'})
    assert "hunter2-is-long" not in stored(body)
    assert "json.duplicate_key" in rules(body)


def test_json_beyond_the_depth_limit_fails_closed() -> None:
    word = "plainvalue" + pick(random.Random(), string.ascii_lowercase, 12)
    deep = _json_deep(word, 100, True).replace('"note"', '"password"')
    body = call({"m": deep})
    assert word not in stored(body)
    assert "limit.depth" in rules(body)
    too_deep = "[" * 5000 + json.dumps({"password": word}) + "]" * 5000
    body = call({"m": too_deep})
    assert word not in stored(body)
    assert "limit.depth" in rules(body)


def test_structures_past_the_nesting_limit_are_reported() -> None:
    value: Any = {"k": "v"}
    for _ in range(80):
        value = {"a": value}
    body = call(value)
    assert "limit.depth" in rules(body)


@pytest.mark.parametrize(
    "prefix", ["SERVICE_TOKEN=", 'SERVICE_TOKEN="', "api_key: ", '"secret": "', "password = "]
)
def test_a_pem_after_an_assignment_is_redacted_whole(prefix: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=1024)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    )
    out = default_detectors().redact(prefix + pem, KEY).text
    body_lines = [line for line in pem.splitlines() if not line.startswith("-----")]
    assert not [line for line in body_lines if line in out], out


def test_overlapping_finds_merge_into_one_marker() -> None:
    token = ghp()
    out = default_detectors().redact(f"GITHUB_TOKEN={token}", KEY)
    assert out.text.count(MARKER) == 1 and token not in out.text
    assert {h.rule.id for h in out.hits} == {"secret.assignment", "secret.github_token"}


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("SECRET_KEY_BASE", "secret"), ("AUTH_TOKEN_2", "token"), ("JWT_KEY", "token"),
        ("HMAC_KEY", "key"), ("PASSWORD1", "password"), ("DB_PASSWORD_OLD", "password"),
        ("passwordNew", "password"), ("JWT_SIGNING", "token"),
        ("A_VERY_LONG_PREFIX_" * 5 + "PASSWORD", "password"),
        ("p\u0430ssword", "password"),  # Cyrillic a
        ("\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44", "password"),  # full-width
        ("pass\u200bword", "password"),  # zero-width space
        ("DB_PASSWORD_V2", "password"), ("refresh-token-3", "token"),
        ("aws.secret.access.key", "key"),
    ],
)  # fmt: skip
def test_every_word_of_a_key_name_counts(name: str, kind: str) -> None:
    assert sensitive_key_kind(name) == kind
    value = pick(random.Random(), string.ascii_lowercase, 20)
    body = finalize(FULL, method="tools/call", tool="t", raw_params={"arguments": {name: value}})
    assert value not in stored(body)
    text = call({"m": f"{name}={value}"})
    assert value not in stored(text), name


@pytest.mark.parametrize(
    "name",
    [
        "token_type", "token_count", "max_token", "password_policy", "secret_name",
        "token_expires_at", "password_reset_url", "authorization_endpoint", "secret_version",
        "progressToken", "nextCursor", "requestState", "pageToken",
    ],
)  # fmt: skip
def test_names_that_describe_a_secret_or_are_protocol_ids(name: str) -> None:
    assert sensitive_key_kind(name) is None


def test_progress_token_is_kept_but_still_scanned() -> None:
    body = finalize(
        method="notifications/progress",
        kind="notification",
        raw_params={"progressToken": "progress-abc123", "progress": 1, "total": 3},
    )
    assert body["arguments"]["progressToken"] == "progress-abc123"
    assert body["sensitive_fields"] == []
    token = ghp()
    body = finalize(
        method="notifications/progress", kind="notification", raw_params={"progressToken": token}
    )
    assert token not in stored(body)


@pytest.mark.parametrize(
    "template",
    ["x{t}", "9{t}", "_{t}", "redirect=%20{t}", "token%3A%20{t}", "a%2520{t}", "\\u0067{rest}"],
)
def test_encoding_and_glue_do_not_hide_a_token(template: str) -> None:
    token = ghp()
    text = template.format(t=token, rest=token[1:])
    out = default_detectors().redact(text, KEY).text
    assert token[4:] not in out, out


def test_percent_encoded_assignment() -> None:
    out = default_detectors().redact("next=%2Fhome&password%3Dhunter2xyz&x=1", KEY).text
    assert "hunter2xyz" not in out and "next=%2Fhome" in out


def test_decoded_view_maps_back_to_the_original() -> None:
    data = b"a%41b\\u0043d%2541"
    view, starts, ends = decoded_view(data) or (b"", [], [])
    assert view == b"aAbCdA"
    assert [data[s:e] for s, e in zip(starts, ends, strict=True)] == [
        b"a", b"%41", b"b", b"\\u0043", b"d", b"%2541",
    ]  # fmt: skip


def test_truncated_parent_command_loses_the_whole_token() -> None:
    token = ghp()
    command = "/usr/bin/python3 -c launch " + "p" * 150 + " " + token + " more" * 300
    body = finalize(kind="lifecycle", details={"launch": {"parent_command": command}})
    assert not [i for i in range(4, 30) if token[i : i + 10] in stored(body)]
    assert "/details/launch/parent_command" in pointers(body)


def jwk_rsa() -> dict[str, str]:
    import jwt.algorithms
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    found: dict[str, str] = jwt.algorithms.RSAAlgorithm.to_jwk(key, as_dict=True)
    return found


def test_jwk_private_members() -> None:
    jwk = jwk_rsa()
    for where in (jwk, json.dumps(jwk), "key: " + json.dumps(jwk)):
        text = stored(call({"key": where}))
        for member in ("d", "p", "q", "dp", "dq", "qi"):
            assert jwk[member] not in text
        assert jwk["n"] in text  # the public part stays: it identifies the key
    secret = pick(random.Random(), ALNUM, 43)
    assert secret not in stored(call({"key": {"kty": "oct", "k": secret}}))


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("curl -u alice:S3cretPw1 https://api", "S3cretPw1"),
        ("curl -s --user=alice:S3cretPw2 https://api", "S3cretPw2"),
        ("mysql -h db -u root -pS3cretPw3 shop", "S3cretPw3"),
        ("mariadb -u root -p'S3cretPw4' shop", "S3cretPw4"),
        ("sshpass -p S3cretPw5 ssh host", "S3cretPw5"),
        ("password = correct horse battery staple", "horse battery staple"),
        ("password: correct horse battery staple", "horse"),
    ],
)
def test_command_line_and_config_shapes(text: str, gone: str) -> None:
    out = default_detectors().redact(text, KEY).text
    assert gone not in out, out


@pytest.mark.parametrize(
    "armour",
    [
        "-----begin rsa private key-----",
        "-----BEGIN  RSA PRIVATE KEY-----",
        "----- BEGIN PRIVATE KEY -----",
        "-----Begin Openssh Private Key-----",
    ],
)
def test_pem_armour_in_any_case_and_spacing(armour: str) -> None:
    body = pick(random.Random(), ALNUM + "+/", 64)
    out = default_detectors().redact(f"{armour}\n{body}\n-----END-----", KEY).text
    assert body not in out


def test_name_value_pairs() -> None:
    pw = password(random.Random())
    for payload in (
        ["password", pw],
        ["--token", pw, "--verbose"],
        [{"name": "DB_PASSWORD", "value": pw}],
        {"headers": [{"name": "Authorization", "value": f"Basic {pw}"}]},
        json.dumps(["password", pw]),
    ):
        assert pw not in stored(call({"p": payload})), payload
    kept = call({"p": ["pass", "fail", "skip"], "q": {"name": "title", "value": "hello"}})
    assert kept["arguments"] == {
        "p": ["pass", "fail", "skip"],
        "q": {"name": "title", "value": "hello"},
    }


def test_large_integers_are_scanned_as_card_numbers() -> None:
    card = int(KINDS["payment_card"](random.Random(7))[1].replace(" ", "").replace("-", ""))
    body = call({"amount": 12, "pan": card}, jsonrpc_id=card)
    assert str(card) not in stored(body)
    assert "/arguments/pan" in pointers(body) and "/jsonrpc_id" in pointers(body)
    assert call({"n": 12345678901234})["arguments"] == {"n": 12345678901234}  # not a card


def test_ids_tool_and_method_names_are_scanned() -> None:
    token, tool_token, method_token = ghp(), ghp(), ghp()
    body = finalize(
        method=f"x/{method_token}", tool=tool_token, jsonrpc_id=token, raw_params={"a": 1}
    )
    assert not {token, tool_token, method_token} & set(json.dumps(body).split('"'))
    assert token not in stored(body) and tool_token not in stored(body)
    assert method_token not in stored(body)
    assert {"/jsonrpc_id", "/tool", "/method"} <= set(pointers(body))
    assert body["tool"].startswith(MARKER) and body["jsonrpc_id"].startswith(MARKER)
    plain = finalize(method="tools/call", tool="get_weather", jsonrpc_id=7)
    assert (plain["tool"], plain["jsonrpc_id"], plain["method"]) == ("get_weather", 7, "tools/call")


@pytest.mark.parametrize("kind", sorted(TOKENS))
def test_every_token_kind_glued_and_encoded(kind: str) -> None:
    token = TOKENS[kind](random.Random(kind))
    for text in (f"{token}", f"value%3D{urllib.parse.quote(token, safe='')}",
                 f'"{token}"', f"'{token}'", f"x{token}", f"9{token}", f"_{token}",
                 f"{token}secret=hunter2x"):  # fmt: skip
        out = default_detectors().redact(text, KEY).text
        assert token not in out, (kind, text, out)


# -- counterexamples the property suite found, kept as fixed cases -----------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        # An Entra ID secret glued to a digit (its rule began with \b).
        ("92yW6Q~fH-_ZM9TB.rKrmGsNmjQ8mT3OA94HhblZa", "ZM9TB.rKrmGsNmjQ8mT3OA94HhblZa"),
        # A quoted pair inside an assignment's quoted value: the inner value ends in a quote.
        ('SERVICE_TOKEN="access_token": "WfH%!ZM9T[B$rK2"', "WfH%!ZM9T[B$rK2"),
        # An AWS key id glued to the assignment that follows it (its rule ended with \b).
        ("ASIA2CQ7ZT6WNISIGQJTsecret=hunter2hunter2", "ASIA2CQ7ZT6WNISIGQJT"),
        # A URL whose scheme is glued to a digit.
        ("9amqp://admin:p)qV}8?[i}b8H-Dy88@10.0.3.7:3467/shop", "p)qV}8?[i}b8H-Dy88"),
        # A key name with a zero-width space, in text.
        ("pass\u200bword=gdyejuqnngsefuoqrklw", "gdyejuqnngsefuoqrklw"),
        # A qualifier glued to the word before `key`.
        ("xapi_key = LqV}8?[i}b8H-Dy88", "LqV}8?[i}b8H-Dy88"),
    ],
)
def test_found_counterexamples(text: str, secret: str) -> None:
    assert secret not in default_detectors().redact(text, KEY).text
    assert secret not in stored(call({"m": text}))
