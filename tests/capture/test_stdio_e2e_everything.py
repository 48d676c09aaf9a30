"""@modelcontextprotocol/server-everything (npm, legacy era) behind `mcp-notary wrap`, driven by
the official `mcp` 2.x Python client with sampling, elicitation and progress callbacks.

Checks that server-to-client requests and notifications are recorded with their direction and
linked to the call in flight, and that payloads that must never reach the store (a base64 image, a
credential in the server's environment) are absent from the raw database files.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from e2e_notary import (
    Notary,
    assert_started_and_stopped,
    assert_well_formed,
    calls,
    contains_value,
    fake_aws_key_id,
    fake_aws_secret,
    single_stream,
    store_bytes,
    teed_argv,
)
from e2e_wire import CLIENT_TO_SERVER, SERVER_TO_CLIENT, exchanges, notifications, same_id
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

pytestmark = pytest.mark.timeout(120)

REQUIRED_TOOLS = {
    "echo",
    "get-structured-content",
    "get-tiny-image",
    "get-env",
    "trigger-long-running-operation",
    "trigger-sampling-request",
    "trigger-elicitation-request",
}


@dataclass
class EverythingRun:
    store: Path
    workdir: Path
    aws_key_id: str
    aws_secret: str
    argument_key_id: str
    echo_marker: str
    sampled_marker: str
    elicited_name: str
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: dict[str, types.CallToolResult] = field(default_factory=dict)
    progress: list[tuple[float, float | None]] = field(default_factory=list)
    sampling_requests: list[types.CreateMessageRequestParams] = field(default_factory=list)
    elicitation_requests: list[types.ElicitRequestParams] = field(default_factory=list)
    image_data: str = ""
    client_bytes: bytes = b""
    server_bytes: bytes = b""
    events: list[dict[str, Any]] = field(default_factory=list)
    events_json: bytes = b""

    def stream(self) -> list[dict[str, Any]]:
        return single_stream(self.events)

    def tool_call(self, tool: str) -> dict[str, Any]:
        """The call event of `tool` (for echo: the first of its two calls)."""
        found = [e for e in calls(self.stream(), "tools/call") if e["tool"] == tool]
        assert len(found) == (2 if tool == "echo" else 1), f"call events for {tool}: {found}"
        return found[0]


async def drive_everything(params: StdioServerParameters, run: EverythingRun) -> None:
    async def sampling(
        ctx: Any, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        run.sampling_requests.append(params)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=run.sampled_marker),
            model="e2e-test-model",
            stop_reason="endTurn",
        )

    async def elicitation(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        run.elicitation_requests.append(params)
        return types.ElicitResult(action="accept", content={"name": run.elicited_name})

    async def progress(value: float, total: float | None, message: str | None) -> None:
        run.progress.append((value, total))

    with anyio.fail_after(60):
        async with Client(
            params,
            mode="legacy",
            client_info=types.Implementation(name="e2e-everything-client", version="0.0.1"),
            sampling_callback=sampling,
            elicitation_callback=elicitation,
        ) as client:
            listed = await client.list_tools()
            run.schemas = {t.name: t.input_schema for t in listed.tools}
            missing = REQUIRED_TOOLS - set(run.schemas)
            assert not missing, f"server-everything no longer lists {missing}"

            def props(tool: str) -> dict[str, Any]:
                return run.schemas[tool].get("properties", {})

            assert "message" in props("echo")
            run.results["echo"] = await client.call_tool("echo", {"message": run.echo_marker})
            run.results["echo-secret"] = await client.call_tool(
                "echo", {"message": f"deploy with AWS_ACCESS_KEY_ID={run.argument_key_id}"}
            )
            location = props("get-structured-content")["location"]["enum"][0]
            run.results["get-structured-content"] = await client.call_tool(
                "get-structured-content", {"location": location}
            )
            run.results["get-tiny-image"] = await client.call_tool("get-tiny-image", {})
            run.results["get-env"] = await client.call_tool("get-env", {})
            assert {"duration", "steps"} <= set(props("trigger-long-running-operation"))
            run.results["trigger-long-running-operation"] = await client.call_tool(
                "trigger-long-running-operation",
                {"duration": 1, "steps": 3},
                progress_callback=progress,
            )
            assert {"prompt", "maxTokens"} <= set(props("trigger-sampling-request"))
            run.results["trigger-sampling-request"] = await client.call_tool(
                "trigger-sampling-request", {"prompt": "say hi", "maxTokens": 16}
            )
            run.results["trigger-elicitation-request"] = await client.call_tool(
                "trigger-elicitation-request", {}
            )


@pytest.fixture(scope="module")
def everything_run(
    notary: Notary, everything_cmd: list[str], tmp_path_factory: pytest.TempPathFactory
) -> EverythingRun:
    workdir = tmp_path_factory.mktemp("everything")
    run = EverythingRun(
        store=workdir / "audit.db",
        workdir=workdir,
        aws_key_id=fake_aws_key_id(),
        aws_secret=fake_aws_secret(),
        argument_key_id=fake_aws_key_id(),
        echo_marker="echo-marker-" + "".join(random.choices(string.ascii_lowercase, k=12)),
        sampled_marker="sampled-reply-" + "".join(random.choices(string.ascii_lowercase, k=12)),
        elicited_name="Ada " + "".join(random.choices(string.ascii_lowercase, k=10)),
    )
    wrap = notary.wrap_params(
        everything_cmd,
        run.store,
        extra_env={"AWS_ACCESS_KEY_ID": run.aws_key_id, "AWS_SECRET_ACCESS_KEY": run.aws_secret},
    )
    argv = teed_argv([wrap.command, *wrap.args], workdir, "client")
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=wrap.env, cwd=wrap.cwd)
    anyio.run(drive_everything, params, run)
    run.client_bytes = (workdir / "client.in").read_bytes()
    run.server_bytes = (workdir / "client.out").read_bytes()
    image = [c for c in run.results["get-tiny-image"].content if isinstance(c, types.ImageContent)]
    assert image, "get-tiny-image returned no image block"
    run.image_data = image[0].data
    run.events_json = notary.events_raw(run.store).stdout
    run.events = notary.events(run.store)
    return run


# -- the session worked ----------------------------------------------------------------------------
def test_client_results_through_wrap(everything_run: EverythingRun) -> None:
    r = everything_run.results
    assert r["echo"].content[0].text == f"Echo: {everything_run.echo_marker}"
    assert isinstance(r["get-structured-content"].structured_content, dict)
    assert len(everything_run.image_data) > 1000
    env_text = r["get-env"].content[0].text
    assert everything_run.aws_key_id in env_text, "the fake credential did not reach the server"
    assert everything_run.aws_secret in env_text
    assert [p for p, _ in everything_run.progress] == [1.0, 2.0, 3.0]
    assert len(everything_run.sampling_requests) == 1
    assert everything_run.sampled_marker in r["trigger-sampling-request"].content[0].text
    assert len(everything_run.elicitation_requests) == 1
    assert any(
        everything_run.elicited_name in c.text for c in r["trigger-elicitation-request"].content
    )
    assert not any(res.is_error for res in r.values())


# -- events ----------------------------------------------------------------------------------------
def test_every_exchange_recorded_once_in_both_directions(everything_run: EverythingRun) -> None:
    stream = everything_run.stream()
    assert_well_formed(stream)
    assert_started_and_stopped(stream)
    call_events = calls(stream)
    wire = exchanges(everything_run.client_bytes, everything_run.server_bytes)
    server_requests = [x for x in wire if x.direction == SERVER_TO_CLIENT]
    assert {x.method for x in server_requests} >= {"sampling/createMessage", "elicitation/create"}
    for exchange in wire:
        matching = [
            e
            for e in call_events
            if same_id(e["jsonrpc_id"], exchange.id)
            and e["method"] == exchange.method
            and e["direction"] == exchange.direction
        ]
        assert len(matching) == 1, (
            f"{exchange.direction} {exchange.method} id={exchange.id!r}: "
            f"{len(matching)} call events"
        )
        assert matching[0]["outcome"] == exchange.expected_outcome, (exchange, matching[0])
    assert len(call_events) == len(wire)
    # server-everything numbers its own requests from 0 and so does nobody else here, but the
    # Python client's `initialize` is id 1 too: pairing must be per direction.
    assert any(x.direction == CLIENT_TO_SERVER and x.id == 1 for x in wire)


def test_tool_call_events(everything_run: EverythingRun) -> None:
    for tool in everything_run.results:
        if tool == "echo-secret":
            continue
        event = everything_run.tool_call(tool)
        assert event["outcome"] == "success", event
        assert event["direction"] == "client_to_server"
        assert event["protocol_version"] == "2025-11-25"
        assert event["client"] == {"name": "e2e-everything-client", "version": "0.0.1"}
        assert event["server"]["name"] == "mcp-servers/everything", event["server"]
        assert event["principal"]["source"] == "os"
    echo = everything_run.tool_call("echo")
    assert contains_value(echo["arguments"], "message"), echo["arguments"]


def test_progress_notifications_linked_to_call(everything_run: EverythingRun) -> None:
    stream = everything_run.stream()
    call = everything_run.tool_call("trigger-long-running-operation")
    progress = [
        e for e in stream if e["kind"] == "notification" and e["method"] == "notifications/progress"
    ]
    on_wire = [
        n
        for n in notifications(everything_run.server_bytes)
        if n["method"] == "notifications/progress"
    ]
    assert len(on_wire) == 3
    assert len(progress) == len(on_wire), progress
    for event in progress:
        assert event["direction"] == "server_to_client", event
        assert event["parent_event_id"] == call["event_id"], (
            f"progress notification not linked to its call: parent {event['parent_event_id']}, "
            f"call {call['event_id']}"
        )


def test_other_notifications_recorded(everything_run: EverythingRun) -> None:
    stream = everything_run.stream()
    for direction, data in (
        ("server_to_client", everything_run.server_bytes),
        ("client_to_server", everything_run.client_bytes),
    ):
        wire_methods = sorted(n["method"] for n in notifications(data))
        recorded = sorted(
            e["method"]
            for e in stream
            if e["kind"] == "notification" and e["direction"] == direction
        )
        assert recorded == wire_methods, (direction, recorded, wire_methods)


@pytest.mark.parametrize(
    ("server_method", "tool"),
    [
        ("sampling/createMessage", "trigger-sampling-request"),
        ("elicitation/create", "trigger-elicitation-request"),
    ],
)
def test_server_to_client_request_linked_to_call_in_flight(
    everything_run: EverythingRun, server_method: str, tool: str
) -> None:
    stream = everything_run.stream()
    call = everything_run.tool_call(tool)
    nested = [e for e in calls(stream, server_method)]
    assert len(nested) == 1, nested
    event = nested[0]
    assert event["direction"] == "server_to_client"
    assert event["outcome"] == "success"
    assert event["tool"] is None
    assert event["parent_event_id"] == call["event_id"], (
        f"{server_method} not linked to {tool}: "
        f"parent {event['parent_event_id']}, call {call['event_id']}"
    )


# -- what must never be stored ---------------------------------------------------------------------
def _absent(run: EverythingRun, needle: str, label: str) -> None:
    raw = store_bytes(run.store)
    assert raw, "store files are empty"
    assert needle.encode() not in raw, f"{label} found in the raw store files"
    assert needle.encode() not in run.events_json, f"{label} found in `events --json` output"


def test_image_base64_not_stored(everything_run: EverythingRun) -> None:
    data = everything_run.image_data
    _absent(everything_run, data, "the whole image base64")
    middle = len(data) // 2
    _absent(everything_run, data[middle : middle + 64], "a 64-char chunk of the image base64")
    event = everything_run.tool_call("get-tiny-image")
    assert event["outcome"] == "success"


def test_environment_secrets_not_stored(everything_run: EverythingRun, notary: Notary) -> None:
    _absent(everything_run, everything_run.aws_key_id, "the AWS access key id from get-env")
    _absent(everything_run, everything_run.aws_secret, "the AWS secret access key from get-env")
    event = everything_run.tool_call("get-env")
    # absent because it was found and redacted, not merely cut off by a length limit
    assert event["sensitive_fields"], "get-env result: nothing reported as redacted"
    shown = notary.run("show", event["event_id"], store=everything_run.store)
    assert shown.returncode == 0, shown.stderr.decode()
    assert everything_run.aws_key_id.encode() not in shown.stdout
    # show/events may append audit-of-audit records: look again afterwards
    _absent(everything_run, everything_run.aws_key_id, "the AWS access key id (after show)")


def test_secret_in_arguments_redacted(everything_run: EverythingRun) -> None:
    secret = everything_run.argument_key_id
    assert secret in everything_run.results["echo-secret"].content[0].text  # it did flow
    _absent(everything_run, secret, "an AWS access key id sent as a tool argument")
    echoes = [e for e in calls(everything_run.stream(), "tools/call") if e["tool"] == "echo"]
    event = echoes[1]
    assert contains_value(event["arguments"], "message"), event["arguments"]
    pointers = [f["pointer"] for f in event["sensitive_fields"]]
    assert any(p.startswith("/arguments") for p in pointers), event["sensitive_fields"]
    assert all(secret not in json.dumps(f) for f in event["sensitive_fields"])


def test_elicited_user_input_not_recorded_verbatim(everything_run: EverythingRun) -> None:
    # What a user types into an elicitation form is payload, not audit metadata
    # (research/mcp-protocol.md section 8: redact inputResponses and elicitation payloads). Here
    # the form asked for "Your full, legal name".
    (event,) = calls(everything_run.stream(), "elicitation/create")
    name = everything_run.elicited_name
    assert not contains_value(event["response_summary"], name), event["response_summary"]
    assert not contains_value(event["arguments"], name), event["arguments"]


def test_verify_exits_zero(everything_run: EverythingRun, notary: Notary) -> None:
    proc = notary.verify(everything_run.store)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
