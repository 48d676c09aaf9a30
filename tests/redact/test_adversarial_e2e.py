"""Issue 14, end to end: payloads shaped to sidestep redaction (repeated JSON keys, nesting past
the walker's depth, overlapping matches, disguised key names, token boundaries, truncation before
redaction, JWKs and command lines, secrets in JSON-RPC ids and tool names, terminal escapes)
sent through the real `mcp-notary wrap` around npm server-everything, and through
`mcp-notary proxy` in front of its streamable HTTP (SSE) transport.

For every case, the secret's bytes must be nowhere: not in the store's files (read during the
run, after the group commit, and after exit), not in `events --json`, not in any file export,
not in the SOC 2 HTML report; and the event's `sensitive_fields` must point at where the secret
was. Secrets are generated per run (secretgen); many cases share one server session.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import string
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from e2e_leaks import (
    Case,
    Event,
    Run,
    by_id,
    case_problems,
    find_leaks,
    is_marker,
    nth,
    pieces,
    raw_store,
    read_side_outputs,
    requests,
)
from e2e_notary import Notary, notary_argv
from e2e_rawclient import INIT, RawPipeClient
from http_events import wait_events as wait_for_events
from http_procs import free_port, proxy_argv, running
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, RSAAlgorithm
from mcp import Client
from secretgen import ALNUM, password, pick

pytestmark = pytest.mark.timeout(240)

SEED = int.from_bytes(os.urandom(8), "big")
RNG = random.Random(SEED)  # fresh secrets every run; the seed is in every failure message


# -- generators --------------------------------------------------------------------------------
def ghp() -> str:
    return "ghp_" + pick(RNG, ALNUM, 36)


def word(n: int = 12) -> str:
    return pick(RNG, string.ascii_lowercase, n)


def token_needles(token: str) -> dict[str, str]:
    """A GitHub token leaks if its random part survives, with or without the prefix."""
    return {"github token random part": token[4:]}


def repeated_key(token: str) -> str:
    return '{"note":"' + token + '","note":"ok"}'


def rsa_pem() -> tuple[str, list[str]]:
    """A real RSA private key (PKCS#1 PEM, real newlines) and its base64 body lines."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    text = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    body = [line for line in text.splitlines() if line and not line.startswith("-----")]
    assert len(body) > 20, body
    return text.strip(), body


def body_needles(body: list[str]) -> dict[str, str]:
    return {f"PEM body line {i}": line for i, line in enumerate(body)}


def jwks() -> dict[str, tuple[str, dict[str, str]]]:
    """Private JWKs (RSA, EC, oct) as JSON text, with the private members' values."""
    rsa_jwk = RSAAlgorithm.to_jwk(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), as_dict=True
    )
    ec_jwk = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
    oct_jwk = HMACAlgorithm.to_jwk(os.urandom(32), as_dict=True)
    out = {}
    for name, jwk, private in (
        ("rsa", rsa_jwk, ("d", "p", "q", "dp", "dq", "qi")),
        ("ec", ec_jwk, ("d",)),
        ("oct", oct_jwk, ("k",)),
    ):
        assert all(isinstance(jwk.get(m), str) for m in private), (name, sorted(jwk))
        out[name] = (json.dumps(jwk), {f"JWK {name} {m}": str(jwk[m]) for m in private})
    return out


def long_password_name() -> str:
    words = []
    while len("_".join(words)) < 64:
        words.append(pick(RNG, string.ascii_uppercase, RNG.randint(5, 9)))
    name = "_".join(words) + "_PASSWORD"
    assert len(name) >= 70
    return name


KEY_NAME_COUNT = 11


def key_names() -> list[str]:
    """Names that say "secret" only to a judgement that looks past digits, suffixes, camel
    case, length and look-alike letters."""
    names = [
        "SECRET_KEY_BASE", "AUTH_TOKEN_2", "JWT_KEY", "HMAC_KEY", "PASSWORD1", "DB_PASSWORD_OLD",
        "passwordNew", "JWT_SIGNING", long_password_name(),
        "db_p\u0430ssword",  # a Cyrillic letter a
        "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44",  # "password", full-width
    ]  # fmt: skip
    assert len(names) == KEY_NAME_COUNT
    return names


def depth_payload(token: str, levels: int, opener: str) -> str:
    closer = "]" if opener == "[" else "}"
    return opener * levels + '{"note":"' + token + '"}' + closer * levels


