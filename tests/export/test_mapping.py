"""The pure mappings: each format's required fields and escaping, checked field by field and
by parsing the rendered record back."""

from __future__ import annotations

import json
import re
from typing import Any

from factories import event
from syslog_wire import SYSLOG

from mcp_notary.export.mapping import (
    FORMATS,
    ecs_record,
    epoch_ms,
    hec_record,
    ocsf_activity,
    ocsf_record,
    to_cef,
    to_leef,
    to_syslog,
)
from mcp_notary.ledger.canonical import canonical_bytes

EVENT_ID = "018bcfe5-68fa-73fd-aea1-f8ce6ecde8c2"


def stored(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = event("get_time", "alice", 1_700_000_000.25).body("host/1/abc", 7)
    body.update({"event_id": EVENT_ID, **changes})
    return json.loads(canonical_bytes(body))


def test_every_format_renders_every_kind_of_event() -> None:
    samples = [
        stored(),
        stored(kind="lifecycle", method=None, tool=None, details={"phase": "started"}),
        stored(outcome="tool_error", error={"code": -32000, "message": "boom | = \\ \n"}),
        stored(kind="integrity_alert", method=None, tool=None, outcome=None),
    ]
    for name, fmt in FORMATS.items():
        for sample in samples:
            out = fmt(sample)
            assert isinstance(out, bytes) and b"\n" not in out, name


def test_ocsf_api_activity_has_the_required_attributes() -> None:
    record = ocsf_record(stored(error={"code": -32602, "message": "bad"}, outcome="tool_error"))
    assert record["class_uid"] == 6003 and record["category_uid"] == 6
    assert record["type_uid"] == 600300 + record["activity_id"] == 600399
    for required in ("actor", "api", "src_endpoint", "time", "severity_id", "metadata"):
        assert required in record
    assert record["api"]["operation"] == "tools/call"
    assert record["metadata"]["product"]["name"] == "mcp-notary"
    assert record["metadata"]["uid"] == stored()["event_id"]
    assert record["metadata"]["sequence"] == 7
    assert record["time"] == 1_700_000_000_250
    assert record["status_id"] == 2 and record["status_code"] == "-32602"
    assert record["resources"] == [{"name": "get_time", "type": "mcp.tool"}]
    assert record["actor"]["user"]["uid"] == "alice"


def test_ocsf_activity_follows_the_method() -> None:
    assert ocsf_activity("tools/list") == 2
    assert ocsf_activity("resources/read") == 2
    assert ocsf_activity("resources/subscribe") == 1
    assert ocsf_activity("resources/unsubscribe") == 4
    assert ocsf_activity("tools/call") == 99
    assert ocsf_activity(None) == 99


def test_ecs_fields() -> None:
    record = ecs_record(stored(duration_ms=1.5))
    assert record["@timestamp"] == "2023-11-14T22:13:20.250000Z"
    assert record["event"]["id"] == stored()["event_id"]
    assert record["event"]["category"] == ["api"] and record["event"]["type"] == ["access"]
    assert record["event"]["outcome"] == "success" and record["event"]["duration"] == 1_500_000
    assert record["user"]["id"] == "alice" and record["gen_ai"]["tool"]["name"] == "get_time"
    denied = ecs_record(stored(outcome="denied"))
    assert denied["event"]["type"] == ["denied"] and denied["event"]["outcome"] == "failure"


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """Split a CEF line back into its 7 header fields and its extension (unescaped)."""
    header: list[str] = []
    field, i = "", 0
    while len(header) < 7:
        c = line[i]
        if c == "\\":
            field += line[i + 1]
            i += 2
            continue
        if c == "|":
            header.append(field)
            field = ""
        else:
            field += c
        i += 1
    ext = line[i:]
    pairs = re.findall(r"(\w+)=((?:[^\\= ]|\\.| (?!\w+=))*)", ext)
    unescape = {"\\\\": "\\", "\\=": "=", "\\n": "\n", "\\r": "\r"}
    values = {k: re.sub(r"\\[\\=nr]", lambda m: unescape[m.group(0)], v) for k, v in pairs}
    return header, values


def test_cef_escapes_and_parses_back() -> None:
    tricky = "a|b=c\\d\ne"
    line = to_cef(stored(tool=tricky)).decode()
    header, ext = parse_cef(line)
    assert header[0] == "CEF:0" and header[1:3] == ["mcp-notary", "mcp-notary"]
    assert header[4] == "call:tools/call" and header[6] == "1"
    assert ext["cs1"] == tricky and ext["cs1Label"] == "mcpTool"
    assert ext["externalId"] == stored()["event_id"] and ext["cn1"] == "7"
    assert ext["rt"] == str(epoch_ms(stored()["timestamp"]))


def test_leef_is_tab_delimited() -> None:
    line = to_leef(stored()).decode()
    assert line.startswith("LEEF:2.0|mcp-notary|mcp-notary|")
    attributes = dict(a.split("=", 1) for a in line.split("|", 5)[5].split("\t"))
    assert attributes["usrName"] == "alice" and attributes["mcpSeq"] == "7"


def test_syslog_is_rfc5424() -> None:
    body = stored(tool='quote " and ] bracket')
    match = SYSLOG.match(to_syslog(body, "host-1"))
    assert match is not None
    assert int(match["pri"]) == 13 * 8 + 6
    assert match["ts"].decode() == body["timestamp"] and match["host"] == b"host-1"
    assert match["msgid"] == b"call"
    assert json.loads(match["msg"]) == body
    alert = SYSLOG.match(to_syslog(stored(kind="integrity_alert", outcome=None)))
    assert alert is not None and int(alert["pri"]) == 13 * 8 + 2


def test_hec_event_envelope() -> None:
    record = hec_record(stored(), host="h", index="audit")
    assert record["time"] == 1_700_000_000.25 and record["event"] == stored()
    assert record["sourcetype"] == "mcp:notary:audit" and record["index"] == "audit"
    assert record["fields"]["event_id"] == stored()["event_id"]
