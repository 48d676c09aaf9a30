"""`mcp-notary events` and `mcp-notary show`: read the audit trail.

Every read is itself audited: it runs as the OS user, under that user's roles (see
`mcp-notary access`), and appends an `audit_access` event to the store (never to stdout)
before anything is printed. A read that cannot be recorded is refused.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.highlighter import JSONHighlighter
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from mcp_notary.cli.access import local_read_side, purpose_option, require
from mcp_notary.cli.main import store_option
from mcp_notary.cli.terminal import cell, json_for_terminal, markup_safe
from mcp_notary.errors import ConfigError
from mcp_notary.events.model import KINDS, OUTCOMES
from mcp_notary.ids import utc_timestamp
from mcp_notary.ledger.segment import decode_segment
from mcp_notary.ledger.store import EventRow
from mcp_notary.lifecycle.archive import Archive, open_archive
from mcp_notary.lifecycle.sealing import open_body
from mcp_notary.lifecycle.vault import SubjectKeyring, load_vault_key
from mcp_notary.query.archived import segment_rows
from mcp_notary.query.engine import QueryEngine
from mcp_notary.query.model import Query


def _write_jsonl(rows: list[EventRow]) -> None:
    """The stored canonical bytes, one event per line. On a terminal, control and bidi
    characters inside strings are spelled as \\u escapes (the same JSON values; pipe the
    output for the exact stored bytes)."""
    out = sys.stdout.buffer
    tty = sys.stdout.isatty()
    for row in rows:
        body = json_for_terminal(row.body.decode()).encode() if tty else row.body
        out.write(body + b"\n")
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
        # Stored strings are chosen by whoever sent them: shown literally, escapes visible.
        table.add_row(
            cell(row.timestamp[:23].replace("T", " ")),
            cell(row.stream.rsplit("/", 1)[-1][-8:]),
            str(row.seq),
            cell(row.kind),
            cell(row.method or (body.get("details") or {}).get("phase", "")),
            cell(row.tool or body.get("target") or ""),
            cell(row.principal_id or ""),
            cell(outcome, style),
            "" if duration is None else f"{duration:.1f}",
        )
    return table


def warn_mismatched(count: int) -> None:
    """Say on stderr that stored columns were found edited (the rows were read as hashed)."""
    if count:
        click.echo(
            f"mcp-notary: WARNING: {count} event(s) read have stored columns (kind, principal, "
            "tool...) that disagree with their hashed bytes; they were filtered and shown as "
            "hashed. The store was edited: run `mcp-notary verify`.",
            err=True,
        )


def build_index(engine: QueryEngine) -> None:
    """Build the search index on first use, with a progress bar on a terminal."""
    console = Console(stderr=True)
    with Progress(
        TextColumn("building the search index"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("index", total=None)
        engine.ensure_index(lambda done, total: progress.update(task, completed=done, total=total))


def matching_rows(engine: QueryEngine, query: Query) -> list[EventRow]:
    """Oldest first; with a limit, the newest `limit` matches (still oldest first)."""
    if query.needs_index and query.text is not None and not engine.indexed:
        build_index(engine)
    if query.limit is None:
        return list(engine.iterate(Query(**{**query.__dict__, "sort": "oldest"})))
    return list(reversed(engine.search(query).rows))


def with_archived(rows: list[EventRow], archive: Archive, query: Query) -> list[EventRow]:
    """`rows` plus the archived events matching `query` (an event both archived and still in
    the store, such as one a legal hold kept, is listed once), oldest first, limited. An
    archived event whose own total period has ended is not listed."""
    seen = {r.event_id for r in rows}
    merged = list(rows)
    now = utc_timestamp()
    for name in archive.names():
        for row in segment_rows(decode_segment(archive.get(name)), query, now):
            if row.event_id not in seen:
                seen.add(row.event_id)
                merged.append(row)
    merged.sort(key=lambda r: (r.timestamp, r.stream, r.seq))
    return merged[-query.limit :] if query.limit is not None else merged


@click.command()
@store_option
@click.option("--search", "-q", "text", help="Full-text search of arguments, summaries, errors.")
@click.option("--tool", help="Only calls of this tool.")
@click.option("--principal", help="Only events of this principal id.")
@click.option("--server", help="Only events of this server name.")
@click.option("--method", help="Only this JSON-RPC method.")
@click.option("--outcome", type=click.Choice(OUTCOMES), help="Only this outcome.")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    help="Only this kind of event (audit_access events, the reads of the trail, are listed "
    "only when asked for).",
)
@click.option("--redaction-kind", help="Only events where this kind of value was redacted.")
@click.option("--trace-id", help="Only events of this W3C trace id.")
@click.option("--since", help="From this time (RFC 3339 or date, inclusive).")
@click.option("--until", help="Before this time (RFC 3339 or date, exclusive).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the newest N matches.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one stored event per line.")
@click.option(
    "--archive",
    "archive_url",
    metavar="DIR|s3://BUCKET/PREFIX",
    help="Also list matching events retention moved to this archive.",
)
@purpose_option
def events(
    store: str | None,
    as_json: bool,
    archive_url: str | None,
    purpose: str | None,
    **filters: Any,
) -> None:
    """List audit events, oldest first."""
    limit = filters.pop("limit")
    query = Query.parse(**filters, limit=None)
    if limit is not None:
        query = Query(**{**query.__dict__, "limit": limit})  # the CLI may ask for any number
    described = {**query.describe(), **({"archive": archive_url} if archive_url else {})}
    with local_read_side(store, "mcp-notary events") as (side, caller):
        decision = require(side, caller, "search", described, purpose)
        if decision.own_only:
            query = query.own_only(caller.principal.id)
        engine = side.query_engine()
        try:
            rows = matching_rows(engine, query)
            mismatched = engine.mismatched
        finally:
            engine.close()
        if archive_url:
            rows = with_archived(rows, open_archive(archive_url), query)
        side.control.record(
            caller, "search", decision, "cli", query=described, returned=len(rows),
            purpose=purpose,
        )  # fmt: skip
    if as_json:
        _write_jsonl(rows)
    else:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)  # piped or captured: don't squeeze to 80 columns
        console.print(_table(rows))
        click.echo(f"{len(rows)} event(s)", err=True)
    warn_mismatched(mismatched)


@click.command()
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print the stored canonical JSON only.")
@click.option(
    "--unseal",
    is_flag=True,
    help="Open payloads sealed under subject or day keys (needs the vault key and a role that "
    "reads payloads; an audited read of its own).",
)
@click.option(
    "--vault-key",
    type=click.Path(dir_okay=False),
    help="Vault key file [env MCP_NOTARY_VAULT_KEY_FILE; default: vault.key in the data dir].",
)
@purpose_option
@click.argument("event_id")
def show(
    store: str | None,
    event_id: str,
    as_json: bool,
    unseal: bool,
    vault_key: str | None,
    purpose: str | None,
) -> None:
    """Show one event in full, with its position in the chain."""
    query: dict[str, object] = {"event_id": event_id}
    opened: dict[str, Any] | None = None
    with local_read_side(store, "mcp-notary show") as (side, caller):
        if unseal:
            require(side, caller, "unseal", query, purpose)  # refused: recorded, exit 5
        decision = require(side, caller, "show", query, purpose)
        engine = side.query_engine()
        try:
            row = engine.get(event_id)
            mismatched = engine.mismatched
        finally:
            engine.close()
        if row is not None and decision.own_only and row.principal_id != caller.principal.id:
            row = None  # a viewer learns nothing about others' events, not even that they exist
        if row is not None and unseal:
            keyring = SubjectKeyring(side.store, load_vault_key(vault_key))
            opened = open_body(json.loads(row.body), keyring.open)
        side.control.record(
            caller, "unseal" if unseal else "show", decision, "cli", query=query,
            returned=int(row is not None), purpose=purpose,
        )  # fmt: skip
    warn_mismatched(mismatched)
    if row is None:
        raise ConfigError(f"no event with id {event_id}")
    if opened is not None:
        # The opened event is not what is stored or hashed: say so in both forms.
        if as_json:
            click.echo(json.dumps({"unsealed": opened}, ensure_ascii=False))
            return
        _print_json(Console(), json.dumps(opened, ensure_ascii=False, indent=2))
        click.echo("(payloads opened with the vault key; the stored bytes hold them sealed)")
        return
    if as_json:
        _write_jsonl([row])
        return
    console = Console()
    _print_json(console, json.dumps(json.loads(row.body), ensure_ascii=False, indent=2))
    console.print(
        f"[dim]stream {markup_safe(row.stream)}  seq {row.seq}\n"
        f"leaf hash  {row.leaf_hash.hex()}\nchain hash {row.chain_hash.hex()}[/]"
    )


def _print_json(console: Console, text: str) -> None:
    """Pretty JSON, highlighted but never re-parsed by Rich (which would turn escaped
    control characters back into raw ones)."""
    console.print(JSONHighlighter()(Text(json_for_terminal(text))), soft_wrap=True)
