"""Columns beside the hashed body, edited by someone who can write the store (issue 15, item 3).

A real trail (`mcp-notary wrap` around `mcp-server-time`, as the OS user and as alice) is copied
per test, on SQLite and on PostgreSQL; one column of one row is edited with the guard triggers
out of the way; then `mcp-notary verify` must name the row and the column, and the read side
must not act on the edited value: a viewer cannot read alice's event through a forged
`principal_id`, `events --kind` still lists an event whose `kind` was edited, a filter on a
forged value does not return the event, and a reader is warned.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from e2e_notary import Notary, drop_append_only_triggers, sqlite_connect, store_files
from e2e_rawclient import RawPipeClient
from pgtest import pg_schema
from readside_trail import run_trail
from store_copy import copy_trail
from trail import INIT

from mcp_notary.access.control import Caller
from mcp_notary.access.readside import open_read_side
from mcp_notary.events.model import Principal
from mcp_notary.recorder import process_start_token

pytestmark = pytest.mark.timeout(300)
ME = pwd.getpwuid(os.getuid()).pw_name
WARNING = b"disagree with their hashed bytes"


@dataclass
class Store:
    url: str  # a SQLite file or a postgresql:// URL
    notary: Notary

    @property
    def postgres(self) -> bool:
        return self.url.startswith("postgresql://")

    def run(self, *args: str) -> Any:
        return self.notary.run(*args, store=self.url)  # type: ignore[arg-type]

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.postgres:
            with psycopg.connect(self.url, autocommit=True) as db:
                return db.execute(sql.replace("?", "%s").encode(), params).fetchall()
        db = sqlite3.connect(self.url)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def tamper(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Edit the store as its owner would, guard triggers out of the way."""
        if self.postgres:
            with psycopg.connect(self.url, autocommit=True) as db:
                db.execute("SET session_replication_role = replica")  # no triggers fire
                db.execute(sql.replace("?", "%s").encode(), params)
            return
        db = sqlite_connect(Path(self.url))
        try:
            drop_append_only_triggers(db)
            db.execute(sql, params)
        finally:
            db.close()

    def verify(self, *args: str) -> tuple[int, dict[str, Any]]:
        proc = self.run("verify", "--json", *args)
        assert proc.stdout, proc.stderr.decode(errors="replace")
        return proc.returncode, json.loads(proc.stdout)

    def event(self, where: str) -> tuple[str, int, str]:
        """(stream, seq, event_id) of the first event matching `where`."""
        rows = self.query(
            f"SELECT stream, seq, event_id FROM events WHERE {where} ORDER BY stream, seq LIMIT 1"
        )
        assert rows, where
        stream, seq, event_id = rows[0]
        return str(stream), int(seq), str(event_id)

    def listed(self, *args: str) -> tuple[set[str], bytes]:
        """Event ids `events --json ARGS` prints, and its stderr."""
        proc = self.run("events", "--json", *args)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        return {json.loads(line)["event_id"] for line in proc.stdout.splitlines()}, proc.stderr

    def set_role(self, principal: str, role: str) -> None:
        side = open_read_side(
            self.url,
            process_principal=Principal("test-setup", "service", "config"),
            interface="cli",
            label="test setup",
            signing_key=self.notary.home / ".local/share/mcp-notary/checkpoint.key",
        )
        try:
            admin = Caller(Principal("ops", "user", "config"), frozenset({"admin"}), "os")
            side.control.grant(admin, principal, role, "cli", "test")
        finally:
            side.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def pristine(
    request: pytest.FixtureRequest,
    notary: Notary,
    time_cmd: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Store]:
    def made(url: str) -> Store:
        run_trail(notary, time_cmd, url, 30)  # type: ignore[arg-type]  # as the OS user
        run_trail(notary, time_cmd, url, 12, principal="alice")  # type: ignore[arg-type]
        return Store(url, notary)

    if request.param == "postgres":
        with pg_schema("coltamper") as url:
            yield made(url)
        return
    yield made(str(tmp_path_factory.mktemp("coltamper") / "audit.db"))


