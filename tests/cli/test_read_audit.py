"""The CLI read commands are audited and role-checked: `events`, `show`, `sql`, `access`.

Every run appends one `audit_access` event (to the store, never to stdout) naming the OS user,
what was asked, how many events came back, and the purpose; refusals exit 5 and are recorded.
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

import pytest
from e2e_notary import Notary
from readside_trail import run_trail

from mcp_notary.access.control import Caller
from mcp_notary.access.readside import open_read_side
from mcp_notary.events.model import Principal

pytestmark = pytest.mark.timeout(240)
ME = pwd.getpwuid(os.getuid()).pw_name


@dataclass
class Trail:
    store: Path
    notary: Notary

    def run(self, *args: str) -> Any:
        return self.notary.run(*args, store=self.store)

    def reads(self, after: int) -> list[dict[str, Any]]:
        db = sqlite3.connect(self.store)
        rows = db.execute(
            "SELECT body FROM events WHERE kind = 'audit_access' AND rowid > ? ORDER BY rowid",
            (after,),
        ).fetchall()
        db.close()
        return [json.loads(r[0]) for r in rows]

    def top(self) -> int:
        db = sqlite3.connect(self.store)
        (top,) = db.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()
        db.close()
        return int(top)

    def set_roles(self, principal: str, roles: set[str]) -> None:
        side = open_read_side(
            str(self.store),
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


@pytest.fixture(scope="module")
def trail(
    notary: Notary, time_cmd: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Trail]:
    store = tmp_path_factory.mktemp("cli-read") / "audit.db"
    run_trail(notary, time_cmd, store, 40)  # as the OS user
    run_trail(notary, time_cmd, store, 20, principal="alice")
    yield Trail(store, notary)


def test_events_json_is_the_stored_bytes_and_the_read_is_recorded(trail: Trail) -> None:
    before = trail.top()
    proc = trail.run("events", "--json", "--tool", "convert_time", "--purpose", "INC-7")
    assert proc.returncode == 0, proc.stderr.decode()
    db = sqlite3.connect(trail.store)
    stored = [
        bytes(r[0])
        for r in db.execute(
            "SELECT body FROM events WHERE tool = 'convert_time' ORDER BY timestamp, stream, seq"
        )
    ]
    db.close()
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
    db = sqlite3.connect(trail.store)
    (alice_event,) = db.execute(
        "SELECT event_id FROM events WHERE principal_id = 'alice' AND kind = 'call' LIMIT 1"
    ).fetchone()
    db.close()
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
    raw = b"".join(p.read_bytes() for p in trail.store.parent.glob("audit.db*"))
    assert token.encode() not in raw and token.split("_", 2)[2].encode() not in raw
    db = sqlite3.connect(trail.store)
    (stored_hash,) = db.execute(
        "SELECT secret_hash FROM access_tokens WHERE token_id = ?", (token_id,)
    ).fetchone()
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("DELETE FROM access_tokens")
    db.close()
    assert stored_hash.startswith("$argon2id$")
    refused = trail.run("sql", "SELECT secret_hash FROM access_tokens")
    assert refused.returncode != 0
    trail.set_roles(ME, set())
