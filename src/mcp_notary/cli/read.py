"""`mcp-notary events` and `mcp-notary show`: read the audit trail."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table

from mcp_notary.cli.main import store_option
from mcp_notary.errors import ConfigError
from mcp_notary.events.model import KINDS, OUTCOMES
from mcp_notary.ledger.store import EventFilter, EventRow
from mcp_notary.ledger.stores import open_store


def _timestamp(value: str | None, option: str) -> str | None:
    """Accept RFC 3339 or a date; normalise to the stored form (UTC, microseconds, Z)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"{option}: {value!r} is not an RFC 3339 time or a date") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _write_jsonl(rows: list[EventRow]) -> None:
    out = sys.stdout.buffer
    for row in rows:
        out.write(row.body + b"\n")
    out.flush()


def _table(rows: list[EventRow]) -> Table:
    table = Table(show_lines=False, header_style="bold")
    for column in (
        "time (UTC)",
        "stream",
        "seq",
        "kind",
        "method",
        "tool",
        "principal",
        "outcome",
        "ms",
    ):
        table.add_column(column, no_wrap=column in ("time (UTC)", "seq"))
    for row in rows:
        body = json.loads(row.body)
        outcome = row.outcome or ""
        style = "" if outcome in ("", "success") else "yellow"
        duration = body.get("duration_ms")
        table.add_row(
            row.timestamp[:23].replace("T", " "),
            row.stream.rsplit("/", 1)[-1][-8:],
            str(row.seq),
            row.kind,
            row.method or (body.get("details") or {}).get("phase", ""),
            row.tool or body.get("target") or "",
            row.principal_id or "",
            f"[{style}]{outcome}[/]" if style else outcome,
            "" if duration is None else f"{duration:.1f}",
        )
    return table


@click.command()
@store_option
@click.option("--tool", help="Only calls of this tool.")
@click.option("--principal", help="Only events of this principal id.")
@click.option("--outcome", type=click.Choice(OUTCOMES), help="Only this outcome.")
@click.option("--kind", type=click.Choice(KINDS), help="Only this kind of event.")
@click.option("--since", help="From this time (RFC 3339 or date, inclusive).")
@click.option("--until", help="Before this time (RFC 3339 or date, exclusive).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the newest N matches.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one stored event per line.")
def events(
    store: str | None,
    tool: str | None,
    principal: str | None,
    outcome: str | None,
    kind: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """List audit events, oldest first."""
    where = EventFilter(
        tool=tool,
        principal=principal,
        outcome=outcome,
        kind=kind,
        since=_timestamp(since, "--since"),
        until=_timestamp(until, "--until"),
    )
    ledger = open_store(store, readonly=True)
    try:
        rows = ledger.find(where, limit=limit)
    finally:
        ledger.close()
    if as_json:
        _write_jsonl(rows)
    else:
        Console().print(_table(rows))
        click.echo(f"{len(rows)} event(s)", err=True)


@click.command()
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print the stored canonical JSON only.")
@click.argument("event_id")
def show(store: str | None, event_id: str, as_json: bool) -> None:
    """Show one event in full, with its position in the chain."""
    ledger = open_store(store, readonly=True)
    try:
        row = ledger.get(event_id)
    finally:
        ledger.close()
    if row is None:
        raise ConfigError(f"no event with id {event_id}")
    if as_json:
        _write_jsonl([row])
        return
    console = Console()
    console.print_json(row.body.decode())
    console.print(
        f"[dim]stream {row.stream}  seq {row.seq}\n"
        f"leaf hash  {row.leaf_hash.hex()}\nchain hash {row.chain_hash.hex()}[/]"
    )
