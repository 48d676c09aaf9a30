"""The mixed-retention archive scenario the directory and the S3 archive tests share: a trail
whose short-lived tool is archived beside long-lived ones, two retention runs, and what the
archive then holds and `events --archive` returns. Dated relative to today: `events` judges
the archive by the real clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from e2e_notary import Notary
from lifecycle_trail import SHORT_TOOL, own_end, stamp

from mcp_notary.ledger.segment import decode_segment
from mcp_notary.lifecycle.archive import open_archive

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
END = TODAY - timedelta(days=130)  # the trail's last event
FIRST_RUN = END + timedelta(days=1)  # archives everything past 30 days
SECOND_RUN = FIRST_RUN + timedelta(days=60)  # the oldest archived refunds' 120 days are over


def archived_events(url: str) -> list[dict[str, Any]]:
    archive = open_archive(url)
    return [json.loads(b) for n in archive.names() for b in decode_segment(archive.get(n)).bodies]


def retention(notary: Notary, store: Path, config: Path, now: datetime) -> dict[str, Any]:
    proc = notary.run("retention", "apply", "--config", str(config), "--now", stamp(now),
                      "--json", store=store, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return json.loads(proc.stdout)


def check_mixed_expiry(notary: Notary, store: Path, config: Path, url: str) -> None:
    """The scenario both archives share: two runs, then what the archive holds and returns."""
    first = retention(notary, store, config, FIRST_RUN)
    assert first["archived_events"] > 0
    archived = archived_events(url)
    assert {e["tool"] for e in archived} >= {SHORT_TOOL, "lookup_order"}
    # A refund and a longer-lived neighbour archived side by side, the refund's period over:
    window = [e for e in archived if own_end(e) < SECOND_RUN - timedelta(days=1)
              and e["tool"] == SHORT_TOOL]  # fmt: skip
    assert window
    since, until = min(e["timestamp"] for e in window), max(e["timestamp"] for e in window)

    retention(notary, store, config, SECOND_RUN)
    left = archived_events(url)
    # Gone from the archive itself (a day's grace: segments group the events of one day)...
    assert not [e for e in left if own_end(e) < SECOND_RUN - timedelta(days=1)]
    # ...while the neighbours of the same days are still there.
    assert [e for e in left if e["tool"] != SHORT_TOOL and since <= e["timestamp"] <= until]

    listed = notary.events(store, "--archive", url, "--since", since, "--until", until)
    assert listed and not [e for e in listed if own_end(e) <= datetime.now(UTC)]
    assert {e["tool"] for e in listed} >= {"lookup_order"}
    refunds = notary.events(store, "--archive", url, "--tool", SHORT_TOOL)
    assert refunds == [e for e in refunds if own_end(e) > datetime.now(UTC)]
    verified = notary.run("verify", "--archive", url, "--json", store=store, timeout=120)
    assert verified.returncode == 0, verified.stdout.decode()[-3000:]
