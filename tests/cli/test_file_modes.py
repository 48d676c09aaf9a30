"""Under the common umask 022 nothing mcp-notary writes is readable by other local accounts:
the store's directories are 0700, `audit.db`, its -wal and -shm, the PostgreSQL spool, export
cursors and files and reports 0600. The real commands make them (`wrap` around the real
`mcp-server-time`, `export --cursor`, `report`). A store that others can read is reported at
start, and the read side refuses it once roles are configured: roles and the read audit mean
nothing if anyone can copy the file."""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_notary import Notary
from e2e_rawclient import wait_until
from pgtest import pg_schema
from readside_trail import live_wrap, run_trail

pytestmark = pytest.mark.timeout(240)
ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """The umask most systems give users; the commands run below inherit it."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def fresh(tmp_path: Path) -> Notary:
    """A home whose XDG directories do not exist yet, so mcp-notary creates its own."""
    home = tmp_path / "home"
    home.mkdir()
    return Notary(home=home)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(*paths: Path) -> dict[str, str]:
    return {p.name: f"{mode(p):04o}" for p in paths}


def created_dirs(top: Path, leaf: Path) -> list[Path]:
    """`leaf` and each directory between it and `top` (exclusive)."""
    found = [leaf]
    while found[-1].parent != top:
        found.append(found[-1].parent)
    return found


def test_a_new_default_store_and_its_directory_are_private(
    fresh: Notary, time_cmd: list[str]
) -> None:
    """`wrap` with no --store in a new home: the data directory 0700 (the store is opened
    before the key files, whose directory was 0700), audit.db, -wal and -shm 0600 while it
    runs, the signing key 0600 beside it."""
    data = fresh.home / ".local" / "share"
    store = data / "mcp-notary" / "audit.db"
    with live_wrap(fresh, time_cmd, None):
        wal, shm = Path(f"{store}-wal"), Path(f"{store}-shm")
        assert wait_until(lambda: wal.exists() and shm.exists(), timeout=30)
        assert modes(*created_dirs(fresh.home, store.parent)) == {
            "mcp-notary": "0700", "share": "0700", ".local": "0700",
        }  # fmt: skip
        assert modes(store, wal, shm) == {
            "audit.db": "0600", "audit.db-wal": "0600", "audit.db-shm": "0600",
        }  # fmt: skip
    assert mode(store.parent / "checkpoint.key") == 0o600


def test_a_store_given_with_store_is_private(
    notary: Notary, time_cmd: list[str], tmp_path: Path
) -> None:
    """`--store /new/nested/dir/audit.db`: every directory it creates is 0700, the files 0600."""
    store = tmp_path / "var" / "lib" / "notary" / "audit.db"
    with live_wrap(notary, time_cmd, store):
        wal, shm = Path(f"{store}-wal"), Path(f"{store}-shm")
        assert wait_until(lambda: wal.exists() and shm.exists(), timeout=30)
        assert modes(*created_dirs(tmp_path, store.parent)) == {
            "notary": "0700", "lib": "0700", "var": "0700",
        }  # fmt: skip
        assert {mode(p) for p in (store, wal, shm)} == {0o600}


def test_the_postgres_spool_is_private(fresh: Notary, time_cmd: list[str]) -> None:
    """`wrap --store postgresql://...` keeps a spool file while it runs: its directories 0700
    (the state directory included), the file 0600."""
    state = fresh.home / ".local" / "state"
    with pg_schema("modes") as url, live_wrap(fresh, time_cmd, url):  # type: ignore[arg-type]
        assert wait_until(lambda: any(state.rglob("*.spool")), timeout=30)
        (spool,) = state.rglob("*.spool")
        assert {mode(d) for d in created_dirs(fresh.home, spool.parent)} == {0o700}
        assert mode(spool) == 0o600


def test_export_cursor_and_file_and_report_are_private(
    notary: Notary, time_cmd: list[str], tmp_path: Path
) -> None:
    """`export --cursor` writes its cursor (in a new directory: 0700) and the exported file
    0600; `report -o` writes the evidence pack 0600 (an old file is replaced, not reused)."""
    store = tmp_path / "audit.db"
    run_trail(notary, time_cmd, store, 5)
    cursor = tmp_path / "cursors" / "siem.json"
    exported = tmp_path / "out.jsonl"
    proc = notary.run(
        "export", "--format", "jsonl", "--to", str(exported), "--cursor", str(cursor),
        store=store,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert exported.read_bytes() and cursor.read_bytes()
    assert (mode(cursor.parent), mode(cursor), mode(exported)) == (0o700, 0o600, 0o600)

    report = tmp_path / "report.json"
    report.write_text("an old report")
    report.chmod(0o644)
    proc = notary.run(
        "report", "--template", "soc2", "--format", "json", "-o", str(report), store=store
    )
    assert proc.returncode in (0, 1), proc.stderr.decode()  # 1: a clause failed
    assert report.read_text().startswith("{") and mode(report) == 0o600
    html = tmp_path / "report.html"
    proc = notary.run(
        "report", "--template", "gdpr", "--format", "html", "-o", str(html), store=store
    )
    assert proc.returncode in (0, 1), proc.stderr.decode()
    assert mode(html) == 0o600


def test_a_store_others_can_read_is_reported_and_refused_once_roles_exist(
    notary: Notary, time_cmd: list[str], tmp_path: Path
) -> None:
    """A store made world-readable (as the umask left it before): `wrap` and `events` warn and
    work; once a role is granted the read commands refuse it (exit 4) and read nothing, until
    the owner runs the chmod the message names."""
    store = tmp_path / "audit.db"
    run_trail(notary, time_cmd, store, 3)
    store.chmod(0o644)
    # The -wal and -shm a new process makes take the database's mode: they are named too.
    warning = f"mcp-notary: warning: audit store {store} can be read by other users (audit.db 0644"

    with live_wrap(notary, time_cmd, store) as client:
        assert wait_until(lambda: b"warning: audit store" in client.stderr, timeout=30)
    assert warning.encode() in client.stderr
    listed = notary.run("events", "--json", store=store)
    assert listed.returncode == 0 and listed.stdout, listed.stderr.decode()
    assert warning in listed.stderr.decode() and f"chmod 600 {store}" in listed.stderr.decode()

    for path in tmp_path.glob("audit.db*"):
        path.chmod(0o600)
    for principal, role in ((ME, "auditor"), ("ops", "admin")):
        granted = notary.run("access", "grant", principal, role, store=store)
        assert granted.returncode == 0, granted.stderr.decode()
    store.chmod(0o644)
    reads = _audit_reads(store)
    for command in (["events", "--json"], ["sql", "SELECT count(*) FROM events"],
                    ["export", "--format", "jsonl"]):  # fmt: skip
        refused = notary.run(*command, store=store)
        assert refused.returncode == 4 and refused.stdout == b"", command
        message = refused.stderr.decode()
        assert "refusing to read: roles are configured, but the audit store" in message, message
        assert f"chmod 600 {store}" in message
    assert _audit_reads(store) == reads  # nothing was read, so no read to record either

    for path in tmp_path.glob("audit.db*"):  # the fix the message names: the auditor reads
        path.chmod(0o600)
    fixed = notary.run("events", "--json", store=store)
    assert fixed.returncode == 0 and fixed.stdout, fixed.stderr.decode()
    assert "warning" not in fixed.stderr.decode()


def _audit_reads(store: Path) -> int:
    import sqlite3

    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        ((count,),) = db.execute("SELECT count(*) FROM events WHERE kind = 'audit_access'")
        return int(count)
    finally:
        db.close()
