"""The API's verification (and so the console's integrity page) after retention: pruned ranges
a run recorded are deleted by policy, not missing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from e2e_notary import Notary
from lifecycle_trail import build_aged_trail
from starlette.testclient import TestClient

from mcp_notary.access.control import Caller
from mcp_notary.access.readside import open_read_side
from mcp_notary.events.model import Principal
from mcp_notary.ledger.keys import load_trusted_keys
from mcp_notary.server import ReadService, ServerSettings, create_app


def test_api_verify_reports_pruned_ranges_as_deleted_by_policy(
    notary: Notary, tmp_path: Path
) -> None:
    store = tmp_path / "audit.db"
    key = notary.home / ".local/share/mcp-notary/checkpoint.key"
    trail = build_aged_trail(store, key, events=2_000, streams=2, days=400,
                             end=datetime(2026, 11, 1, tzinfo=UTC))  # fmt: skip
    config = tmp_path / "mcp-notary.toml"
    config.write_text('[retention]\ntotal = "P365D"\n')
    applied = notary.run("retention", "apply", "--config", str(config), "--now",
                         "2026-11-24T00:00:00Z", "--json", store=store)  # fmt: skip
    assert applied.returncode == 0, applied.stderr.decode()
    expired = json.loads(applied.stdout)["expired_events"]
    assert expired > 100

    side = open_read_side(
        str(store),
        process_principal=Principal("svc", "service", "config"),
        interface="api",
        label="test serve",
        signing_key=key,
    )
    engine = side.query_engine()
    try:
        owner = side.control.local_caller(Principal("root", "user", "os"))
        side.control.grant(owner, "adam", "admin", "cli", "bootstrap")
        admin = Caller(Principal("adam", "user", "token"), frozenset({"admin"}), "token")
        token, _record = side.control.create_token(admin, "adam", "t", None, "cli")
        vkey = key.with_suffix(".vkey")
        app = create_app(
            ReadService(side, engine, ServerSettings(trusted_keys=tuple(load_trusted_keys(vkey))))
        )
        client = TestClient(app, base_url="http://testserver")
        response = client.get("/api/verify", headers={"Authorization": f"Bearer {token.value}"})
        assert response.status_code == 200, response.text
        report = response.json()
    finally:
        engine.close()
        side.close()
    # Only the server's own reader stream, still open, may lack a checkpoint yet.
    assert all(
        f["kind"] == "uncovered" and f["stream"] not in trail.streams for f in report["findings"]
    ), report["findings"]
    pruned = {
        s["stream"]: s["pruned_by_policy"]
        for s in report["stream_reports"]
        if s["pruned_by_policy"]
    }
    assert set(pruned) == set(trail.streams)
    assert sum(r["last"] - r["first"] + 1 for rs in pruned.values() for r in rs) == expired
