"""`--format ocsf` validated against the published OCSF schema: PyPI `ocsf-json-schema` ships
the schema.ocsf.io exports (1.8.0 included) and turns a class, with the profiles an event
declares in `metadata.profiles`, into a JSON Schema (draft 2020-12) that `jsonschema` checks:
types, enums, required attributes, constraints, and no attribute the class does not define.

The records come from `mcp-notary export` run as a real process over a real trail: `wrap`
around the real `mcp-server-time` (successful calls, tool and protocol errors, a malformed
line, lifecycle), a refused export and access changes (audit_access, denied and allowed),
and factory-built events of the kinds a stdio session does not produce (auth, integrity
alert, resource subscriptions, unclean shutdown...)."""

from __future__ import annotations

import copy
import json
import os
import pwd
from functools import cache
from pathlib import Path
from typing import Any

from e2e_notary import Notary
from e2e_rawclient import INIT, RawPipeClient
from export_events import stored_bodies, write_varied_store
from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from mcp_notary.export.mapping import OCSF_VERSION

ME = pwd.getpwuid(os.getuid()).pw_name


@cache
def _ocsf(version: str) -> OcsfJsonSchemaEmbedded:
    return OcsfJsonSchemaEmbedded(get_ocsf_schema(version=version))


@cache
def _validator(version: str, class_uid: int, profiles: tuple[str, ...]) -> Draft202012Validator:
    ocsf = _ocsf(version)
    schema = ocsf.get_class_schema(ocsf.lookup_class_name_from_uid(class_uid), list(profiles))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _siblings(version: str, class_uid: int) -> dict[str, tuple[str, dict[str, Any]]]:
    """`{id attribute: (its sibling name attribute, its enum)}` of the class."""
    raw = get_ocsf_schema(version=version)
    ocsf = _ocsf(version)
    attributes = raw["classes"][ocsf.lookup_class_name_from_uid(class_uid)]["attributes"]
    return {
        name: (attr["sibling"], attr["enum"])
        for name, attr in attributes.items()
        if attr.get("sibling") and attr.get("enum")
    }


def ocsf_problems(record: dict[str, Any]) -> list[str]:
    """Why `record` is not a valid OCSF event of its class, at the version and with the
    profiles it declares (empty if it is). Beyond the JSON Schema, two rules of the OCSF
    documentation: each enum id's sibling name (`class_name`, `type_name`, `activity_name`,
    `status`...) is the schema's caption for it, except for 99 (Other), whose name is the
    source's own; and `type_uid` is `class_uid * 100 + activity_id`."""
    version = record["metadata"]["version"]
    profiles = tuple(sorted(record["metadata"].get("profiles", [])))
    validator = _validator(version, record["class_uid"], profiles)
    problems = [
        f"/{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(record)
    ]
    for name, (sibling, enum) in _siblings(version, record["class_uid"]).items():
        value = record.get(name)
        if sibling in record and value != 99 and str(value) in enum:  # else: enum error above
            caption = enum[str(value)]["caption"]
            if record[sibling] != caption:
                problems.append(f"{sibling} {record[sibling]!r} is not {name}'s {caption!r}")
    if record.get("type_uid") != record["class_uid"] * 100 + record.get("activity_id", -1):
        problems.append("type_uid is not class_uid * 100 + activity_id")
    return problems


