"""Evidence reports after retention: runs and holds listed, storage limitation (GDPR 5(1)(e))
and PCI DSS 10.5.1 judged with the archive counted, and the pruned ranges not taken for gaps.
On both backends: a SQLite file and a PostgreSQL schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from e2e_notary import Notary
from lifecycle_trail import build_aged_trail
from pgtest import pg_schema

# The report's period ends tomorrow, after the hold below is placed and retention runs (now).
TO = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")


def clause(report: dict, template: str, name: str) -> dict:
    t = next(t for t in report["templates"] if t["name"] == template)
    return next(c for c in t["clauses"] if c["clause"] == name)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        with pg_schema("reportlife") as url:
            yield url
        return
    yield str(tmp_path / "audit.db")


def test_report_after_retention(store: str, notary: Notary, tmp_path: Path) -> None:
    key = notary.home / ".local/share/mcp-notary/checkpoint.key"
    build_aged_trail(store, key, events=4_000, streams=2, days=400,
                     end=datetime.now(UTC) - timedelta(days=20))  # fmt: skip
    config = tmp_path / "mcp-notary.toml"
    config.write_text(f'[retention]\nhot = "P90D"\ntotal = "P365D"\narchive = "{tmp_path}/a"\n')

    def report() -> dict:
        proc = notary.run("report", "--template", "gdpr,pci-dss", "--from", "2025-01-01",
                          "--to", TO, "--format", "json", "-o", str(tmp_path / "r.json"),
                          store=store, timeout=120)  # type: ignore[arg-type]  # fmt: skip
        assert proc.returncode in (0, 1), proc.stderr.decode()[-2000:]
        return json.loads((tmp_path / "r.json").read_text())

    before = report()
    limitation = clause(before, "gdpr", "Art. 5(1)(e)")["result"]
    assert limitation["status"] == "fail"
    assert limitation["details"]["events_past_total"] > 300
    assert before["retention_runs"]["runs"] == []

    placed = notary.run("hold", "place", "--principal", "mallory", "--tool", "refund",
                        "--reason", "case 7", store=store)  # type: ignore[arg-type]  # fmt: skip
    assert placed.returncode == 0, placed.stderr.decode()
    applied = notary.run("retention", "apply", "--config", str(config), "--json",
                         store=store)  # type: ignore[arg-type]  # fmt: skip
    assert applied.returncode == 0, applied.stderr.decode()
    run = json.loads(applied.stdout)

    after = report()
    assert after["verification"]["result"] == "intact"  # pruned ranges are not gaps
    runs = after["retention_runs"]["runs"]
    assert [r["run_id"] for r in runs] == [run["run_id"]]
    assert runs[0]["archived_events"] == run["archived_events"] > 0
    assert [h["principal"] for h in after["legal_holds"]["holds"]] == ["mallory"]
    assert [c["action"] for c in after["legal_holds"]["changes"]] == ["placed"]
    limitation = clause(after, "gdpr", "Art. 5(1)(e)")["result"]
    # Nothing governed is past 365 days any more; the old held refunds are not counted...
    assert limitation["details"]["events_past_total"] == 0
    # ...but this trail was captured without a payload period: its payloads sit in the clear.
    assert limitation["details"]["clear_payloads_past_period"] > 0
    assert limitation["status"] == "fail"
    oldest = clause(after, "pci-dss", "10.5.1")["result"]
    assert oldest["status"] == "pass", oldest
    # The held refunds keep the store's oldest event; the archive reaches back to the total.
    archived = datetime.fromisoformat(oldest["details"]["oldest_in_archive"].replace("Z", "+00:00"))
    assert timedelta(days=364) < datetime.now(UTC) - archived < timedelta(days=366)