def full_verbosity_config(workdir: Path) -> Path:
    config = workdir / "mcp-notary.toml"
    config.write_text('[redaction]\nverbosity = "full"\n')
    return config


Locate = Callable[[list[Event]], list[Event]]


def notifications_of(method: str, parent_of: Locate | None = None) -> Locate:
    """Notifications of `method`, optionally only those linked to the calls `parent_of` finds."""

    def locate(events: list[Event]) -> list[Event]:
        found = [e for e in events if e["kind"] == "notification" and e["method"] == method]
        if parent_of is not None:
            parents = {e["event_id"] for e in parent_of(events)}
            found = [e for e in found if e["parent_event_id"] in parents]
        return sorted(found, key=lambda e: e["seq"])

    return locate


def tool_call(index: int, tool: str) -> Callable[[list[Event]], list[Event]]:
    """The index-th tools/call, which must be a call of `tool` (else the harness is off)."""
    inner = nth("tools/call", index)

    def locate(events: list[Event]) -> list[Event]:
        found = inner(events)
        assert not found or found[0]["tool"] == tool, (
            f"tools/call #{index} is {found[0]['tool']!r}, expected {tool!r}: calls out of order"
        )
        return found

    return locate


def calls_of(events: list[Event], method: str) -> list[Event]:
    return [e for e in events if e["kind"] == "call" and e["method"] == method]


def assert_cases(run: Run, case_ids: list[str]) -> None:
    missing = [c for c in case_ids if c not in run.cases]
    assert not missing, f"cases not driven: {missing}"
    problems = {c: p for c in case_ids if (p := case_problems(run, c))}
    assert not problems, f"seed {SEED}: " + json.dumps(problems, indent=1, ensure_ascii=False)


def snapshot_outputs(run: Run, notary: Notary, workdir: Path, live: dict[str, bytes]) -> None:
    """Fill in every haystack: the live store files, the files after exit, the read side, and
    the files again after the reads (which append audit-of-audit events)."""
    run.haystacks.update(live)
    run.haystacks.update(raw_store(run.store, "after exit"))
    run.haystacks.update(read_side_outputs(notary, run.store, workdir))
    run.haystacks.update(raw_store(run.store, "after reads"))
    run.events = [e for e in notary.events(run.store) if e["kind"] != "audit_access"]


def assert_canary(run: Run, canary: str) -> None:
    """The harness sees what is stored: a harmless marker sent in the session is found in the
    store files (live and after exit), in `events --json` and in the jsonl export."""
    needle = canary.encode()
    for phase in ("live", "after exit", "after reads"):
        assert any(needle in h for n, h in run.haystacks.items() if n.startswith(phase)), (
            f"canary not in the store files ({phase})"
        )
    assert needle in run.haystacks["events --json"], "canary not in events --json"
    assert needle in run.haystacks["export jsonl"], "canary not in the jsonl export"