def wrap_session(notary: Notary, time_cmd: list[str], store: Path) -> None:
    """One `wrap` session around `mcp-server-time`: a successful call, a tool error (bad
    zone), a protocol error (unknown tool), tools/list, ping, and a line that is not JSON."""
    argv = notary.wrap_argv(time_cmd, store=store)
    with RawPipeClient(argv, notary.env(), cwd=notary.home) as client:
        client.request(INIT, timeout=60)
        client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        client.request({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        client.request({"jsonrpc": "2.0", "id": 2, "method": "ping"})
        for i, (tool, arguments) in enumerate(
            [
                ("get_current_time", {"timezone": "Europe/Paris"}),
                ("get_current_time", {"timezone": "Mars/Olympus_Mons"}),
                ("no_such_tool", {}),
            ],
            start=3,
        ):
            call = {"name": tool, "arguments": arguments}
            client.request({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": call})
        client.send_bytes(b'{"jsonrpc":"2.0","id":9,"method":"tools/call",\n')
        client.request({"jsonrpc": "2.0", "id": 10, "method": "ping"})
        client.close_stdin()
        assert client.wait(60) == 0, bytes(client.stderr[-2000:]).decode(errors="replace")


def test_every_exported_ocsf_record_is_valid_against_the_published_schema(
    notary: Notary, time_cmd: list[str], tmp_path: Path
) -> None:
    store = tmp_path / "audit.db"
    wrap_session(notary, time_cmd, store)
    grant = notary.run("access", "grant", ME, "admin", "--store", str(store))
    assert grant.returncode == 0, grant.stderr.decode()
    # admin alone may not read the trail: the export is refused, and the refusal recorded.
    refused = notary.run("export", "--format", "ocsf", "--store", str(store))
    assert refused.returncode != 0 and not refused.stdout, refused.stderr.decode()
    grant = notary.run("access", "grant", ME, "auditor", "--store", str(store))
    assert grant.returncode == 0, grant.stderr.decode()
    write_varied_store(store)

    out = tmp_path / "trail.ocsf.jsonl"
    proc = notary.run("export", "--format", "ocsf", "--to", str(out), "--store", str(store))
    assert proc.returncode == 0, proc.stderr.decode()
    records = [json.loads(line) for line in out.read_bytes().splitlines()]

    problems = {
        f"{r['metadata']['log_name']}#{r['metadata']['sequence']} ({r['api']['operation']})": p
        for r in records
        if (p := ocsf_problems(r))
    }
    assert problems == {}
    assert {r["metadata"]["version"] for r in records} == {OCSF_VERSION}
    assert sorted(r["metadata"]["uid"] for r in records) == sorted(
        b["event_id"] for b in stored_bodies(str(store))
    )
    # The trail had what the issue asks for, so every branch of the mapping was validated.
    shapes = {(r["unmapped"]["mcp_notary"]["kind"], r.get("status_detail")) for r in records}
    assert {
        ("call", "success"),
        ("call", "tool_error"),
        ("call", "protocol_error"),
        ("call", "denied"),
        ("audit_access", "denied"),
        ("audit_access", "success"),
        ("auth", "denied"),
        ("anomaly", None),
        ("lifecycle", None),
        ("integrity_alert", None),
    } <= shapes, shapes
    real = [r for r in records if r["metadata"]["log_name"] != "varied"]
    real_kinds = {r["unmapped"]["mcp_notary"]["kind"] for r in real}
    assert {"call", "anomaly", "lifecycle", "audit_access"} <= real_kinds, real_kinds
    assert {r["activity_id"] for r in records} == {1, 2, 4, 99}
    assert {r["severity_id"] for r in records} == {1, 2, 3, 5}
    assert {r["status_id"] for r in records} == {0, 1, 2}


def _valid_record(tmp_path: Path, notary: Notary) -> dict[str, Any]:
    store = tmp_path / "audit.db"
    write_varied_store(store)
    proc = notary.run("export", "--format", "ocsf", "--store", str(store))
    assert proc.returncode == 0, proc.stderr.decode()
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    record: dict[str, Any] = next(r for r in records if r.get("status_code") == "-32602")
    assert ocsf_problems(record) == [], ocsf_problems(record)
    return record


def test_the_schema_check_refuses_what_ocsf_does_not_allow(notary: Notary, tmp_path: Path) -> None:
    """The validation has teeth: each of these edits of a valid record is reported."""
    valid = _valid_record(tmp_path, notary)

    def broken(edit: Any) -> list[str]:
        record = copy.deepcopy(valid)
        edit(record)
        return ocsf_problems(record)

    assert broken(lambda r: r.update(mcp_tool="get_time"))  # not an API Activity attribute
    assert broken(lambda r: r.update(type_uid=600305))  # no such activity
    assert broken(lambda r: r.pop("actor"))  # required
    assert broken(lambda r: r.update(time=r["time_dt"]))  # a timestamp_t is epoch ms
    assert broken(lambda r: r["api"]["response"].update(code="-32602"))  # an integer
    assert broken(lambda r: r["metadata"].update(profiles=[]))  # time_dt needs `datetime`
    assert broken(lambda r: r.update(type_name="API Activity: Read"))  # not 600399's name
    assert broken(lambda r: r["src_endpoint"].clear())  # an endpoint needs one identifier
    assert broken(lambda r: r.update(activity_id=2, activity_name="Read"))  # type_uid 600399
