"""The CLI read commands are audited and role-checked: `events`, `show`, `sql`, `access`,
`report`.

Every run appends one `audit_access` event (to the store, never to stdout) naming the OS user,
what was asked, how many events came back, and the purpose; refusals exit 5 and are recorded.
Each test runs on both backends: an embedded SQLite file and a PostgreSQL schema.
"""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from e2e_notary import Notary
from pgtest import pg_schema
from readside_trail import run_trail
from store_copy import copy_trail

from mcp_notary.access.control import Caller
from mcp_notary.access.readside import open_read_side
from mcp_notary.events.model import Principal

pytestmark = pytest.mark.timeout(240)
ME = pwd.getpwuid(os.getuid()).pw_name


@dataclass
class Trail:
    store: str  # a SQLite file or a postgresql:// URL
    notary: Notary

    @property
    def postgres(self) -> bool:
        return self.store.startswith("postgresql://")

    def run(self, *args: str) -> Any:
        return self.notary.run(*args, store=self.store)  # type: ignore[arg-type]

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of `sql` (placeholders `?`), straight from the database."""
        if self.postgres:
            with psycopg.connect(self.store, autocommit=True) as db:
                return db.execute(sql.replace("?", "%s").encode(), params).fetchall()
        db = sqlite3.connect(self.store)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def top(self) -> set[str]:
        """The ids of every stored event: what `reads` leaves out."""
        return {r[0] for r in self.query("SELECT event_id FROM events")}

    def reads(self, before: set[str]) -> list[dict[str, Any]]:
        """`audit_access` events stored since `before` was taken, in order."""
        rows = self.query(
            "SELECT event_id, body FROM events WHERE kind = 'audit_access' "
            "ORDER BY timestamp, stream, seq"
        )
        return [json.loads(bytes(body)) for event_id, body in rows if event_id not in before]

    def set_roles(self, principal: str, roles: set[str]) -> None:
        side = open_read_side(
            self.store,
            process_principal=Principal("test-setup", "service", "config"),
            interface="cli",
            label="test setup",
            signing_key=self.notary.home / ".local/share/mcp-notary/checkpoint.key",
        )
        try:
            admin = Caller(Principal("ops", "user", "config"), frozenset({"admin"}), "os")
            held = side.control.state().roles_of(principal)
            for role in held - roles:
                side.control.revoke(admin, principal, role, "cli", "test")
            for role in roles - held:
                side.control.grant(admin, principal, role, "cli", "test")
        finally:
            side.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def trail(
    request: pytest.FixtureRequest,
    notary: Notary,
    time_cmd: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Trail]:
    def made(store: str) -> Trail:
        run_trail(notary, time_cmd, store, 40)  # type: ignore[arg-type]  # as the OS user
        run_trail(notary, time_cmd, store, 20, principal="alice")  # type: ignore[arg-type]
        return Trail(store, notary)

    if request.param == "postgres":
        with pg_schema("cliread") as url:
            yield made(url)
        return
    yield made(str(tmp_path_factory.mktemp("cli-read") / "audit.db"))


def test_events_json_is_the_stored_bytes_and_the_read_is_recorded(trail: Trail) -> None:
    before = trail.top()
    proc = trail.run("events", "--json", "--tool", "convert_time", "--purpose", "INC-7")
    assert proc.returncode == 0, proc.stderr.decode()
    stored = [
        bytes(r[0])
        for r in trail.query(
            "SELECT body FROM events WHERE tool = 'convert_time' ORDER BY timestamp, stream, seq"
        )
    ]
    assert proc.stdout == b"".join(b + b"\n" for b in stored)  # byte for byte, one per line
    assert b"audit_access" not in proc.stdout
    (read,) = trail.reads(before)
    assert read["principal"] == {"id": ME, "type": "user", "source": "os"}
    assert read["method"] == "audit/search" and read["outcome"] == "success"
    details = read["details"]
    assert details["query"]["tool"] == "convert_time"
    assert details["returned"] == len(stored) > 0
    assert details["purpose"] == "INC-7" and details["interface"] == "cli"
    assert read["transport"] == "inprocess"


def test_search_builds_the_index_and_finds_redacted_text(trail: Trail) -> None:
    proc = trail.run("events", "--json", "--search", "tokyo -paris", "--tool", "get_current_time")
    assert proc.returncode == 0, proc.stderr.decode()
    found = [json.loads(line) for line in proc.stdout.splitlines()]
    assert found and all(e["arguments"]["timezone"] == "Asia/Tokyo" for e in found)


def test_reads_of_the_trail_are_listed_only_when_asked_for(trail: Trail) -> None:
    trail.run("events", "--limit", "1")
    plain = trail.run("events", "--json")
    assert plain.returncode == 0
    assert all(json.loads(line)["kind"] != "audit_access" for line in plain.stdout.splitlines())
    reads = trail.run("events", "--json", "--kind", "audit_access")
    kinds = {json.loads(line)["kind"] for line in reads.stdout.splitlines()}
    assert kinds == {"audit_access"}


def test_verify_accepts_reader_streams(trail: Trail) -> None:
    trail.run("events", "--limit", "1")
    report = json.loads(trail.run("verify", "--json").stdout)
    assert [f for f in report["findings"] if f["severity"] == "integrity"] == []


COMMANDS = {
    "events": (["events", "--json"], "search"),
    "show-alice": (["show", "--json", "{alice}"], "show"),
    "sql": (["sql", "--json", "SELECT count(*) AS n FROM events"], "sql"),
    "access-list": (["access", "list", "--json"], "access_list"),
}
# role of the OS user -> command -> exit status
EXPECTED = {
    "auditor": {"events": 0, "show-alice": 0, "sql": 0, "access-list": 5},
    "viewer": {"events": 0, "show-alice": 3, "sql": 5, "access-list": 5},
    "admin": {"events": 5, "show-alice": 5, "sql": 5, "access-list": 0},
    "none": {"events": 5, "show-alice": 5, "sql": 5, "access-list": 5},
}


@pytest.mark.parametrize("role", EXPECTED)
def test_cli_role_matrix(trail: Trail, role: str) -> None:
    # Someone holds a role and someone is admin: the store owner's rules no longer apply.
    trail.set_roles("ops", {"admin"})
    trail.set_roles(ME, set() if role == "none" else {role})
    ((alice_event,),) = trail.query(
        "SELECT event_id FROM events WHERE principal_id = 'alice' AND kind = 'call' LIMIT 1"
    )
    for name, (argv, action) in COMMANDS.items():
        before = trail.top()
        proc = trail.run(*[a.format(alice=alice_event) for a in argv])
        expected = EXPECTED[role][name]
        assert proc.returncode == expected, (role, name, proc.stderr.decode())
        reads = trail.reads(before)
        assert len(reads) == 1, (role, name, reads)
        details = reads[0]["details"]
        assert details["action"] == action and reads[0]["principal"]["id"] == ME
        allowed = expected == 0
        if role == "viewer" and name == "show-alice":
            assert details["decision"] == "allowed" and details["returned"] == 0
        else:
            assert details["decision"] == ("allowed" if allowed else "denied"), (role, name)
        if role == "viewer" and name == "events":
            principals = {json.loads(line)["principal"]["id"] for line in proc.stdout.splitlines()}
            assert principals == {ME}
        if not allowed:
            assert proc.stdout == b""  # nothing read, nothing printed
    trail.set_roles(ME, set())


def test_access_changes_are_ledger_events_and_tokens_are_stored_hashed(trail: Trail) -> None:
    trail.set_roles(ME, {"admin"})
    before = trail.top()
    grant = trail.run("access", "grant", "carol", "auditor", "--purpose", "CHG-1")
    assert grant.returncode == 0, grant.stderr.decode()
    created = trail.run(
        "access", "token", "create", "carol", "--name", "laptop", "--expires-in", "7d"
    )
    assert created.returncode == 0, created.stderr.decode()
    token = created.stdout.decode().strip()
    assert token.startswith("mcpn_") and len(token) == 61
    token_id = token.split("_")[1]
    whoami = trail.notary.run("access", "whoami", "--token", token, store=trail.store)
    assert json.loads(whoami.stdout) == {
        "principal": "carol", "via": "token", "roles": ["auditor"], "token_id": token_id,
    }  # fmt: skip
    revoked = trail.run("access", "token", "revoke", token_id)
    assert revoked.returncode == 0
    again = trail.notary.run("access", "whoami", "--token", token, store=trail.store)
    assert again.returncode == 5 and b"revoked" in again.stderr
    changes = [r for r in trail.reads(before) if r["method"].startswith("access/")]
    assert [(c["method"], c["details"]["query"].get("principal")) for c in changes] == [
        ("access/grant", "carol"),
        ("access/token_create", "carol"),
        ("access/token_revoke", "carol"),
    ]
    assert changes[0]["details"]["purpose"] == "CHG-1"
    if trail.postgres:
        dumps = [
            trail.query(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM {table} AS t")[0][0]
            for table in ("events", "access_grants", "access_tokens", "access_token_revocations")
        ]
        raw = " ".join(dumps).encode()
        with pytest.raises(psycopg.errors.RaiseException, match="insert-only"):
            trail.query("DELETE FROM access_tokens")
    else:
        raw = b"".join(p.read_bytes() for p in Path(trail.store).parent.glob("audit.db*"))
        with pytest.raises(sqlite3.IntegrityError):
            trail.query("DELETE FROM access_tokens")
    assert b"carol" in raw  # the dump holds the records...
    assert token.encode() not in raw and token.split("_", 2)[2].encode() not in raw  # ...not this
    ((stored_hash,),) = trail.query(
        "SELECT secret_hash FROM access_tokens WHERE token_id = ?", (token_id,)
    )
    assert stored_hash.startswith("$argon2id$")
    refused = trail.run("sql", "SELECT secret_hash FROM access_tokens")
    assert refused.returncode != 0
    trail.set_roles(ME, set())


def test_sql_reads_read_only_and_is_recorded(trail: Trail) -> None:
    """`sql` on either backend: an auditor's SELECT prints its rows (BLOBs and bytea as hex)
    and is recorded with its row count; writes and a second statement are refused with nothing
    changed; a viewer is refused (exit 5) and the refusal recorded."""
    trail.set_roles("ops", {"admin"})
    trail.set_roles(ME, {"auditor"})
    statement = (
        "SELECT event_id, seq, leaf_hash FROM events WHERE kind = 'call' ORDER BY event_id LIMIT 3"
    )
    before = trail.top()
    proc = trail.run("sql", "--json", "--purpose", "INV-9", statement)
    assert proc.returncode == 0, proc.stderr.decode()
    stored = trail.query(statement)
    assert [json.loads(line) for line in proc.stdout.splitlines()] == [
        {"event_id": event_id, "seq": seq, "leaf_hash": bytes(leaf).hex()}
        for event_id, seq, leaf in stored
    ]
    assert proc.stderr.decode().strip() == "3 row(s)"
    (read,) = trail.reads(before)
    assert read["method"] == "audit/sql" and read["principal"]["id"] == ME
    details = read["details"]
    assert details["action"] == "sql" and details["decision"] == "allowed"
    assert details["query"] == {"sql": statement, "limit": 1000}
    assert details["returned"] == 3 and details["purpose"] == "INV-9"

    truncated = trail.run("sql", "--limit", "2", "SELECT seq FROM events")
    assert truncated.returncode == 0, truncated.stderr.decode()
    assert b"2 row(s) (more than 2; raise --limit)" in truncated.stderr

    traffic = "SELECT count(*) FROM events WHERE kind != 'audit_access'"
    events_before = trail.query(traffic)
    for write in (
        "DELETE FROM events",
        "UPDATE events SET tool = 'x'",
        "INSERT INTO streams SELECT * FROM streams",
        "DROP TABLE events",
        "SELECT 1; DELETE FROM events",
        "SELECT secret_hash FROM access_tokens",
    ):
        before = trail.top()
        refused = trail.run("sql", write)
        assert refused.returncode == 3 and refused.stdout == b"", write
        assert b"mcp-notary: sql: " in refused.stderr, refused.stderr.decode()
        (attempt,) = trail.reads(before)  # the attempt is on record, with why it failed
        assert attempt["details"]["query"]["sql"] == write
        assert attempt["details"]["query"]["error"].startswith("sql: ")
        assert attempt["details"]["returned"] == 0
        assert attempt["outcome"] == "denied" and attempt["details"]["decision"] == "denied"
    assert trail.query(traffic) == events_before
    assert trail.query("SELECT count(*) FROM events WHERE tool = 'x'") == [(0,)]

    trail.set_roles(ME, {"viewer"})
    before = trail.top()
    denied = trail.run("sql", "--json", statement)
    assert denied.returncode == 5 and denied.stdout == b"", denied.stderr.decode()
    (record,) = trail.reads(before)
    assert record["details"]["action"] == "sql" and record["details"]["decision"] == "denied"
    assert record["details"]["query"]["sql"] == statement
    trail.set_roles(ME, set())


# Statements that reach past the tables: native pointers, files, large objects, settings, SQL
# text run by a function, other databases, sleeps, and values built from a number (one call,
# so the deadline's progress checks never see it). `{secret}` is a file only the OS can read
# to us; `{copy}` a path that must not come to exist.
SQLITE_PROBES = [
    ("SELECT fts3_tokenizer('simple')", "fts3_tokenizer() is not an allowed function"),
    ("SELECT fts3_tokenizer('mine', x'4141414141414141')", "fts3_tokenizer() is not an allowed"),
    ("SELECT load_extension('{secret}')", "load_extension() is not an allowed function"),
    ("SELECT sqlite_compileoption_get(0)", "sqlite_compileoption_get() is not an allowed"),
    ("SELECT randomblob(1000000000)", "a string or BLOB would exceed 64 MiB"),
    ("SELECT zeroblob(1000000000)", "a string or BLOB would exceed 64 MiB"),
    ("SELECT length(replace(hex(zeroblob(40000000)), '0', 'ab'))", "would exceed 64 MiB"),
    ("SELECT group_concat(body, randomblob(100000000)) FROM events", "would exceed 64 MiB"),
]
POSTGRES_PROBES = [
    ("COPY events TO '{copy}'", "refused: only SELECT over events"),
    ("SELECT pg_read_file('{secret}')", "pg_read_file() is not an allowed function"),
    ("SELECT pg_read_binary_file('{secret}')", "pg_read_binary_file() is not an allowed"),
    ("SELECT pg_ls_dir('.')", "pg_ls_dir() is not an allowed function"),
    ("SELECT lo_import('{secret}')", "lo_import() is not an allowed function"),
    ("SELECT lo_export(0, '{copy}')", "lo_export() is not an allowed function"),
    ("SELECT set_config('statement_timeout', '0', false)", "set_config() is not an allowed"),
    ("SELECT current_setting('data_directory')", "current_setting() is not an allowed"),
    ("SELECT query_to_xml('SELECT * FROM access_tokens', true, false, '')", "query_to_xml()"),
    ("SELECT dblink('dbname=test', 'SELECT secret_hash FROM access_tokens')", "dblink()"),
    ("SELECT dblink_exec('dbname=test', 'DELETE FROM events')", "dblink_exec()"),
    ("SELECT pg_sleep(3600)", "pg_sleep() is not an allowed function"),
    ("SELECT repeat('x', 1000000000)", "repeat() is not an allowed function"),
    ("SELECT lpad('x', 1000000000, 'y')", "lpad() is not an allowed function"),
    ("SELECT format('%1000000000s', 'x')", "format() is not an allowed function"),
    ("WITH d AS (DELETE FROM events RETURNING 1) SELECT count(*) FROM d", "refused: only SELECT"),
    ("SELECT count(*) FROM generate_series(1, 1000000000000)", "took longer than 10 s"),
]


def test_sql_probes_are_refused_and_recorded_denied(trail: Trail, tmp_path: Path) -> None:
    """Each probe exits 3 with why, prints nothing, reads or writes nothing (no file appears,
    the secret is not printed, no large object, the trail unchanged), and is on record as a
    denied read, even though the caller's role (auditor) allows `sql`. The size bombs are
    refused by the value limit, not stopped at the deadline."""
    trail.set_roles("ops", {"admin"})
    trail.set_roles(ME, {"auditor"})
    secret = tmp_path / "secret.txt"
    secret.write_text("the-secret-marker\n")
    secret.chmod(0o644)  # the database server's account may read it (it must not, through us)
    copy = tmp_path / "copy.txt"
    traffic = "SELECT count(*) FROM events WHERE kind != 'audit_access'"
    events_before = trail.query(traffic)
    probes = POSTGRES_PROBES if trail.postgres else SQLITE_PROBES
    if trail.postgres:
        _execute(trail.store, "CREATE EXTENSION IF NOT EXISTS dblink")  # in the store's schema
        objects = trail.query("SELECT count(*) FROM pg_largeobject_metadata")
    try:
        for probe, why in probes:
            statement = probe.format(secret=secret, copy=copy)
            before = trail.top()
            refused = trail.run("sql", statement)
            assert refused.returncode == 3 and refused.stdout == b"", statement
            assert why in refused.stderr.decode(), (statement, refused.stderr.decode())
            assert b"the-secret-marker" not in refused.stderr and not copy.exists()
            (attempt,) = trail.reads(before)
            assert attempt["method"] == "audit/sql" and attempt["outcome"] == "denied"
            details = attempt["details"]
            assert details["decision"] == "denied" and details["returned"] == 0
            assert details["query"]["sql"] == statement and why in details["query"]["error"]
            assert details["basis"].startswith("statement refused")
        if trail.postgres:
            assert trail.query("SELECT count(*) FROM pg_largeobject_metadata") == objects
        ok = trail.run("sql", "SELECT count(*) AS n, max(length(body)) AS longest FROM events")
        assert ok.returncode == 0, ok.stderr.decode()  # ordinary functions still work
    finally:
        if trail.postgres:
            _execute(trail.store, "DROP EXTENSION IF EXISTS dblink")
        trail.set_roles(ME, set())
    assert trail.query(traffic) == events_before


def _execute(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(statement.encode())


def test_sql_prints_the_same_from_either_store(trail: Trail) -> None:
    """The SQLite trail copied into PostgreSQL: the same statement prints the same bytes."""
    if trail.postgres:
        pytest.skip("copies the SQLite trail into PostgreSQL")
    trail.set_roles("ops", {"admin"})
    trail.set_roles(ME, {"auditor"})
    statement = (
        "SELECT stream, seq, event_id, kind, tool, principal_id, body, leaf_hash, chain_hash "
        "FROM events WHERE kind != 'audit_access' ORDER BY stream, seq"
    )
    ((traffic,),) = trail.query("SELECT count(*) FROM events WHERE kind != 'audit_access'")
    try:
        with pg_schema("clisql") as url:
            copy_trail(trail.store, url)
            copy = Trail(url, trail.notary)
            for args in (["--json"], []):  # JSON Lines, and the table
                on_sqlite = trail.run("sql", "--limit", "10000", *args, statement)
                on_postgres = copy.run("sql", "--limit", "10000", *args, statement)
                assert on_sqlite.returncode == on_postgres.returncode == 0
                assert on_postgres.stdout == on_sqlite.stdout
                assert on_postgres.stderr == on_sqlite.stderr == f"{traffic} row(s)\n".encode()
            assert len(on_sqlite.stdout) > 1000 and traffic > 60
    finally:
        trail.set_roles(ME, set())


def test_report_reads_the_trail_and_is_recorded_allowed_or_refused(trail: Trail) -> None:
    """`report` on either backend: an auditor gets the evidence pack over the whole trail, an
    admin (no `reports.run`) is refused with nothing printed; both runs are recorded."""
    trail.set_roles("ops", {"admin"})
    trail.set_roles(ME, {"auditor"})
    ((traffic,),) = trail.query("SELECT count(*) FROM events WHERE kind != 'audit_access'")
    ((calls,),) = trail.query("SELECT count(*) FROM events WHERE kind = 'call'")
    before = trail.top()
    proc = trail.run("report", "--template", "soc2", "--format", "json", "--purpose", "AUD-3")
    assert proc.returncode in (0, 1), proc.stderr.decode()
    model = json.loads(proc.stdout)
    assert proc.returncode == (1 if model["summary"]["fail"] else 0)
    assert model["population"]["events_in_period"] == traffic
    assert model["population"]["by_kind"]["call"] == calls == 62  # 2 wraps: initialize + 60
    assert model["verification"]["result"] == "intact"
    roles = model["access_review"]["roles_at_end"]  # earlier tests of the module grant too
    assert roles["ops"] == ["admin"] and roles[ME] == ["auditor"]
    (read,) = trail.reads(before)
    assert read["event_id"] == model["generation_record"]["event_id"]
    assert read["method"] == "audit/report" and read["principal"]["id"] == ME
    details = read["details"]
    assert details["action"] == "report" and details["decision"] == "allowed"
    assert details["returned"] == traffic and details["purpose"] == "AUD-3"
    assert details["query"]["templates"] == ["soc2"]

    trail.set_roles(ME, {"admin"})
    before = trail.top()
    refused = trail.run("report", "--template", "soc2", "--format", "json")
    assert refused.returncode == 5 and refused.stdout == b"", refused.stderr.decode()
    (denied,) = trail.reads(before)
    assert denied["method"] == "audit/report" and denied["outcome"] == "denied"
    assert denied["details"]["decision"] == "denied"
    trail.set_roles(ME, set())


def test_show_prints_one_event_and_records_what_it_returned(trail: Trail) -> None:
    """`show` prints the stored bytes of one event; an unknown id is an error, and both reads
    are recorded with what they returned."""
    trail.set_roles(ME, {"auditor"})
    ((event_id, body),) = trail.query(
        "SELECT event_id, body FROM events WHERE kind = 'call' AND tool = 'get_current_time' "
        "ORDER BY timestamp LIMIT 1"
    )
    before = trail.top()
    shown = trail.run("show", "--json", event_id)
    assert shown.returncode == 0, shown.stderr.decode()
    assert shown.stdout == bytes(body) + b"\n"
    missing = trail.run("show", "--json", "00000000-0000-7000-8000-000000000000")
    assert missing.returncode != 0 and b"no event with id" in missing.stderr
    reads = trail.reads(before)
    assert [(r["method"], r["details"]["returned"]) for r in reads] == [
        ("audit/show", 1),
        ("audit/show", 0),
    ]
    trail.set_roles(ME, set())