# == session 1: the SDK client through wrap ========================================================
async def drive_sdk(
    params: Any, run: Run, env_secrets: dict[str, str], notary: Notary
) -> dict[str, bytes]:
    counts = {"tools/call": 0, "prompts/get": 0}
    sampled: list[str] = []

    async def sampling(ctx: Any, p: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=sampled[-1]),
            model="e2e-adversarial",
            stop_reason="endTurn",
        )

    live: dict[str, bytes] = {}
    with anyio.fail_after(120):
        async with Client(params, mode="legacy", sampling_callback=sampling) as client:
            await client.list_tools()

            async def call(tool: str, arguments: dict[str, Any]) -> Any:
                index = counts["tools/call"]
                counts["tools/call"] += 1
                try:
                    result = await client.call_tool(tool, arguments)
                except Exception as exc:  # an unknown tool may be a protocol error
                    result = exc
                return index, result

            async def echo(
                case_id: str,
                message: str,
                needles: dict[str, str],
                *,
                extra: dict[str, Any] | None = None,
                pointers: tuple[str, ...] = ("/arguments/message", "/response_summary"),
                depth: bool = False,
            ) -> None:
                index, result = await call("echo", {"message": message, **(extra or {})})
                assert result.content[0].text == f"Echo: {message}", "echo did not echo"
                run.add(case_id, Case(needles, pointers, tool_call(index, "echo"), depth))

            run.results["canary"] = canary = "canary-" + word()
            await call("echo", {"message": canary})

            # 1a-1c, 1e: a repeated key hides the secret behind a harmless last value
            token = ghp()
            await echo("1a", repeated_key(token), token_needles(token))
            token = ghp()
            prompt = await client.get_prompt("args-prompt", {"city": repeated_key(token)})
            assert token in json.dumps(prompt.model_dump(mode="json"))
            run.add("1b", Case(token_needles(token), ("/arguments/city", "/response_summary"),
                               nth("prompts/get", counts["prompts/get"])))  # fmt: skip
            counts["prompts/get"] += 1
            token = ghp()
            sampled.append(repeated_key(token))
            index, result = await call("trigger-sampling-request", {"prompt": "hi", "maxTokens": 8})
            assert token in result.content[0].text, "the sampled text did not reach the tool"
            run.add("1c", Case(token_needles(token), ("/response_summary",),
                               nth("sampling/createMessage", 0, "server_to_client")))  # fmt: skip
            token = ghp()
            index, _ = await call("get-sum", {"a": repeated_key(token), "b": 2})
            run.add("1e-wrong-type", Case(token_needles(token), ("/arguments/a",),
                                          tool_call(index, "get-sum")))  # fmt: skip
            token, unknown = ghp(), f"no-such-tool-{word(6)}"
            index, _ = await call(unknown, {"message": repeated_key(token)})
            run.add("1e-unknown-tool", Case(token_needles(token), ("/arguments/message",),
                                            tool_call(index, unknown)))  # fmt: skip

            # 2: nesting past the walker's depth limit
            for levels in (100, 2000):
                for label, opener in (("list", "["), ("object", '{"a":')):
                    token = ghp()
                    await echo(f"2-{levels}-{label}", depth_payload(token, levels, opener),
                               token_needles(token), depth=True)  # fmt: skip

            # 3: overlapping matches
            pem, body = rsa_pem()
            await echo("3-assignment-then-pem", f"SERVICE_TOKEN={pem}", body_needles(body))
            for i, template in enumerate((
                'API_TOKEN="config": "x", "db_password": "{pw}"',
                "export SETTINGS='{{\"config\": \"x\", \"db_password\": \"{pw}\"}}'",
                'secret: "config": "x", "db_password": "{pw}", "mode": "y"',
            )):  # fmt: skip
                pw = password(RNG)
                await echo(f"3-pairs-in-value-{i}", template.format(pw=pw), {"password": pw})

            # 4: key names, as JSON keys (the same names are in the server's environment)
            for i, name in enumerate(env_secrets):
                value = word(20)
                await echo(f"4-json-{i}", json.dumps({name: value}, ensure_ascii=False),
                           {f"value of {name}": value})  # fmt: skip
            index, result = await call("get-env", {})
            dumped = result.content[0].text
            assert all(v in dumped for v in env_secrets.values()), "env did not reach the server"
            env_needles = {f"env {k}": v for k, v in env_secrets.items()}
            run.add(
                "4-get-env", Case(env_needles, ("/response_summary",), tool_call(index, "get-env"))
            )

            # 5: token boundaries
            for label, template in (
                ("x-prefix", "x{t}"), ("digit-prefix", "9{t}"),
                ("url-space", "redirect=%20{t}"), ("url-colon", "token%3A%20{t}"),
            ):  # fmt: skip
                token = ghp()
                await echo(f"5-{label}", template.format(t=token), token_needles(token))
            secret_word = word()
            await echo("5-url-equals", f"password%3D{secret_word}", {"password": secret_word})

            # 7: shapes
            for name, (text, needles) in jwks().items():
                await echo(f"7-jwk-{name}", text, needles)
            pw = password(RNG)
            await echo("7-curl", f"curl -u alice:{pw} https://x", {"password": pw})
            pw = password(RNG)
            await echo("7-mysql", f"mysql -u root -p{pw} db", {"password": pw})
            words = [word(8) for _ in range(4)]
            await echo("7-passphrase", "password = " + " ".join(words),
                       {f"word {i}": w for i, w in enumerate(words)})  # fmt: skip
            pem, body = rsa_pem()
            lower = pem.replace(
                "-----BEGIN RSA PRIVATE KEY-----", "-----begin rsa private key-----"
            )
            lower = lower.replace("-----END RSA PRIVATE KEY-----", "-----end rsa private key-----")
            assert lower != pem
            await echo("7-pem-lower-case", lower, body_needles(body))
            pem, body = rsa_pem()
            spaced = pem.replace("BEGIN RSA", "BEGIN  RSA").replace("END RSA", "END  RSA")
            await echo("7-pem-extra-spaces", spaced, body_needles(body))
            pw = password(RNG)
            await echo("7-pair-json-text", json.dumps(["password", pw]), {"password": pw})
            pw = password(RNG)
            await echo("7-pair-structured", "pair-" + word(), {"password": pw},
                       extra={"credentials": ["password", pw]},
                       pointers=("/arguments/credentials",))  # fmt: skip

            calls_made = counts["tools/call"]

            def settled(evs: list[Event]) -> bool:
                return len(requests(evs, "tools/call")) >= calls_made

            await anyio.to_thread.run_sync(lambda: wait_for_events(notary, run.store, settled))
            live.update(raw_store(run.store, "live"))
    return live


