"""Compliance reports on a real trail (`wrap` around the real `mcp-server-time`, roles granted
through the read side), then on copies with known gaps injected at store level. Each
template's report must flag exactly the clauses whose checks those gaps break.

The gaps:
- missing principal: a second capture stream, written through the real recorder and signed
  like any other, records a `tools/call` whose principal is unknown (id "", type unknown)
  and has no tool name: a capture path that could not identify its caller.
- unaudited read: an API token inserted straight into `access_tokens` (insert-only, so no
  trigger stops it) with an `event_id` that names no `audit_access` event: a credential to
  read the trail issued around the audited path.
- chain break: the append-only triggers dropped and one stored call's bytes edited.
"""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_notary import Notary, drop_append_only_triggers
from e2e_rawclient import RawPipeClient
from readside_trail import run_trail

from mcp_notary.access.audit import ReadAuditor
from mcp_notary.access.control import AccessDenied, Caller
from mcp_notary.access.readside import open_read_side
from mcp_notary.compliance.evidence import EvidenceOptions
from mcp_notary.compliance.report import generate, pdf_available, render_html
from mcp_notary.compliance.templates import CheckSpec, Template, load_template, template_names
from mcp_notary.events.model import Principal
from mcp_notary.ledger.checkpointer import CheckpointSettings, KeySigner
from mcp_notary.ledger.keys import load_or_create_signing_key, load_trusted_keys
from mcp_notary.ledger.stores import open_store

pytestmark = pytest.mark.timeout(240)
ME = pwd.getpwuid(os.getuid()).pw_name
FROM = "2000-01-01T00:00:00.000000Z"
ALL = template_names()
GAP_CHECKS = {
    "missing_principal": {"field_completeness"},
    "unaudited_read": {"reads_audited"},
    "chain_break": {"chain_verified"},
}


def _key(notary: Notary) -> Path:
    return notary.home / ".local/share/mcp-notary/checkpoint.key"