@pytest.fixture
def store(pristine: Store, tmp_path: Path) -> Iterator[Store]:
    """A private copy of the trail, to attack."""
    if pristine.postgres:
        with pg_schema("coltamper_copy") as url:
            copy_trail(pristine.url, url)
            yield Store(url, pristine.notary)
        return
    dest = tmp_path / "copy"
    dest.mkdir()
    source = Path(pristine.url)
    for path in store_files(source):
        shutil.copy2(path, dest / path.name)
    yield Store(str(dest / source.name), pristine.notary)


def mismatch(report: dict[str, Any], stream: str, seq: int, column: str) -> None:
    """The report names exactly that row and that column, as an integrity failure."""
    found = [f for f in report["findings"] if f["kind"] == "column_mismatch"]
    assert [(f["stream"], f["seq"]) for f in found] == [(stream, seq)], report["findings"]
    assert column in found[0]["detail"] and found[0]["severity"] == "integrity"
    assert report["exit_status"] == 1


def test_the_untouched_copy_verifies(store: Store) -> None:
    status, report = store.verify()
    assert status == 0, report["findings"]


def test_forged_principal_id_gives_a_viewer_nothing_of_alices(store: Store) -> None:
    stream, seq, alices = store.event("principal_id = 'alice' AND kind = 'call'")
    store.tamper("UPDATE events SET principal_id = ? WHERE event_id = ?", (ME, alices))
    _, report = store.verify()
    mismatch(report, stream, seq, "principal_id")

    store.set_role(ME, "viewer")
    mine, _ = store.listed()
    assert mine and alices not in mine
    shown = store.run("show", "--json", alices)
    assert shown.returncode == 3 and shown.stdout == b""  # as if it did not exist
    assert WARNING in shown.stderr


def test_edited_kind_neither_hides_the_event_nor_changes_what_it_is(store: Store) -> None:
    stream, seq, event_id = store.event("kind = 'call'")
    store.tamper("UPDATE events SET kind = 'audit_access' WHERE event_id = ?", (event_id,))
    _, report = store.verify()
    mismatch(report, stream, seq, "kind")

    calls, warned = store.listed("--kind", "call")
    assert event_id in calls and WARNING in warned
    listed, _ = store.listed()  # reads of the trail are left out, this is no read
    assert event_id in listed
    reads, _ = store.listed("--kind", "audit_access")
    assert event_id not in reads


@pytest.mark.parametrize(
    ("column", "where", "forged", "option", "truth"),
    [
        ("tool", "tool = 'get_current_time'", "convert_time", "--tool", "get_current_time"),
        ("method", "method = 'tools/call'", "initialize", "--method", "tools/call"),
        ("outcome", "outcome = 'success'", "denied", "--outcome", "success"),
    ],
)
def test_edited_filter_column_does_not_make_the_event_match_the_forgery(
    store: Store, column: str, where: str, forged: str, option: str, truth: str
) -> None:
    stream, seq, event_id = store.event(f"{where} AND kind = 'call'")
    store.tamper(f"UPDATE events SET {column} = ? WHERE event_id = ?", (forged, event_id))
    _, report = store.verify()
    mismatch(report, stream, seq, column)

    matched, _ = store.listed(option, forged)
    assert event_id not in matched
    everything = store.run("events")  # the table shows the hashed value, and warns
    assert everything.returncode == 0 and WARNING in everything.stderr
    if column != "tool":  # an unindexed column: filtered on the body alone
        listed, warned = store.listed(option, truth)
        assert event_id in listed and WARNING in warned


