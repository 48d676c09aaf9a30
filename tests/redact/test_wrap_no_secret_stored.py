"""The promise of redaction, end to end: a secret that crosses `wrap` never reaches the store's
bytes (database, WAL, shared memory) or `events --json`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from e2e_notary import Notary, store_files
from mcp import Client

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "secrets.jsonl"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def corpus() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def raw_store_bytes(store: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in store_files(store)}


def leaks(secrets: list[str], haystacks: dict[str, bytes]) -> list[str]:
    found = []
    for secret in secrets:
        needle = secret.encode()
        found += [f"{secret[:12]}... in {name}" for name, hay in haystacks.items() if needle in hay]
    return found


def test_corpus_through_echo_and_get_env_leaves_no_secret(
    notary: Notary, everything_cmd: list[str], store_path: Path
) -> None:
    entries = [e for e in corpus() if e["secrets"]]
    secrets = sorted({s for e in entries for s in e["secrets"]})
    env = {f"NOTARY_CORPUS_{i}": e["text"] for i, e in enumerate(entries)}
    params = notary.wrap_params(everything_cmd, store_path, extra_env=env)
    during_run: dict[str, bytes] = {}

    async def drive() -> None:
        async with Client(params, mode="legacy") as client:
            for entry in entries:
                result = await client.call_tool("echo", {"message": entry["text"]})
                assert entry["text"] in result.content[0].text  # the client gets it verbatim
            env_dump = await client.call_tool("get-env", {})
            assert "NOTARY_CORPUS_0" in env_dump.content[0].text
            time.sleep(0.5)  # past the group-commit window: the WAL holds the events now
            during_run.update(raw_store_bytes(store_path))

    asyncio.run(drive())
    assert any(name.endswith("-wal") for name in during_run), sorted(during_run)
    after = raw_store_bytes(store_path)
    printed = notary.events_raw(store_path)
    assert printed.returncode == 0
    problems = leaks(
        secrets,
        {
            **{f"live {k}": v for k, v in during_run.items()},
            **after,
            "events --json": printed.stdout,
        },
    )
    assert problems == [], problems[:10]
    echoed = [e for e in notary.events(store_path) if e.get("tool") == "echo"]
    assert len(echoed) == len(entries)
    assert all(e["sensitive_fields"] for e in echoed)


def test_write_only_argument_is_masked_but_reaches_the_tool(
    notary: Notary, store_path: Path
) -> None:
    license_code = "plain-looking-value-7"  # matches no detector: only the schema says it is secret
    server = [sys.executable, str(FIXTURES / "writeonly_server.py")]
    params = notary.wrap_params(server, store_path)

    async def drive() -> str:
        async with Client(params, mode="legacy") as client:
            await client.list_tools()
            result = await client.call_tool(
                "connect", {"license_code": license_code, "host": "db.local"}
            )
            return str(result.content[0].text)

    text = asyncio.run(drive())
    assert hashlib.sha256(license_code.encode()).hexdigest() in text  # the tool saw the real value
    assert leaks([license_code], raw_store_bytes(store_path)) == []
    (event,) = [e for e in notary.events(store_path) if e.get("tool") == "connect"]
    assert event["arguments"]["host"] == "db.local"
    assert event["arguments"]["license_code"].startswith("[REDACTED:")
    assert "/arguments/license_code" in {f["pointer"] for f in event["sensitive_fields"]}