def _to() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(scope="module")
def base(notary: Notary, time_cmd: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("compliance") / "base.db"
    run_trail(notary, time_cmd, store, 30)
    side = open_read_side(
        str(store),
        process_principal=Principal("test-setup", "service", "config"),
        interface="cli",
        label="test setup",
        signing_key=_key(notary),
    )
    try:
        admin = Caller(Principal("ops", "user", "config"), frozenset({"admin"}), "os")
        for principal, role in (("ops", "admin"), ("assessor", "auditor"), (ME, "auditor")):
            side.control.grant(admin, principal, role, "cli", "compliance test setup")
    finally:
        side.close()
    return store


def _copy(base: Path, dest: Path) -> Path:
    src, dst = sqlite3.connect(base), sqlite3.connect(dest)
    src.backup(dst)
    src.close()
    dst.close()
    return dest


def missing_principal(store: Path, notary: Notary) -> None:
    ledger = open_store(str(store))
    nobody = Principal("", "unknown", "none")
    settings = CheckpointSettings(KeySigner(load_or_create_signing_key(_key(notary))))
    auditor = ReadAuditor.for_store(
        ledger,
        process_principal=nobody,
        interface="cli",
        label="unidentified proxy",
        checkpointing=settings,
    )
    recorder = auditor.recorder
    recorder.start(announce=True)
    recorder.record_event(
        "call", {"request_bytes": 42}, method="tools/call", outcome="success"
    ).result(30)
    recorder.close("test")
    ledger.close()


def unaudited_read(store: Path, notary: Notary) -> None:
    db = sqlite3.connect(store)
    with db:
        db.execute(
            "INSERT INTO access_tokens VALUES (?, ?, ?, ?, ?, NULL, ?, ?)",
            (
                "0badc0ffee00",
                "mallory",
                "side door",
                "$argon2id$v=19$m=1,t=1,p=1$AA$AA",
                datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "mallory",
                "019a0000-0000-7000-8000-000000000000",
            ),
        )
    db.close()


def chain_break(store: Path, notary: Notary) -> None:
    db = sqlite3.connect(store, isolation_level=None)
    drop_append_only_triggers(db)
    rowid, body = db.execute(
        "SELECT rowid, body FROM events WHERE kind = 'call' AND tool = 'get_current_time' "
        "ORDER BY rowid LIMIT 1"
    ).fetchone()
    edited = bytes(body).replace(b'"timezone":"', b'"timezone":"X', 1)
    assert edited != bytes(body)
    db.execute("UPDATE events SET body = ? WHERE rowid = ?", (edited, rowid))
    db.close()


GAPS: dict[str, Callable[[Path, Notary], None]] = {
    "missing_principal": missing_principal,
    "unaudited_read": unaudited_read,
    "chain_break": chain_break,
}


def run_report(
    store: Path, notary: Notary, names: list[str] | list[Template], principal: str = "assessor"
) -> dict[str, Any]:
    templates = [load_template(n) if isinstance(n, str) else n for n in names]
    side = open_read_side(
        str(store),
        process_principal=Principal(principal, "user", "config"),
        interface="cli",
        label="compliance report",
        signing_key=_key(notary),
    )
    try:
        caller = side.control.local_caller(Principal(principal, "user", "config"))
        keys = load_trusted_keys(_key(notary).with_suffix(".vkey"))
        options = EvidenceOptions(FROM, _to(), keys)
        return generate(side, caller, templates, options, purpose="assessment 2026")
    finally:
        side.close()


def failed(model: dict[str, Any]) -> dict[str, set[str]]:
    return {t["name"]: set(t["failed_clauses"]) for t in model["templates"]}


def expected(gaps: list[str]) -> dict[str, set[str]]:
    checks = set().union(*(GAP_CHECKS[g] for g in gaps)) if gaps else set()
    out = {}
    for name in ALL:
        out[name] = {c.clause for c in load_template(name).checks if c.check in checks}
    return out


def test_clean_trail_passes_every_clause_and_the_report_is_an_audited_read(
    base: Path, notary: Notary, tmp_path: Path
) -> None:
    store = _copy(base, tmp_path / "audit.db")
    model = run_report(store, notary, ALL)
    assert failed(model) == {n: set() for n in ALL}, json.dumps(
        [c for t in model["templates"] for c in t["clauses"] if c["result"]["status"] == "fail"],
        indent=1,
    )
    assert model["verification"]["result"] == "intact"
    by_check = {c["check"]: c["result"] for t in model["templates"] for c in t["clauses"]}
    assert by_check["field_completeness"]["population"] == 31  # initialize + 30 tools/call
    assert by_check["reads_audited"]["population"] == 3  # the three grants
    assert by_check["retention_oldest_event"]["status"] == "not_applicable"  # young trail
    assert by_check["redaction_in_force"]["status"] == "pass"
    assert model["access_review"]["roles_at_end"] == {
        "assessor": ["auditor"],
        ME: ["auditor"],
        "ops": ["admin"],
    }
    # The report's own generation is in the ledger, as the assessor, before it was returned.
    record = model["generation_record"]
    db = sqlite3.connect(store)
    (body,) = db.execute(
        "SELECT body FROM events WHERE event_id = ?", (record["event_id"],)
    ).fetchone()
    db.close()
    event = json.loads(body)
    assert event["kind"] == "audit_access" and event["method"] == "audit/report"
    assert event["principal"]["id"] == "assessor" and event["outcome"] == "success"
    assert event["details"]["purpose"] == "assessment 2026"
    assert event["details"]["query"]["templates"] == ALL
    html = render_html(model)
    assert "http://" not in html and "https://" not in html  # self-contained
    assert record["event_id"] in html


@pytest.mark.parametrize(
    "gaps",
    [
        ["missing_principal"],
        ["unaudited_read"],
        ["chain_break"],
        ["missing_principal", "unaudited_read", "chain_break"],
    ],
    ids=lambda g: "+".join(g),
)
def test_each_template_flags_exactly_the_clauses_of_the_injected_gaps(
    base: Path, notary: Notary, tmp_path: Path, gaps: list[str]
) -> None:
    store = _copy(base, tmp_path / "audit.db")
    for gap in gaps:
        GAPS[gap](store, notary)
    model = run_report(store, notary, ALL)
    want = expected(gaps)
    assert all(want[n] for n in ALL), "every template maps each gap to at least one clause"
    assert failed(model) == want
    clauses = {c["check"]: c["result"] for t in model["templates"] for c in t["clauses"]}
    if "missing_principal" in gaps:
        (exc,) = clauses["field_completeness"]["exceptions"]
        assert {"principal", "tool"} <= set(exc["missing"]) and exc["principal"][
            "type"
        ] == "unknown"
    if "unaudited_read" in gaps:
        (exc,) = clauses["reads_audited"]["exceptions"]
        assert exc["token_id"] == "0badc0ffee00" and exc["record"] == "access_tokens"
    if "chain_break" in gaps:
        kinds = {e["kind"] for e in clauses["chain_verified"]["exceptions"]}
        assert "modified" in kinds


def test_a_role_without_reports_run_is_refused_and_the_refusal_recorded(
    base: Path, notary: Notary, tmp_path: Path
) -> None:
    store = _copy(base, tmp_path / "audit.db")
    with pytest.raises(AccessDenied):
        run_report(store, notary, ["soc2"], principal="ops")  # admin may not read reports
    db = sqlite3.connect(store)
    rows = db.execute(
        "SELECT principal_id, outcome FROM events WHERE kind = 'audit_access' "
        "AND method = 'audit/report'"
    ).fetchall()
    db.close()
    assert rows == [("ops", "denied")]


def test_cli_report_writes_html_json_and_pdf(base: Path, notary: Notary, tmp_path: Path) -> None:
    store = _copy(base, tmp_path / "audit.db")
    chain_break(store, notary)
    out = tmp_path / "report.html"
    proc = notary.run(
        "report",
        "--template",
        "pci-dss",
        "--from",
        "2000-01-01",
        "-o",
        str(out),
        "--purpose",
        "QSA visit",
        store=store,
    )
    assert proc.returncode == 1, proc.stderr.decode()  # a clause failed
    assert b"1 failed" in proc.stderr
    html = out.read_text()
    assert "10.3.2" in html and "Compliance evidence report" in html
    proc = notary.run("report", "--template", "pci-dss,gdpr", "--format", "json", store=store)
    assert proc.returncode == 1, proc.stderr.decode()
    model = json.loads(proc.stdout)
    assert failed(model) == {"pci-dss": {"10.3.2"}, "gdpr": {"Art. 32(1)(b) integrity"}}
    assert model["report"]["generated_by"]["id"] == ME
    if pdf_available():
        pdf = tmp_path / "report.pdf"
        proc = notary.run(
            "report",
            "--template",
            "soc2",
            "--format",
            "pdf",
            "-o",
            str(pdf),
            store=store,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr.decode()
        assert pdf.read_bytes().startswith(b"%PDF")


def test_anchor_receipts_are_listed_for_anchored_checkpoints(
    notary: Notary, time_cmd: list[str], tmp_path: Path
) -> None:
    store, anchor = tmp_path / "audit.db", tmp_path / "anchor"
    anchor.mkdir()
    argv = notary.wrap_argv(time_cmd, store=store, options=["--anchor", str(anchor)])
    with RawPipeClient(argv, notary.env(), cwd=notary.home) as client:
        params = {"name": "get_current_time", "arguments": {"timezone": "Asia/Tokyo"}}
        client.request({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}, 60)
        client.close_stdin()
        assert client.wait(60) == 0, bytes(client.stderr[-2000:]).decode(errors="replace")
    side = open_read_side(
        str(store),
        process_principal=Principal("assessor", "user", "config"),
        interface="cli",
        label="compliance report",
        signing_key=_key(notary),
    )
    try:
        caller = side.control.local_caller(Principal("assessor", "user", "config"))
        keys = load_trusted_keys(_key(notary).with_suffix(".vkey"))
        options = EvidenceOptions(FROM, _to(), keys, anchors=[str(anchor)])
        model = generate(side, caller, [load_template("pci-dss")], options)
    finally:
        side.close()
    assert model["checkpoints"], "the wrap stream was checkpointed"
    for checkpoint in model["checkpoints"]:
        (location,) = checkpoint["anchored_at"]
        assert Path(location).parent == anchor
        assert (anchor / Path(location).name).read_bytes().decode() == checkpoint["note"]
    # Nobody holds a role in this store (the local owner reads): the access review says so.
    assert failed(model) == {"pci-dss": {"10.3.1"}}


def test_a_crashed_wrap_is_an_undetected_failure_until_the_next_run_notices_it(
    notary: Notary, time_cmd: list[str], tmp_path: Path
) -> None:
    store = tmp_path / "audit.db"
    with RawPipeClient(
        notary.wrap_argv(time_cmd, store=store), notary.env(), cwd=notary.home
    ) as client:
        params = {"name": "get_current_time", "arguments": {"timezone": "Africa/Lagos"}}
        client.request({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}, 60)
        time.sleep(0.3)  # the batched writer commits within 10 ms
        client.kill_tree()  # kill -9: no stop record
    spec = CheckSpec(
        "10.7.2", "failures alerted", "pipeline_failures_alerted", {"grace_minutes": 0}
    )
    only = replace(load_template("pci-dss"), checks=(spec,))
    (clause,) = run_report(store, notary, [only])["templates"][0]["clauses"]
    assert clause["result"]["status"] == "fail"
    (silent,) = clause["result"]["exceptions"]
    run_trail(notary, time_cmd, store, 3)  # the next wrap notices the dead stream
    (clause,) = run_report(store, notary, [only])["templates"][0]["clauses"]
    assert clause["result"]["status"] == "pass", clause["result"]
    phases = sorted(e["phase"] for e in clause["result"]["sample"])
    assert phases == ["ended_uncleanly", "previous_run_unclean"]
    assert clause["result"]["details"]["crash_notices"] == [silent["stream"]]


def test_wrap_runs_with_the_config_init_writes_and_applies_its_redaction(
    notary: Notary, time_cmd: list[str], tmp_path: Path
) -> None:
    config, store = tmp_path / "mcp-notary.toml", tmp_path / "audit.db"
    proc = notary.run("init", "--template", "pci-dss", "-o", str(config))
    assert proc.returncode == 0, proc.stderr.decode()
    argv = notary.wrap_argv(time_cmd, store=store, options=["--config", str(config)])
    with RawPipeClient(argv, notary.env(), cwd=notary.home) as client:
        arguments = {"timezone": "Asia/Tokyo", "cvv": "737"}  # SAD under a shapeless name
        params = {"name": "get_current_time", "arguments": arguments}
        client.request({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}, 60)
        client.close_stdin()
        assert client.wait(60) == 0, bytes(client.stderr[-2000:]).decode(errors="replace")
    db = sqlite3.connect(store)
    (body,) = db.execute("SELECT body FROM events WHERE tool = 'get_current_time'").fetchone()
    db.close()
    event = json.loads(body)
    assert event["arguments"]["timezone"] == "Asia/Tokyo"
    assert event["arguments"]["cvv"].startswith("[REDACTED:sensitive:")
    assert {"pointer": "/arguments/cvv", "kind": "sensitive"}.items() <= next(
        f for f in event["sensitive_fields"] if f["pointer"] == "/arguments/cvv"
    ).items()
