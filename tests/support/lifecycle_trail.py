"""An aged audit trail for the lifecycle suites: many events spread over a long period, in
several streams, checkpointed with the same key file the CLI uses, so retention has something
old to act on. Built through the library (the capture path cannot backdate events)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from mcp_notary.events.model import AuditEvent, Principal
from mcp_notary.ids import new_event_id
from mcp_notary.ledger.checkpointer import CheckpointSettings, KeySigner, seal_stream
from mcp_notary.ledger.keys import load_or_create_signing_key
from mcp_notary.ledger.store import EventRow, Store, StreamHead, StreamInfo, prepare_row
from mcp_notary.ledger.stores import open_store

TOOLS = ("lookup_order", "refund", "get_current_time", "search_docs")
PRINCIPALS = ("alice", "bob", "carol", "mallory")


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class AgedTrail:
    store: Path | str
    streams: list[str]
    events: int
    first: datetime
    last: datetime


def build_aged_trail(
    store: Path | str, signing_key: Path, *, events: int, streams: int, days: int, end: datetime
) -> AgedTrail:
    """`events` calls over `days` days ending at `end`, round-robin over `streams` streams
    (each in time order), every stream checkpointed and sealed. `store`: a SQLite path or a
    PostgreSQL URL."""
    db: Store = open_store(str(store))
    names = [f"host/{1000 + i}/aged-{i}" for i in range(streams)]
    heads = {name: StreamHead() for name in names}
    for name in names:
        pid = int(name.split("/")[1])  # the registration agrees with the name (verify checks)
        db.create_stream(
            StreamInfo(name, stamp(end - timedelta(days=days)), "host", pid, "0", "srv")
        )
    start = end - timedelta(days=days)
    step = timedelta(days=days) / events
    batch: dict[str, list[EventRow]] = {name: [] for name in names}
    for i in range(events):
        moment = start + step * i
        name = names[i % streams]
        tool = TOOLS[i % len(TOOLS)]
        principal = PRINCIPALS[(i // 7) % len(PRINCIPALS)]
        event = AuditEvent(
            event_id=new_event_id(moment.timestamp()),
            timestamp=stamp(moment),
            kind="call",
            principal=Principal(principal, "user", "config"),
            method="tools/call",
            tool=tool,
            arguments={"order": f"ord-{i:06d}", "note": f"call {i} by {principal}"},
            outcome="success" if i % 11 else "tool_error",
            response_summary={"text": f"result of call {i}"},
            duration_ms=1.5,
            transport="stdio",
        )
        row = prepare_row(event, name, heads[name])
        heads[name] = StreamHead(row.seq, row.chain_hash)
        batch[name].append(row)
        if len(batch[name]) >= 5000:
            db.append_batch(batch[name])
            batch[name] = []
    for name in names:
        db.append_batch(batch[name])
    settings = CheckpointSettings(KeySigner(load_or_create_signing_key(signing_key)))
    for name in names:
        seal_stream(db, name, settings)
    db.close()
    return AgedTrail(store, names, events, start, start + step * (events - 1))


# -- mixed retention: a short-lived tool among long-lived ones ---------------------------------
SHORT_TOOL, SHORT_DAYS, LONG_DAYS = "refund", 120, 365


def mixed_retention_config(path: Path, archive_url: str) -> Path:
    """Everything leaves the store after 30 days; `refund` calls are kept 120 days in all,
    the others a year: in one stream, interleaved, so an archive segment that mixed them would
    keep the refunds as long as their neighbours."""
    path.write_text(
        f'[retention]\nhot = "P30D"\ntotal = "P{LONG_DAYS}D"\narchive = "{archive_url}"\n'
        f'[[retention.rules]]\ntool = "{SHORT_TOOL}"\nhot = "P30D"\ntotal = "P{SHORT_DAYS}D"\n'
    )
    return path


def own_end(event: dict[str, object]) -> datetime:
    """When the total period of a trail event ends under `mixed_retention_config`."""
    days = SHORT_DAYS if event["tool"] == SHORT_TOOL else LONG_DAYS
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")) + timedelta(
        days=days
    )
