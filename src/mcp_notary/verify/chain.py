"""Chain verification: recompute every stream from its stored bytes. Pure: rows in, findings out.

Each check is a numbered step with its own finding, so a report says exactly what is wrong and
where: (1) the body is the JSON it claims to be, (2) it names the stream and seq it is stored
under, (3) seq is contiguous, (4) leaf hash and (5) chain hash recompute from the bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Literal

from mcp_notary.ledger.canonical import GENESIS_HASH, chain_hash
from mcp_notary.ledger.merkle import leaf_hash
from mcp_notary.ledger.store import EventRow

FindingKind = Literal["modified", "missing", "reordered", "unreadable", "empty_stream"]
Severity = Literal["integrity", "incomplete"]


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    stream: str
    seq: int | None
    detail: str
    severity: Severity = "integrity"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(self) -> str:
        where = f"{self.stream} seq {self.seq}" if self.seq is not None else self.stream
        return f"{self.kind}: {where}: {self.detail}"


def verify_stream(
    stream: str,
    rows: Iterable[EventRow],
    on_row: Callable[[], None] | None = None,
) -> Iterator[Finding]:
    """Findings for one stream's rows (given in stored seq order). Empty when intact."""
    prev = GENESIS_HASH
    expected_seq = 1
    seen = 0
    for row in rows:
        seen += 1
        if on_row is not None:
            on_row()
        if row.seq != expected_seq:
            if row.seq > expected_seq:
                yield Finding(
                    "missing",
                    stream,
                    expected_seq,
                    f"seq {expected_seq}..{row.seq - 1} absent from the store",
                )
            else:
                yield Finding("reordered", stream, row.seq, f"seq {row.seq} stored out of order")
            expected_seq = row.seq
        try:
            body = json.loads(row.body)
            claimed = (body.get("stream"), body.get("seq"))
        except (ValueError, AttributeError):
            yield Finding("unreadable", stream, row.seq, "stored bytes are not a JSON event")
            claimed = (None, None)
        else:
            if claimed != (stream, row.seq):
                yield Finding(
                    "reordered",
                    stream,
                    row.seq,
                    f"event stored at seq {row.seq} says it is {claimed[0]} seq {claimed[1]}",
                )
        if leaf_hash(row.body) != row.leaf_hash:
            yield Finding("modified", stream, row.seq, "event bytes do not match their leaf hash")
        recomputed = chain_hash(prev, row.body)
        if recomputed != row.chain_hash:
            yield Finding(
                "modified",
                stream,
                row.seq,
                "chain hash does not follow from the previous event and these bytes",
            )
        # Continue from the stored hash so one bad row is reported once, not for every later row.
        prev = row.chain_hash
        expected_seq += 1
    if seen == 0:
        yield Finding("empty_stream", stream, None, "stream has no stored events", "incomplete")