@pytest.fixture(scope="module")
def sdk_run(
    notary: Notary, everything_cmd: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Run:
    workdir = tmp_path_factory.mktemp("adversarial-sdk")
    run = Run(store=workdir / "audit.db")
    env_secrets = {name: word(20) for name in key_names()}
    params = notary.wrap_params(
        everything_cmd, run.store, extra_env=env_secrets,
        options=["--config", str(full_verbosity_config(workdir))],
    )  # fmt: skip
    live = anyio.run(drive_sdk, params, run, env_secrets, notary)
    snapshot_outputs(run, notary, workdir, live)
    assert_canary(run, run.results["canary"])
    return run


@pytest.mark.parametrize("case", ["1a", "1b", "1c", "1e-wrong-type", "1e-unknown-tool"])
def test_1_repeated_json_key(sdk_run: Run, case: str) -> None:
    assert_cases(sdk_run, [case])


@pytest.mark.parametrize("case", ["2-100-list", "2-100-object", "2-2000-list", "2-2000-object"])
def test_2_nesting_past_the_depth_limit(sdk_run: Run, case: str) -> None:
    assert_cases(sdk_run, [case])


@pytest.mark.parametrize(
    "case",
    ["3-assignment-then-pem", "3-pairs-in-value-0", "3-pairs-in-value-1", "3-pairs-in-value-2"],
)
def test_3_overlapping_matches(sdk_run: Run, case: str) -> None:
    assert_cases(sdk_run, [case])


@pytest.mark.parametrize("index", range(KEY_NAME_COUNT))
def test_4_key_names_as_json_keys(sdk_run: Run, index: int) -> None:
    assert_cases(sdk_run, [f"4-json-{index}"])


def test_4_key_names_in_the_server_environment(sdk_run: Run) -> None:
    assert_cases(sdk_run, ["4-get-env"])


@pytest.mark.parametrize(
    "case", ["5-x-prefix", "5-digit-prefix", "5-url-space", "5-url-colon", "5-url-equals"]
)
def test_5_token_boundaries(sdk_run: Run, case: str) -> None:
    assert_cases(sdk_run, [case])


@pytest.mark.parametrize(
    "case",
    ["7-jwk-rsa", "7-jwk-ec", "7-jwk-oct", "7-curl", "7-mysql", "7-passphrase",
     "7-pem-lower-case", "7-pem-extra-spaces", "7-pair-json-text", "7-pair-structured"],
)  # fmt: skip
def test_7_shapes(sdk_run: Run, case: str) -> None:
    assert_cases(sdk_run, [case])


# == session 2: raw JSON-RPC lines through wrap ====================================================
HAZARDS = {
    "esc-clear": "tool\x1b[2Jclear",
    "osc8-link": "tool\x1b]8;;http://evil\x07link\x1b]8;;\x07",
    "bel": "tool\x07bell",
    "c1-csi": "tool\x9b31mred",
    "markup-red": "[red]fake[/red]",
    "markup-link": "[link=http://evil]x[/link]",
}
PROGRESS_PLAIN_ID, PROGRESS_SECRET_ID, TOOL_TOKEN_ID, CANCELLED_ID = 20, 21, 3, 1


def raw_call(
    request_id: Any, tool: str, arguments: dict[str, Any], meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    if meta:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def drive_raw(client: RawPipeClient, run: Run, notary: Notary) -> dict[str, bytes]:
    init = json.loads(json.dumps(INIT))
    assert "result" in client.request(init), "initialize failed"
    client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    # 1d: a repeated key in the reason of a cancellation
    token = ghp()
    client.send(
        raw_call(CANCELLED_ID, "trigger-long-running-operation", {"duration": 1, "steps": 2})
    )
    client.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                 "params": {"requestId": CANCELLED_ID, "reason": repeated_key(token)}})  # fmt: skip
    run.add("1d", Case(token_needles(token), ("/arguments/reason",),
                       notifications_of("notifications/cancelled")))  # fmt: skip

    # 8: a token as the JSON-RPC id, and as the tool name
    token, marker = ghp(), "id-case-" + word()
    reply = client.request(raw_call(token, "echo", {"message": marker}))
    assert marker in json.dumps(reply)

    def by_marker(events: list[Event]) -> list[Event]:
        return [e for e in requests(events, "tools/call") if marker in json.dumps(e["arguments"])]

    run.add("8-id", Case(token_needles(token), ("/jsonrpc_id",), by_marker))
    token = ghp()
    reply = client.request(raw_call(TOOL_TOKEN_ID, token, {}))
    assert "error" in reply or reply.get("result", {}).get("isError"), reply
    run.add("8-tool", Case(token_needles(token), ("/tool",), by_id(TOOL_TOKEN_ID)))

    # 9: terminal escapes and Rich markup in tool names
    for i, (label, name) in enumerate(HAZARDS.items()):
        client.request(raw_call(10 + i, name, {}))
        run.results[f"9-{label}"] = 10 + i

    # 10: progressToken, a plain string and a GitHub token
    plain, secret_token = "progress-" + word(6), ghp()
    run.results["plain progress token"] = plain
    for request_id, progress_token in (
        (PROGRESS_PLAIN_ID, plain),
        (PROGRESS_SECRET_ID, secret_token),
    ):
        client.request(
            raw_call(request_id, "trigger-long-running-operation", {"duration": 0.4, "steps": 2},
                     meta={"progressToken": progress_token}),
        )  # fmt: skip
    run.add("10-secret", Case(token_needles(secret_token), ("/arguments/progressToken",),
                              notifications_of("notifications/progress",
                                               by_id(PROGRESS_SECRET_ID))))  # fmt: skip
    run.results["canary"] = canary = "canary-" + word()
    client.request(raw_call(99, "echo", {"message": canary}))

    def settled(evs: list[Event]) -> bool:
        progress = notifications_of("notifications/progress")(evs)
        return bool(by_id(99)(evs)) and len(progress) >= 4

    wait_for_events(notary, run.store, settled)
    return raw_store(run.store, "live")


