"""Compliance reports on a real trail (`wrap` around the real `mcp-server-time`, roles granted
through the read side), then on copies with known gaps injected at store level. Each
template's report must flag exactly the clauses whose checks those gaps break.

Every report test runs on both backends: a copy of the trail in a SQLite file, and the same
trail copied (same bytes, hashes, ids and times) into a fresh PostgreSQL schema; on the same
trail the two reports are equal but for when and where they were made.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from e2e_notary import Notary, drop_append_only_triggers
from e2e_rawclient import RawPipeClient
from pgtest import pg_schema
from readside_trail import run_trail
from store_copy import copy_sqlite_file, copy_trail

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
BACKENDS = ["sqlite", "postgres"]
# When the side-door token was issued: fixed, so that the same gap is the same on both backends.
SIDE_DOOR_AT = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
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


@dataclass
class Store:
    """A store under test: a SQLite file or a postgresql:// URL, and raw access to it (the
    attacker's, below the audited read side)."""

    url: str

    @property
    def postgres(self) -> bool:
        return self.url.startswith("postgresql://")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of `sql` (placeholders `?`)."""
        if self.postgres:
            with psycopg.connect(self.url, autocommit=True) as db:
                cur = db.execute(sql.replace("?", "%s").encode(), params)
                return cur.fetchall() if cur.description is not None else []
        db = sqlite3.connect(self.url, isolation_level=None)  # autocommit, as above
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def tamper(self, sql: str, params: tuple[Any, ...]) -> None:
        """Run `sql` (placeholders `?`) with the append-only guards out of the way."""
        if self.postgres:
            with psycopg.connect(self.url, autocommit=True) as db:
                db.execute("SET session_replication_role = replica")  # no triggers fire
                db.execute(sql.replace("?", "%s").encode(), params)
            return
        db = sqlite3.connect(self.url, isolation_level=None)
        try:
            drop_append_only_triggers(db)
            db.execute(sql, params)
        finally:
            db.close()


@contextmanager
def copied(base: Path, backend: str, tmp_path: Path) -> Iterator[Store]:
    """A private copy of the base trail on `backend`."""
    if backend == "postgres":
        with pg_schema("report") as url:
            copy_trail(str(base), url)
            yield Store(url)
        return
    copy_sqlite_file(base, tmp_path / "audit.db")
    yield Store(str(tmp_path / "audit.db"))


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, base: Path, tmp_path: Path) -> Iterator[Store]:
    with copied(base, request.param, tmp_path) as copy:
        yield copy


def missing_principal(store: Store, notary: Notary) -> None:
    ledger = open_store(store.url)
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


def unaudited_read(store: Store, notary: Notary) -> None:
    # Insert-only: no trigger stops an INSERT, so no guard needs to be moved out of the way.
    store.query(
        "INSERT INTO access_tokens (token_id, principal, name, secret_hash, created_at, "
        "expires_at, actor, event_id) VALUES (?, ?, ?, ?, ?, NULL, ?, ?)",
        (
            "0badc0ffee00",
            "mallory",
            "side door",
            "$argon2id$v=19$m=1,t=1,p=1$AA$AA",
            SIDE_DOOR_AT,
            "mallory",
            "019a0000-0000-7000-8000-000000000000",
        ),
    )


def chain_break(store: Store, notary: Notary) -> None:
    ((stream, seq, body),) = store.query(
        "SELECT stream, seq, body FROM events WHERE kind = 'call' AND tool = 'get_current_time' "
        "ORDER BY timestamp, stream, seq LIMIT 1"
    )
    edited = bytes(body).replace(b'"timezone":"', b'"timezone":"X', 1)
    assert edited != bytes(body)
    store.tamper("UPDATE events SET body = ? WHERE stream = ? AND seq = ?", (edited, stream, seq))
    ((stored,),) = store.query(
        "SELECT body FROM events WHERE stream = ? AND seq = ?", (stream, seq)
    )
    assert bytes(stored) == edited


GAPS: dict[str, Callable[[Store, Notary], None]] = {
    "missing_principal": missing_principal,
    "unaudited_read": unaudited_read,
    "chain_break": chain_break,
}


def run_report(
    store: Store | Path,
    notary: Notary,
    names: list[str] | list[Template],
    principal: str = "assessor",
    to: str | None = None,
) -> dict[str, Any]:
    templates = [load_template(n) if isinstance(n, str) else n for n in names]
    side = open_read_side(
        store.url if isinstance(store, Store) else str(store),
        process_principal=Principal(principal, "user", "config"),
        interface="cli",
        label="compliance report",
        signing_key=_key(notary),
    )
    try:
        caller = side.control.local_caller(Principal(principal, "user", "config"))
        keys = load_trusted_keys(_key(notary).with_suffix(".vkey"))
        options = EvidenceOptions(FROM, to or _to(), keys)
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
    store: Store, notary: Notary
) -> None:
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
    ((traffic,),) = store.query("SELECT count(*) FROM events WHERE kind != 'audit_access'")
    assert model["population"]["events_in_period"] == traffic
    assert model["population"]["audit_access_events_in_store"] == 3
    # The report's own generation is in the ledger, as the assessor, before it was returned.
    record = model["generation_record"]
    ((body,),) = store.query("SELECT body FROM events WHERE event_id = ?", (record["event_id"],))
    event = json.loads(bytes(body))
    assert event["kind"] == "audit_access" and event["method"] == "audit/report"
    assert event["principal"]["id"] == "assessor" and event["outcome"] == "success"
    assert event["details"]["purpose"] == "assessment 2026"
    assert event["details"]["query"]["templates"] == ALL
    assert event["details"]["returned"] == traffic
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
    store: Store, notary: Notary, gaps: list[str]
) -> None:
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
        assert model["verification"]["result"] != "intact"


def test_a_body_that_is_not_json_is_reported_not_fatal(store: Store, notary: Notary) -> None:
    """Bytes that are not JSON (not even UTF-8) in place of the last event of a capture
    stream, whose phase the pipeline check reads: the report is still produced, and says so."""
    ((stream, seq),) = store.query(
        "SELECT stream, max(seq) FROM events WHERE stream IN "
        "(SELECT stream FROM events WHERE kind = 'call') GROUP BY stream"
    )
    store.tamper(
        "UPDATE events SET body = ? WHERE stream = ? AND seq = ?", (b"\xff\xfe{", stream, seq)
    )
    model = run_report(store, notary, ["pci-dss"])
    clauses = {c["check"]: c["result"] for t in model["templates"] for c in t["clauses"]}
    assert model["verification"]["result"] != "intact"
    assert clauses["chain_verified"]["status"] == "fail"
    assert [(e["stream"], e["seq"]) for e in clauses["chain_verified"]["exceptions"]
            if e["kind"] == "modified"] == [(stream, seq)]  # fmt: skip


def comparable(model: dict[str, Any]) -> dict[str, Any]:
    """The model less what only says when and where it was made (the reader stream that
    records it is named after the process)."""
    out = json.loads(json.dumps(model))
    for key in ("generated_at", "store"):
        del out["report"][key]
    for key in ("event_id", "stream"):
        del out["generation_record"][key]
    return out


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, as paths (for a readable failure)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(a.keys() | b.keys(), key=str)
                for d in differences(a.get(k), b.get(k), f"{path}.{k}")]  # fmt: skip
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r:.120} != {b!r:.120}"]


@pytest.mark.parametrize(
    "gaps", [[], ["unaudited_read", "chain_break"]], ids=lambda g: "+".join(g) or "clean"
)
def test_the_postgresql_report_equals_the_sqlite_report_of_the_same_trail(
    base: Path, notary: Notary, tmp_path: Path, gaps: list[str]
) -> None:
    models, to = {}, _to()
    for backend in BACKENDS:
        with copied(base, backend, tmp_path) as store:
            for gap in gaps:
                GAPS[gap](store, notary)
            models[backend] = run_report(store, notary, ALL, to=to)
    sqlite_model, pg_model = models["sqlite"], models["postgres"]
    assert pg_model["report"]["store"].startswith("postgresql://")
    assert comparable(pg_model) == comparable(sqlite_model), differences(
        comparable(pg_model), comparable(sqlite_model)
    )
    # Equal, and about something: the trail's events, its checkpoints, the injected gaps.
    assert pg_model["population"]["events_in_period"] > 31
    assert pg_model["checkpoints"] and pg_model["verification"]["streams"] >= 2
    assert failed(pg_model) == expected(gaps)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_role_without_reports_run_is_refused_and_the_refusal_recorded(
    base: Path, notary: Notary, tmp_path: Path, backend: str
) -> None:
    with copied(base, backend, tmp_path) as store:
        with pytest.raises(AccessDenied):
            run_report(store, notary, ["soc2"], principal="ops")  # admin may not read reports
        rows = store.query(
            "SELECT principal_id, outcome, body FROM events WHERE kind = 'audit_access' "
            "AND method = 'audit/report'"
        )
    assert [(principal, outcome) for principal, outcome, _ in rows] == [("ops", "denied")]
    details = json.loads(bytes(rows[0][2]))["details"]
    assert details["action"] == "report" and details["decision"] == "denied"


def test_cli_report_writes_html_json_and_pdf(store: Store, notary: Notary, tmp_path: Path) -> None:
    chain_break(store, notary)
    out = tmp_path / "report.html"
    before = {r[0] for r in store.query("SELECT event_id FROM events")}
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
        store=store.url,  # type: ignore[arg-type]
    )
    assert proc.returncode == 1, proc.stderr.decode()  # a clause failed
    assert b"1 failed" in proc.stderr
    html = out.read_text()
    assert "10.3.2" in html and "Compliance evidence report" in html
    # The CLI's report is an audited read by the OS user, with its purpose.
    reads = [
        json.loads(bytes(body))
        for event_id, body in store.query(
            "SELECT event_id, body FROM events WHERE kind = 'audit_access'"
        )
        if event_id not in before
    ]
    assert [(r["method"], r["principal"]["id"], r["outcome"]) for r in reads] == [
        ("audit/report", ME, "success")
    ]
    assert reads[0]["details"]["purpose"] == "QSA visit"
    assert reads[0]["details"]["interface"] == "cli"
    proc = notary.run(
        "report", "--template", "pci-dss,gdpr", "--format", "json",
        store=store.url,  # type: ignore[arg-type]
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr.decode()
    model = json.loads(proc.stdout)
    assert failed(model) == {"pci-dss": {"10.3.2"}, "gdpr": {"Art. 32(1)(b) integrity"}}
    assert model["report"]["generated_by"]["id"] == ME
    if pdf_available() and not store.postgres:  # rendering does not depend on the backend
        pdf = tmp_path / "report.pdf"
        proc = notary.run(
            "report",
            "--template",
            "soc2",
            "--format",
            "pdf",
            "-o",
            str(pdf),
            store=store.url,  # type: ignore[arg-type]
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr.decode()
        assert pdf.read_bytes().startswith(b"%PDF")


@pytest.fixture(params=BACKENDS)
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """No store yet (a file path, or an empty PostgreSQL schema): `wrap` creates it."""
    if request.param == "postgres":
        with pg_schema("report") as url:
            yield Store(url)
        return
    yield Store(str(tmp_path / "audit.db"))


def test_anchor_receipts_are_listed_for_anchored_checkpoints(
    empty: Store, notary: Notary, time_cmd: list[str], tmp_path: Path
) -> None:
    store, anchor = empty.url, tmp_path / "anchor"
    anchor.mkdir()
    options = ["--anchor", str(anchor)]
    argv = notary.wrap_argv(time_cmd, store=store, options=options)  # type: ignore[arg-type]
    with RawPipeClient(argv, notary.env(), cwd=notary.home) as client:
        params = {"name": "get_current_time", "arguments": {"timezone": "Asia/Tokyo"}}
        client.request({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}, 60)
        client.close_stdin()
        assert client.wait(60) == 0, bytes(client.stderr[-2000:]).decode(errors="replace")
    side = open_read_side(
        store,
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
    empty: Store, notary: Notary, time_cmd: list[str]
) -> None:
    store = empty
    argv = notary.wrap_argv(time_cmd, store=store.url)  # type: ignore[arg-type]
    with RawPipeClient(argv, notary.env(), cwd=notary.home) as client:
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
    run_trail(notary, time_cmd, store.url, 3)  # type: ignore[arg-type]  # notices the dead stream
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
