"""Crypto-shredding end to end: `wrap` seals the payload of calls that carry a data subject
(configured in `[erasure]`) under that subject's key; `erase` destroys the key, refused while a
legal hold covers the subject, and the trail still verifies."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import anyio
from e2e_notary import Notary, store_files
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.lifecycle.sealing import ERASED, open_body
from mcp_notary.lifecycle.vault import SubjectKeyring, load_or_create_vault_key

CONFIG = """
[erasure]
subjects = [{ tool = "get_current_time", argument = "/timezone" }]
"""
ERASED_ZONE = "Asia/Kathmandu"  # the data subject to be erased
KEPT_ZONE = "Pacific/Chatham"  # another subject, untouched


async def calls(params: StdioServerParameters) -> list[str]:
    texts = []
    with anyio.fail_after(60):
        async with Client(params) as client:
            for zone in (ERASED_ZONE, KEPT_ZONE, ERASED_ZONE):
                result = await client.call_tool("get_current_time", {"timezone": zone})
                texts.append(result.content[0].text)  # type: ignore[union-attr]
            await client.call_tool("convert_time", {
                "source_timezone": "UTC", "time": "12:00", "target_timezone": "America/Lima",
            })  # fmt: skip
    return texts


def raw_store_bytes(store: Path) -> bytes:
    return b"".join(p.read_bytes() for p in store_files(store))


def sealed_calls(store: Path) -> list[dict]:
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        bodies = [json.loads(r[0]) for r in db.execute("SELECT body FROM events WHERE tool = ?",
                                                         ("get_current_time",))]  # fmt: skip
    finally:
        db.close()
    return bodies


def test_erase_shreds_one_subject_and_keeps_the_chain(
    notary: Notary, time_cmd: list[str], tmp_path: Path
) -> None:
    store = tmp_path / "audit.db"
    config = tmp_path / "mcp-notary.toml"
    config.write_text(CONFIG)
    vault_file = tmp_path / "vault.key"
    extra = {"MCP_NOTARY_VAULT_KEY_FILE": str(vault_file)}
    params = notary.wrap_params(time_cmd, store, options=["--config", str(config)], extra_env=extra)
    answers = anyio.run(calls, params)
    assert ERASED_ZONE in answers[0] and KEPT_ZONE in answers[1]  # the server got real values

    # Sealed at capture: neither subject's value is anywhere in the store's files.
    raw = raw_store_bytes(store)
    assert ERASED_ZONE.encode() not in raw and KEPT_ZONE.encode() not in raw
    events = sealed_calls(store)
    assert len(events) == 3
    assert all("$sealed" in e["arguments"] and "$sealed" in e["response_summary"] for e in events)
    # `convert_time` names no subject under the rule: not sealed (its target zone is visible).
    assert b"America/Lima" in raw

    # An auditor with the vault key opens them.
    vault = load_or_create_vault_key(vault_file)
    db = SQLiteStore(store, readonly=True)
    keyring = SubjectKeyring(db, vault)
    opened = [open_body(e, keyring.open) for e in events]
    assert [o["arguments"]["timezone"] for o in opened] == [ERASED_ZONE, KEPT_ZONE, ERASED_ZONE]
    key_id = vault.key_id(ERASED_ZONE)
    wrapped = db.subject_key(key_id)
    db.close()
    assert wrapped is not None and wrapped in raw_store_bytes(store)

    def cli(*args: str) -> int:
        proc = notary.run(*args, store=store)
        return proc.returncode

    env_args = ("--vault-key", str(vault_file))

    def unsealed(event_id: str) -> dict:
        proc = notary.run("show", event_id, "--unseal", *env_args, "--json", store=store)
        assert proc.returncode == 0, proc.stderr.decode()
        return json.loads(proc.stdout)["unsealed"]

    assert unsealed(events[0]["event_id"])["arguments"] == {"timezone": ERASED_ZONE}
    # A hold on the subject blocks erasure.
    proc = notary.run("hold", "place", "--subject", ERASED_ZONE, *env_args, "--reason", "DSAR-9",
                      store=store)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    hold_id = proc.stdout.decode().split()[1].rstrip(":")
    refused = notary.run("erase", "--subject", ERASED_ZONE, *env_args, "--reason", "Art. 17",
                         store=store)  # fmt: skip
    assert refused.returncode == 6
    assert hold_id in refused.stderr.decode()
    assert wrapped in raw_store_bytes(store)

    # Released, the erasure goes ahead and is recorded.
    assert cli("hold", "release", hold_id, "--reason", "closed") == 0
    done = notary.run("erase", "--subject", ERASED_ZONE, *env_args, "--reason", "Art. 17",
                      store=store)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert "2 sealed event(s)" in done.stdout.decode()

    raw = raw_store_bytes(store)
    assert wrapped not in raw  # no copy of the key left in the database, WAL or -shm
    assert ERASED_ZONE.encode() not in raw
    db = SQLiteStore(store, readonly=True)
    keyring = SubjectKeyring(db, vault)
    assert db.subject_key(key_id) is None
    reopened = [open_body(e, keyring.open) for e in sealed_calls(store)]
    db.close()
    assert reopened[0]["arguments"] == {ERASED: [key_id]}
    assert reopened[2]["response_summary"] == {ERASED: [key_id]}
    assert reopened[1]["arguments"]["timezone"] == KEPT_ZONE  # the other subject is untouched

    assert unsealed(events[0]["event_id"])["arguments"] == {ERASED: [key_id]}
    assert unsealed(events[1]["event_id"])["arguments"] == {"timezone": KEPT_ZONE}
    reads = [e["method"] for e in notary.events(store, "--kind", "audit_access")]
    assert reads.count("audit/unseal") == 3  # each opening is an audited read

    erasures = notary.events(store, "--kind", "erasure")
    assert len(erasures) == 1
    assert erasures[0]["details"]["subject_key"] == key_id
    assert erasures[0]["details"]["sealed_events"] == 2
    assert ERASED_ZONE not in json.dumps(erasures[0])

    # The chain covers the ciphertext, so the trail verifies after the key is gone.
    verified = notary.verify(store, "--json")
    assert verified.returncode == 0, verified.stdout.decode()[-3000:]

    # Erasing again is a clear error, not a silent success.
    again = notary.run("erase", "--subject", ERASED_ZONE, *env_args, "--reason", "again",
                       store=store)  # fmt: skip
    assert again.returncode == 3
    assert "nothing sealed, or erased" in again.stderr.decode()


def test_payload_period_shreds_payloads_and_keeps_skeletons(
    notary: Notary, time_cmd: list[str], tmp_path: Path
) -> None:
    store = tmp_path / "audit.db"
    config = tmp_path / "mcp-notary.toml"
    config.write_text('[retention]\npayload = "P1D"\n')
    vault_file = tmp_path / "vault.key"
    params = notary.wrap_params(
        time_cmd,
        store,
        options=["--config", str(config)],
        extra_env={"MCP_NOTARY_VAULT_KEY_FILE": str(vault_file)},
    )
    anyio.run(calls, params)
    raw = raw_store_bytes(store)
    assert ERASED_ZONE.encode() not in raw and b"America/Lima" not in raw  # every payload sealed
    events = sealed_calls(store)
    day_key = events[0]["details"]["sealed_under"]
    assert day_key == [f"payload_{events[0]['timestamp'][:10]}"]

    vault = load_or_create_vault_key(vault_file)
    db = SQLiteStore(store, readonly=True)
    assert open_body(events[0], SubjectKeyring(db, vault).open)["arguments"] == {
        "timezone": ERASED_ZONE
    }
    db.close()

    midnight = datetime.fromisoformat(events[0]["timestamp"][:10] + "T00:00:00+00:00")
    now = (midnight + timedelta(days=3)).isoformat()

    def apply() -> dict:
        proc = notary.run("retention", "apply", "--config", str(config), "--now", now, "--json",
                          store=store)  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode()
        return json.loads(proc.stdout)

    # A hold on the day's convert_time call keeps the whole day's key.
    placed = notary.run("hold", "place", "--tool", "convert_time", "--reason", "audit 12",
                        store=store)  # fmt: skip
    hold_id = placed.stdout.decode().split()[1].rstrip(":")
    held = apply()
    assert held["payload_keys_held"] == day_key and held["payload_keys_destroyed"] == []
    assert notary.run("hold", "release", hold_id, "--reason", "done", store=store).returncode == 0
    run = apply()
    assert run["payload_keys_destroyed"] == day_key

    db = SQLiteStore(store, readonly=True)
    keyring = SubjectKeyring(db, vault)
    after = sealed_calls(store)
    assert [open_body(e, keyring.open)["arguments"] for e in after] == [{ERASED: day_key}] * 3
    db.close()
    # The skeleton stays: who called which tool, when, with what outcome.
    assert [(e["tool"], e["outcome"]) for e in after] == [("get_current_time", "success")] * 3
    assert notary.verify(store).returncode == 0