def test_edited_event_id_does_not_answer_for_the_forged_id(store: Store) -> None:
    stream, seq, event_id = store.event("kind = 'call'")
    _, _, other = store.event(f"kind = 'call' AND event_id != '{event_id}'")
    forged = "01900000-0000-7000-8000-00000000f0f0"
    store.tamper("UPDATE events SET event_id = ? WHERE event_id = ?", (forged, event_id))
    _, report = store.verify()
    mismatch(report, stream, seq, "event_id")

    shown = store.run("show", "--json", forged)
    assert shown.returncode == 3 and shown.stdout == b"" and WARNING in shown.stderr
    assert store.run("show", "--json", other).returncode == 0


@pytest.mark.parametrize(
    ("column", "value"),
    [("host", "elsewhere.example"), ("pid", 1), ("server_name", "payments")],
)
def test_edited_stream_registration_is_named(store: Store, column: str, value: Any) -> None:
    stream, _, _ = store.event("principal_id = 'alice'")
    store.tamper(f"UPDATE streams SET {column} = ? WHERE stream = ?", (value, stream))
    status, report = store.verify()
    found = [f for f in report["findings"] if f["kind"] == "stream_record"]
    assert [f["stream"] for f in found] == [stream], report["findings"]
    assert column.replace("_", " ") in found[0]["detail"]
    assert status == 1


def test_deleted_stream_registration_is_named(store: Store) -> None:
    stream, _, _ = store.event("principal_id = 'alice'")
    store.tamper("DELETE FROM streams WHERE stream = ?", (stream,))
    status, report = store.verify()
    found = [f for f in report["findings"] if f["kind"] == "stream_record"]
    assert [f["stream"] for f in found] == [stream], report["findings"]
    assert "no registration" in found[0]["detail"] and status == 1


def _crashed_wrap(notary: Notary, time_cmd: list[str], store: Path) -> str:
    """Run a wrap, make one call, kill it (SIGKILL): the stream of a writer that is gone and
    that has no close record. Returns the stream."""
    with RawPipeClient(notary.wrap_argv(time_cmd, store=store), notary.env()) as client:
        client.request(INIT, timeout=60)
        client.request(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
             "params": {"name": "get_current_time", "arguments": {"timezone": "UTC"}}},
            timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not Store(str(store), notary).query("SELECT 1 FROM events WHERE kind = 'call'"):
            assert time.monotonic() < deadline, "the call was never stored"
            time.sleep(0.05)
        client.signal(signal.SIGKILL)
        client.wait(30)
    (stream,) = Store(str(store), notary).query("SELECT DISTINCT stream FROM events")[0]
    return str(stream)


@pytest.mark.parametrize("attack", ["host", "pid", "deleted"])
def test_a_dead_writers_stream_is_closed_whatever_its_registration_says(
    notary: Notary, time_cmd: list[str], tmp_path: Path, attack: str
) -> None:
    path = tmp_path / "audit.db"
    stream = _crashed_wrap(notary, time_cmd, path)
    store = Store(str(path), notary)
    if attack == "host":  # "on another host": never closed from here
        store.tamper("UPDATE streams SET host = 'elsewhere.example' WHERE stream = ?", (stream,))
    elif attack == "pid":  # "still running": this test's own process
        me = os.getpid()
        store.tamper(
            "UPDATE streams SET pid = ?, process_start = ? WHERE stream = ?",
            (me, process_start_token(me), stream),
        )
    else:
        store.tamper("DELETE FROM streams WHERE stream = ?", (stream,))
    _, report = store.verify()
    assert [f["stream"] for f in report["findings"] if f["kind"] == "stream_record"] == [stream]
    (mine,) = [s for s in report["stream_reports"] if s["stream"] == stream]
    assert mine["state"]["closure"] == "gone"

    run_trail(notary, time_cmd, path, 2)  # the next writer to start closes the dead stream
    ((body,),) = store.query(
        "SELECT body FROM events WHERE stream = ? ORDER BY seq DESC LIMIT 1", (stream,)
    )
    assert json.loads(bytes(body))["details"]["phase"] == "ended_uncleanly"