@pytest.fixture(scope="module")
def raw_run(
    notary: Notary, everything_cmd: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    workdir = tmp_path_factory.mktemp("adversarial-raw")
    run = Run(store=workdir / "audit.db")
    argv = notary.wrap_argv(
        everything_cmd, options=["--config", str(full_verbosity_config(workdir))]
    )
    with RawPipeClient(argv, notary.env(run.store), cwd=notary.home) as client:
        live = drive_raw(client, run, notary)
        client.close_stdin()
        assert client.wait(30) == 0, bytes(client.stderr[-2000:])
    snapshot_outputs(run, notary, workdir, live)
    assert_canary(run, run.results["canary"])
    yield run


def test_1d_repeated_key_in_a_cancellation_reason(raw_run: Run) -> None:
    assert_cases(raw_run, ["1d"])


@pytest.mark.parametrize(("case", "field"), [("8-id", "jsonrpc_id"), ("8-tool", "tool")])
def test_8_secret_in_jsonrpc_id_and_tool_name(raw_run: Run, case: str, field: str) -> None:
    assert_cases(raw_run, [case])
    (event,) = raw_run.cases[case].locate(raw_run.events)
    assert is_marker(event[field]), f"stored {field}: {event[field]!r}"
    exported = [json.loads(line) for line in raw_run.haystacks["export jsonl"].splitlines()]
    (record,) = [r for r in exported if r.get("event_id") == event["event_id"]]
    assert is_marker(record[field]), f"jsonl export {field}: {record[field]!r}"


CONTROL_BYTES = {"ESC": b"\x1b", "BEL": b"\x07", "C1 CSI": "\x9b".encode()}


def test_9_terminal_escapes_in_the_events_table(raw_run: Run, notary: Notary) -> None:
    located = {label: by_id(raw_run.results[f"9-{label}"])(raw_run.events) for label in HAZARDS}
    assert all(located.values()), f"hazard events not found: {located}"
    table = notary.run("events", store=raw_run.store)
    assert table.returncode == 0, table.stderr.decode()[-2000:]
    assert b"echo" in table.stdout, "the table lists no tool calls at all"
    problems = [f"`events` printed {n}" for n, b in CONTROL_BYTES.items() if b in table.stdout]
    for label in ("markup-red", "markup-link"):
        # one row, so no column squeeze can cut the name: only markup rendering can hide it
        one = notary.run("events", "--tool", HAZARDS[label], store=raw_run.store)
        assert one.returncode == 0, one.stderr.decode()[-2000:]
        assert re.search(rb"(?<!\d)1 event", one.stdout + one.stderr), (
            f"--tool {HAZARDS[label]!r} did not select its row"
        )
        if HAZARDS[label].encode() not in one.stdout:
            problems.append(f"`events` did not print {HAZARDS[label]!r} literally")
    assert problems == [], f"{problems}\n" + table.stdout.decode(errors="replace")[-3000:]


@pytest.mark.parametrize("label", list(HAZARDS))
def test_9_terminal_escapes_in_show(raw_run: Run, notary: Notary, label: str) -> None:
    (event,) = by_id(raw_run.results[f"9-{label}"])(raw_run.events)
    shown = notary.run("show", event["event_id"], store=raw_run.store)
    assert shown.returncode == 0, shown.stderr.decode()[-2000:]
    assert event["event_id"].encode() in shown.stdout
    problems = [f"`show` printed {n}" for n, b in CONTROL_BYTES.items() if b in shown.stdout]
    if label.startswith("markup") and HAZARDS[label].encode() not in shown.stdout:
        problems.append(f"`show` did not print {HAZARDS[label]!r} literally")
    assert problems == [], f"{problems}\n" + shown.stdout.decode(errors="replace")[-1500:]


def test_10_plain_progress_token_is_kept(raw_run: Run) -> None:
    plain = raw_run.results["plain progress token"]
    progress = notifications_of("notifications/progress", by_id(PROGRESS_PLAIN_ID))(raw_run.events)
    assert len(progress) == 2, f"progress notifications of the plain-token call: {progress}"
    for event in progress:
        assert event["arguments"]["progressToken"] == plain, event["arguments"]
        entries = [f for f in event["sensitive_fields"] if "progressToken" in f["pointer"]]
        assert entries == [], entries


def test_10_progress_token_that_is_a_secret_is_redacted(raw_run: Run) -> None:
    assert_cases(raw_run, ["10-secret"])
    progress = raw_run.cases["10-secret"].locate(raw_run.events)
    assert len(progress) == 2, progress
    assert all(is_marker(e["arguments"]["progressToken"]) for e in progress)


# == session 3: the client's command line, cut and then redacted ===================================
LAUNCHER = """\
import json, os, subprocess, time
spec = json.loads(open(os.environ["E2E_LAUNCH_SPEC"]).read())
proc = subprocess.Popen(spec["argv"], env=spec["env"], cwd=spec["cwd"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
proc.stdin.write(json.dumps(spec["init"]).encode() + b"\\n"); proc.stdin.flush()
proc.stdout.readline()
proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\\n'); proc.stdin.flush()
deadline = time.monotonic() + 60
while not os.path.exists(spec["go"]) and time.monotonic() < deadline:
    time.sleep(0.05)  # the test reads the live store meanwhile
proc.stdin.close(); proc.stdout.read(); raise SystemExit(proc.wait(60))
"""
LAUNCH_CODE = "import os;exec(open(os.environ['E2E_LAUNCHER']).read())"
TOKEN_START = 180  # the command line is cut at 200: the token runs across the cut


@pytest.fixture(scope="module")
def launch_run(
    notary: Notary, everything_cmd: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Run:
    workdir = tmp_path_factory.mktemp("adversarial-launch")
    run = Run(store=workdir / "audit.db")
    token = ghp()
    head = " ".join([sys.executable, "-c", LAUNCH_CODE]) + " "
    padding = "p" * (TOKEN_START - len(head) - 1)
    assert len(padding) > 8, head
    argv = [sys.executable, "-c", LAUNCH_CODE, padding, token]
    assert " ".join(argv).index(token) == TOKEN_START
    (workdir / "launcher.py").write_text(LAUNCHER)
    go = workdir / "go"
    spec = {"argv": notary.wrap_argv(everything_cmd), "env": notary.env(run.store),
            "cwd": str(notary.home), "init": INIT, "go": str(go)}  # fmt: skip
    (workdir / "spec.json").write_text(json.dumps(spec))
    env = {**notary.env(), "E2E_LAUNCHER": str(workdir / "launcher.py"),
           "E2E_LAUNCH_SPEC": str(workdir / "spec.json")}  # fmt: skip
    with subprocess.Popen(argv, env=env, cwd=workdir, stderr=subprocess.PIPE) as proc:
        try:
            wait_for_events(notary, run.store, lambda evs: bool(calls_of(evs, "initialize")))
            live = raw_store(run.store, "live")  # wrap is still running
        finally:
            go.touch()
        proc.wait(90)
        stderr = proc.stderr.read() if proc.stderr else b""
    assert proc.returncode == 0, stderr.decode(errors="replace")[-2000:]
    random_part = token[4:]

    def lifecycle_start(events: list[Event]) -> list[Event]:
        return [
            e for e in events if e["kind"] == "lifecycle" and "parent_command" in json.dumps(e)
        ][:1]

    run.add("6", Case({f"token piece {i}": p for i, p in enumerate(pieces(random_part, 10))},
                      ("/details",), lifecycle_start))  # fmt: skip
    snapshot_outputs(run, notary, workdir, live)
    run.results["padding"] = padding
    return run


def test_6_parent_command_cut_then_redacted(launch_run: Run) -> None:
    located = launch_run.cases["6"].locate(launch_run.events)
    assert located, "no lifecycle event records the parent command"
    recorded = json.dumps(located[0]["details"])
    assert launch_run.results["padding"][:50] in recorded, "the launcher's command is not there"
    assert_cases(launch_run, ["6"])
    pointers = [f["pointer"] for f in located[0]["sensitive_fields"]]
    assert any("parent_command" in p for p in pointers), located[0]["sensitive_fields"]


# == session 4: mcp-notary proxy in front of server-everything's streamable HTTP (SSE) =============
PROTOCOL = "2025-11-25"


def sse_message(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer of a POST, from an SSE body (the last `data:` line) or a JSON body."""
    assert response.status_code == 200, (response.status_code, response.text[:500])
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [ln[5:].strip() for ln in response.text.splitlines() if ln.startswith("data:")]
        return json.loads([d for d in data if d][-1])
    return response.json()


def raw_http_calls(url: str, run: Run) -> None:
    """Case 8 over HTTP: a session by hand, then a call whose id is a token and a call of a tool
    named with a token."""
    headers = {"accept": "application/json, text/event-stream",
               "content-type": "application/json"}  # fmt: skip
    with httpx.Client(timeout=20, trust_env=False) as http:
        init = json.loads(json.dumps(INIT))
        first = http.post(url, json=init, headers=headers)
        assert "result" in sse_message(first)
        session = first.headers["mcp-session-id"]
        headers |= {"mcp-session-id": session, "mcp-protocol-version": PROTOCOL}
        sent = http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                         headers=headers)  # fmt: skip
        assert sent.status_code in (200, 202), sent.status_code
        token, marker = ghp(), "id-case-" + word()
        answer = http.post(url, json=raw_call(token, "echo", {"message": marker}), headers=headers)
        # the transport under test: the proxy relays server-everything's SSE answers
        assert answer.headers.get("content-type", "").startswith("text/event-stream"), answer
        reply = sse_message(answer)
        assert reply["id"] == token and marker in json.dumps(reply)

        def by_marker(events: list[Event]) -> list[Event]:
            return [e for e in requests(events, "tools/call")
                    if marker in json.dumps(e["arguments"])]  # fmt: skip

        run.add("8-id", Case(token_needles(token), ("/jsonrpc_id",), by_marker))
        token = ghp()
        reply = sse_message(
            http.post(url, json=raw_call(TOOL_TOKEN_ID, token, {}), headers=headers)
        )
        assert "error" in reply or reply["result"].get("isError"), reply
        run.add("8-tool", Case(token_needles(token), ("/tool",), by_id(TOOL_TOKEN_ID)))


async def drive_proxy(url: str, run: Run) -> int:
    """Cases 1 and 5 through the proxy with the SDK client; returns how many tools/call it made."""
    sampled: list[str] = []

    async def sampling(ctx: Any, p: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=sampled[-1]),
            model="e2e-adversarial", stop_reason="endTurn",
        )  # fmt: skip

    index = 0
    with anyio.fail_after(90):
        async with Client(url, mode="legacy", sampling_callback=sampling) as client:
            canary = "canary-" + word()
            run.results["canary"] = canary
            await client.call_tool("echo", {"message": canary})
            index += 1
            token = ghp()
            result = await client.call_tool("echo", {"message": repeated_key(token)})
            assert token in result.content[0].text
            run.add("1a", Case(token_needles(token), ("/arguments/message", "/response_summary"),
                               tool_call(index, "echo")))  # fmt: skip
            index += 1
            token = ghp()
            prompt = await client.get_prompt("args-prompt", {"city": repeated_key(token)})
            assert token in json.dumps(prompt.model_dump(mode="json"))
            run.add("1b", Case(token_needles(token), ("/arguments/city", "/response_summary"),
                               nth("prompts/get", 0)))  # fmt: skip
            token = ghp()
            sampled.append(repeated_key(token))
            result = await client.call_tool(
                "trigger-sampling-request", {"prompt": "hi", "maxTokens": 8}
            )
            assert token in result.content[0].text
            index += 1
            run.add("1c", Case(token_needles(token), ("/response_summary",),
                               nth("sampling/createMessage", 0, "server_to_client")))  # fmt: skip
            token = ghp()
            with contextlib.suppress(Exception):  # the error is the point
                await client.call_tool("get-sum", {"a": repeated_key(token), "b": 2})
            run.add("1e-wrong-type", Case(token_needles(token), ("/arguments/a",),
                                          tool_call(index, "get-sum")))  # fmt: skip
            index += 1
            for label, template in (
                ("x-prefix", "x{t}"), ("digit-prefix", "9{t}"),
                ("url-space", "redirect=%20{t}"), ("url-colon", "token%3A%20{t}"),
            ):  # fmt: skip
                token = ghp()
                await client.call_tool("echo", {"message": template.format(t=token)})
                run.add(f"5-{label}", Case(token_needles(token),
                                           ("/arguments/message", "/response_summary"),
                                           tool_call(index, "echo")))  # fmt: skip
                index += 1
            secret_word = word()
            await client.call_tool("echo", {"message": f"password%3D{secret_word}"})
            run.add("5-url-equals", Case({"password": secret_word},
                                         ("/arguments/message", "/response_summary"),
                                         tool_call(index, "echo")))  # fmt: skip
            index += 1
    return index


@pytest.fixture(scope="module")
def proxy_run(
    notary: Notary, everything_cmd: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Run:
    workdir = tmp_path_factory.mktemp("adversarial-proxy")
    run = Run(store=workdir / "audit.db")
    upstream_port, port = free_port(), free_port()
    with running([*everything_cmd, "streamableHttp"], upstream_port,
                 env={"PORT": str(upstream_port)}) as upstream:  # fmt: skip
        argv = proxy_argv(notary_argv(), upstream.url, port, run.store)
        with running(argv, port, env=notary.env()) as proxy:
            sdk_calls = anyio.run(drive_proxy, proxy.url, run)
            raw_http_calls(proxy.url, run)

            def settled(evs: list[Event]) -> bool:
                return len(requests(evs, "tools/call")) >= sdk_calls + 2

            wait_for_events(notary, run.store, settled)
            live = raw_store(run.store, "live")
    snapshot_outputs(run, notary, workdir, live)
    assert_canary(run, run.results["canary"])
    return run


@pytest.mark.parametrize(
    "case",
    ["1a", "1b", "1c", "1e-wrong-type", "5-x-prefix", "5-digit-prefix", "5-url-space",
     "5-url-colon", "5-url-equals", "8-id", "8-tool"],
)  # fmt: skip
def test_proxy_sse(proxy_run: Run, case: str) -> None:
    assert_cases(proxy_run, [case])
    if case.startswith("8-"):
        field = {"8-id": "jsonrpc_id", "8-tool": "tool"}[case]
        (event,) = proxy_run.cases[case].locate(proxy_run.events)
        assert is_marker(event[field]), f"stored {field}: {event[field]!r}"


def test_harness_finds_a_planted_leak(sdk_run: Run) -> None:
    """The scan is not vacuous: the canary (stored on purpose) is reported as a leak."""
    canary = sdk_run.results["canary"]
    leaks = find_leaks({"canary": canary}, sdk_run.haystacks)
    assert any("events --json" in leak for leak in leaks), leaks
    assert any("export ocsf" in leak or "export ecs" in leak for leak in leaks), leaks
