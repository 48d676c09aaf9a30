"""`mcp-notary sql "SELECT ..."`: read-only SQL over the store (SQLite or PostgreSQL), audited."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from mcp_notary.cli.access import local_read_side, purpose_option, require
from mcp_notary.cli.main import store_option
from mcp_notary.cli.terminal import cell
from mcp_notary.query.model import QueryError
from mcp_notary.query.sql import MAX_ROWS, SqlRefused, run_readonly_sql


@click.command()
@store_option
@click.argument("statement")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one object per row.")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_ROWS),
    default=1000,
    show_default=True,
    help="At most this many rows.",
)
@purpose_option
def sql(store: str | None, statement: str, as_json: bool, limit: int, purpose: str | None) -> None:
    """Run one read-only SELECT against the store. Tables: events, pruned_events, streams,
    checkpoints, and on SQLite meta and the search index events_fts; on PostgreSQL the
    partitions of events (events_YYYY_MM, events_default) and schema_migrations. Anything but
    reading them is refused: SQLite opens the file read-only; PostgreSQL runs the statement
    in a read-only transaction, after checking its plan. A statement is stopped after 30 s
    (SQLite) or 10 s (PostgreSQL). Only common functions may be called (no file or network
    access, no settings), no value may exceed 64 MiB and no result 256 MiB. BLOBs (bytea)
    print as hex. The statement is recorded in the trail with its row count, or with the
    reason it was refused (outcome denied)."""
    query = {"sql": statement, "limit": limit}
    with local_read_side(store, "mcp-notary sql") as (side, caller):
        decision = require(side, caller, "sql", query, purpose)
        target = side.path if side.path is not None else side.url
        try:
            result = run_readonly_sql(target, statement, limit=limit)
        except QueryError as exc:  # refused or failed: the attempt is on record all the same
            # A statement the policy refuses is a denied read, whatever the caller's role.
            refused = isinstance(exc, SqlRefused)
            side.control.record(
                caller, "sql", decision if not refused else False, "cli",
                query={**query, "error": str(exc)[:500]}, returned=0, purpose=purpose,
                basis=f"statement refused ({decision.basis})" if refused else None,
            )  # fmt: skip
            raise
        side.control.record(
            caller, "sql", decision, "cli", query=query, returned=len(result.rows),
            purpose=purpose,
        )  # fmt: skip
    if as_json:
        for row in result.rows:
            click.echo(json.dumps(dict(zip(result.columns, row, strict=True)), default=str))
    else:
        table = Table(header_style="bold")
        for column in result.columns:
            table.add_column(column)
        for row in result.rows:
            table.add_row(*(cell(_text(v)) for v in row))
        Console().print(table)
    more = f" (more than {limit}; raise --limit)" if result.truncated else ""
    click.echo(f"{len(result.rows)} row(s){more}", err=True)


def _text(value: Any) -> str:
    return "NULL" if value is None else str(value)
