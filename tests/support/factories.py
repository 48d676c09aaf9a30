"""Small builders shared by unit tests."""

from __future__ import annotations

from mcp_notary.events.model import AuditEvent, Principal
from mcp_notary.ids import new_event_id, utc_timestamp
from mcp_notary.ledger.store import Store, StreamHead, StreamInfo, prepare_row


def event(tool: str | None = "t", principal: str = "alice", ts: float | None = None) -> AuditEvent:
    return AuditEvent(
        event_id=new_event_id(ts),
        timestamp=utc_timestamp(ts),
        kind="call",
        principal=Principal(principal, "user", "config"),
        method="tools/call" if tool else "ping",
        tool=tool,
        outcome="success",
    )


def stream_info(stream: str) -> StreamInfo:
    return StreamInfo(stream, utc_timestamp(), "host", 1, "0", "srv")


def append(store: Store, stream: str, events: list[AuditEvent]) -> None:
    head = store.head(stream)
    rows = []
    for e in events:
        row = prepare_row(e, stream, head)
        head = StreamHead(row.seq, row.chain_hash)
        rows.append(row)
    store.append_batch(rows)
