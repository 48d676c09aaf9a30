"""Monthly partitions of the PostgreSQL `events` table (migration 4), and what retention does
with them.

A pruned event's position, leaf and chain hash are copied into `pruned_events` first, exactly
as for a row delete; then a month whose every row was pruned is dropped whole, a month that
keeps only a few rows (never-pruned lifecycle records, held events) is compacted (its kept rows
copied byte for byte into a fresh partition, the old one dropped), and any other month loses
its rows one by one. A partition is dropped only if, under a lock that keeps rows from being
added to it, it holds exactly as many rows as the run copied from it into `pruned_events`;
the run as a whole is refused unless exactly the copied rows left `events`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import psycopg
from psycopg import sql

from mcp_notary.errors import StoreError
from mcp_notary.ledger.store import EVENT_COLUMNS

COMPACT_MAX_KEPT = 0.1
"""A month keeping at most this share of its rows is compacted rather than deleted row by
row: copying a few kept rows is cheaper than deleting (and later vacuuming) many."""

LEGACY_PARTITION = "events_legacy"
"""Rows written before partitioning (`month = ''`)."""

_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
_PARTITION = re.compile(r"events_([0-9]{4})_([0-9]{2})")

Action = Literal["drop", "compact", "rows"]


def month_of(timestamp: str) -> str:
    """The partition key of an event: the 'YYYY-MM' its RFC 3339 timestamp starts with; ''
    for anything else, which lands with the legacy rows (or in the default partition) rather
    than failing the append."""
    month = timestamp[:7]
    return month if _MONTH.fullmatch(month) else ""


def partition_month(name: str) -> str | None:
    """The month a partition holds, from its name ('' for the legacy partition); None for the
    default partition and anything else."""
    if name == LEGACY_PARTITION:
        return ""
    found = _PARTITION.fullmatch(name)
    return f"{found[1]}-{found[2]}" if found else None


def plan_partitions(sizes: Mapping[str, int], pruned: Mapping[str, int]) -> dict[str, Action]:
    """For each month with a partition (`sizes`: rows held) in which `pruned` rows are being
    pruned: drop it, compact it, or delete its pruned rows one by one. Pure."""
    actions: dict[str, Action] = {}
    for month, count in pruned.items():
        size = sizes.get(month)
        if size is None or count <= 0:
            continue
        kept = size - count
        if kept <= 0:
            actions[month] = "drop"
        elif kept <= size * COMPACT_MAX_KEPT and month != "":
            actions[month] = "compact"  # the legacy partition has no month to recreate
        else:
            actions[month] = "rows"
    return actions


def partitions(db: psycopg.Connection[Any]) -> dict[str, str]:
    """month -> partition name, for the partitions that hold one month (or the legacy rows)."""
    rows = db.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'events'::regclass"
    ).fetchall()
    out = {}
    for (name,) in rows:
        month = partition_month(name)
        if month is not None:
            out[month] = name
    return out


AHEAD_LOCK_TIMEOUT = "200ms"


def next_month(month: str) -> str:
    year, number = int(month[:4]), int(month[5:7])
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


def create_partition(db: psycopg.Connection[Any], month: str) -> None:
    """Make sure `month` has its partition (a no-op when it has, or when its rows are already
    in the default partition). Any role with the writer role may call it."""
    db.execute("SELECT mcp_notary_event_partition(%s)", (month,))


def create_partition_ahead(db: psycopg.Connection[Any], month: str) -> bool:
    """Try to create `month`'s partition before any row needs it; give up (False) rather than
    wait long for the table lock: a long query holding `events` would otherwise stall every
    writer queued behind this creation. Call it outside a transaction."""
    try:
        with db.transaction():
            db.execute(f"SET LOCAL lock_timeout = '{AHEAD_LOCK_TIMEOUT}'")
            create_partition(db, month)
    except psycopg.errors.LockNotAvailable:
        return False
    return True


PRUNE_COPY_BY_MONTH = (
    "WITH moved AS (SELECT stream, seq, event_id, timestamp, kind, leaf_hash, chain_hash, month "
    "FROM events WHERE stream = %s AND seq >= %s AND seq <= %s), "
    "kept AS (INSERT INTO pruned_events (stream, seq, event_id, timestamp, kind, leaf_hash, "
    "chain_hash, run_id) SELECT stream, seq, event_id, timestamp, kind, leaf_hash, chain_hash, "
    "%s FROM moved) SELECT month, count(*) FROM moved GROUP BY month"
)
"""The store's `PRUNE_COPY` for one range, counting the copied events per month in the same
pass (parameters: stream, first, last, run id)."""

_UNPRUNED = (
    "FROM {part} e WHERE NOT EXISTS (SELECT 1 FROM pruned_events p WHERE p.stream = e.stream "
    "AND p.seq = e.seq AND p.leaf_hash = e.leaf_hash AND p.chain_hash = e.chain_hash)"
)


def _count(db: psycopg.Connection[Any], table: sql.Composable) -> int:
    row = db.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
    return int(row[0]) if row else 0


def drop_partition(db: psycopg.Connection[Any], name: str, copied: int) -> int:
    """Drop partition `name`, all `copied` of whose rows this transaction has copied into
    `pruned_events`. It is locked against inserts first (SHARE, to the end of the
    transaction) and refused unless it then holds exactly that many rows."""
    part = sql.Identifier(name)
    db.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(part))
    held = _count(db, part)
    if held != copied:
        raise StoreError(f"partition {name} holds {held} events, {copied} pruned; not dropped")
    db.execute(sql.SQL("DROP TABLE {}").format(part))
    return held


def compact_partition(db: psycopg.Connection[Any], month: str, name: str) -> int:
    """Replace partition `name` by a fresh one holding only its rows not in `pruned_events`,
    copied unchanged; return how many rows went."""
    old = sql.Identifier(f"{name}_compacting")
    db.execute(sql.SQL("ALTER TABLE events DETACH PARTITION {}").format(sql.Identifier(name)))
    db.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(name), old))
    create_partition(db, month)
    held = _count(db, old)  # detached: no writer reaches it any more
    columns = sql.SQL(f"{EVENT_COLUMNS}, month")
    kept = db.execute(
        sql.SQL("INSERT INTO events ({cols}) SELECT {cols} " + _UNPRUNED).format(
            cols=columns, part=old
        )
    ).rowcount
    db.execute(sql.SQL("DROP TABLE {}").format(old))
    return held - kept


def remove_pruned(
    db: psycopg.Connection[Any],
    ranges: Mapping[str, Sequence[tuple[int, int]]],
    pruned: Mapping[str, int],
) -> int:
    """Remove from `events` the rows just copied into `pruned_events` (`pruned`: how many per
    month), dropping or compacting the months that allow it, inside the caller's transaction.
    Refuses (StoreError, so the caller rolls back) unless exactly those rows went."""
    parts = partitions(db)
    # Not locked: the months left to row deletes include the current one under a short `hot`
    # period, and writers must not wait on retention. A drop re-counts under a lock.
    sizes = {m: _count(db, sql.Identifier(parts[m])) for m in pruned if m in parts}
    actions = plan_partitions(sizes, pruned)
    by_rows = [m for m in pruned if actions.get(m, "rows") == "rows"]
    removed = 0
    if by_rows:  # first, so that the table lock the drops take is held only briefly
        for stream, stream_ranges in ranges.items():
            for first, last in stream_ranges:
                removed += db.execute(
                    "DELETE FROM events WHERE stream = %s AND seq >= %s AND seq <= %s "
                    "AND month = ANY(%s)",
                    (stream, first, last, by_rows),
                ).rowcount
    for month, action in sorted(actions.items()):
        if action == "drop":
            removed += drop_partition(db, parts[month], pruned[month])
        elif action == "compact":
            removed += compact_partition(db, month, parts[month])
    if removed != sum(pruned.values()):
        raise StoreError(f"pruning removed {removed} events, expected {sum(pruned.values())}")
    return removed
