"""Mixed retention in a directory archive: each archived event leaves it when its own total
period ends, not with the longest-lived event it was archived with, so `events --archive`
stops returning it while its longer-lived neighbours are still returned, and the GDPR storage
limitation check (`retention_enforced`) counts what the archive still holds. (The S3 archive:
tests/lifecycle/test_archive_s3.py.)"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from archive_expiry import (
    END,
    FIRST_RUN,
    SECOND_RUN,
    archived_events,
    check_mixed_expiry,
    retention,
)
from e2e_notary import Notary
from lifecycle_trail import SHORT_DAYS, build_aged_trail, mixed_retention_config, own_end, stamp


def test_each_archived_event_leaves_when_its_own_period_ends(
    notary: Notary, tmp_path: Path
) -> None:
    store = tmp_path / "audit.db"
    key = notary.home / ".local/share/mcp-notary/checkpoint.key"
    build_aged_trail(store, key, events=1_500, streams=1, days=300, end=END)
    url = str(tmp_path / "archive")
    check_mixed_expiry(notary, store, mixed_retention_config(tmp_path / "n.toml", url), url)


def test_storage_limitation_check_counts_the_archive(notary: Notary, tmp_path: Path) -> None:
    store = tmp_path / "audit.db"
    key = notary.home / ".local/share/mcp-notary/checkpoint.key"
    build_aged_trail(store, key, events=1_500, streams=1, days=300, end=END)
    url = str(tmp_path / "archive")
    config = mixed_retention_config(tmp_path / "n.toml", url)
    retention(notary, store, config, FIRST_RUN)

    def limitation() -> dict:
        out = tmp_path / "r.json"
        proc = notary.run("report", "--template", "gdpr", "--config", str(config),
                          "--from", stamp(FIRST_RUN - timedelta(days=400)),
                          "--to", stamp(SECOND_RUN), "--format", "json", "-o", str(out),
                          store=store, timeout=120)  # fmt: skip
        assert proc.returncode in (0, 1), proc.stderr.decode()[-2000:]
        model = json.loads(out.read_text())
        (gdpr,) = [t for t in model["templates"] if t["name"] == "gdpr"]
        (clause,) = [c for c in gdpr["clauses"] if c["clause"] == "Art. 5(1)(e)"]
        return dict(clause["result"])

    # As of the second run's day, before it ran: refunds past their 120 days sit in the archive.
    due = len([e for e in archived_events(url)
               if own_end(e) < SECOND_RUN - timedelta(days=1)])  # fmt: skip
    assert due > 0
    before = limitation()
    assert before["status"] == "fail"
    assert before["details"]["archive"] == url
    assert before["details"]["archived_past_period"] == due
    assert any("archived events past their own total period" in e["problem"]
               for e in before["exceptions"])  # fmt: skip

    retention(notary, store, config, SECOND_RUN)
    after = limitation()
    assert after["details"]["archived_past_period"] == 0
    assert after["details"]["archived_events"] == len(archived_events(url)) > 0
    assert not any("archive" in e["problem"] for e in after["exceptions"])
    assert SHORT_DAYS < 365  # the check's own total_days (365) is not what caught the refunds
