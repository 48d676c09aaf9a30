"""A secret pasted into a search must not reach the ledger through the audit-of-audits record."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from mcp_notary.access.audit import AccessRecord, access_details, detector_scrub
from mcp_notary.identity.principal import Principal
from mcp_notary.ledger.stores.sqlite import SQLiteStore

# Built at run time so no credential-shaped literal sits in the repository.
SECRET = "AKIA" + "Q3EGRTWXYZ7ABCDE"
CONNECTION = "postgresql://admin:" + "s3cr3t-Pa55word" + "@db.internal:5432/app"


def test_access_details_scrub_free_text() -> None:
    record = AccessRecord(
        principal=Principal("alice", "user", "os"),
        action="search",
        allowed=True,
        interface="cli",
        query={"search": f"who used {SECRET}", "filters": [CONNECTION]},
        purpose=f"incident about {SECRET}",
    )
    details = access_details(record, detector_scrub())
    text = json.dumps(details)
    assert SECRET not in text and "s3cr3t-Pa55word" not in text
    assert "[REDACTED:" in details["query"]["search"]
    assert "db.internal" in details["query"]["filters"][0]  # only the password goes
    assert access_details(record)["query"]["search"].endswith(SECRET)  # unscrubbed by default


def test_cli_search_for_a_secret_leaves_no_copy_in_the_store(tmp_path: Path) -> None:
    store = tmp_path / "audit.db"
    SQLiteStore(store).close()
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "MCP_NOTARY_REDACTION_KEY_FILE": str(tmp_path / "redaction.key"),
        "MCP_NOTARY_SIGNING_KEY_FILE": str(tmp_path / "checkpoint.key"),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcp_notary",
            "events",
            "--store",
            str(store),
            "--json",
            "--search",
            SECRET,
            "--purpose",
            f"looking for {SECRET}",
        ],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(store)
    bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM events")]
    db.close()
    (read,) = [b for b in bodies if b["kind"] == "audit_access"]
    assert read["details"]["decision"] == "allowed"
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("audit.db*"))
    assert SECRET.encode() not in raw


def test_cli_search_for_a_secret_leaves_no_copy_in_a_postgres_store(tmp_path: Path) -> None:
    """The same on PostgreSQL: the read is recorded in the schema, the secret is in no table."""
    import psycopg
    from pgtest import pg_schema

    from mcp_notary.ledger.stores.postgres import PostgresStore

    with pg_schema("scrub") as url:
        PostgresStore(url).close()
        env = {
            **os.environ,
            "HOME": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "MCP_NOTARY_REDACTION_KEY_FILE": str(tmp_path / "redaction.key"),
            "MCP_NOTARY_SIGNING_KEY_FILE": str(tmp_path / "checkpoint.key"),
        }
        done = subprocess.run(
            [sys.executable, "-m", "mcp_notary", "events", "--store", url, "--json",
             "--search", SECRET, "--purpose", f"looking for {SECRET}"],
            env=env, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        with psycopg.connect(url, autocommit=True) as db:
            bodies = [json.loads(bytes(b)) for (b,) in db.execute("SELECT body FROM events")]
            tables = [
                r[0]
                for r in db.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
            ]
            dump = " ".join(
                db.execute(
                    f"SELECT coalesce(string_agg(t::text, ' '), '') FROM \"{t}\" AS t"
                ).fetchone()[0]  # type: ignore[index]
                for t in tables
            )
    (read,) = [b for b in bodies if b["kind"] == "audit_access"]
    assert read["details"]["decision"] == "allowed" and read["details"]["returned"] == 0
    assert "events" in tables and "access_tokens" in tables
    assert SECRET not in dump and SECRET.encode().hex() not in dump
