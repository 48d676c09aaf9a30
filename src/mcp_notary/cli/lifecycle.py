"""`mcp-notary retention`, `hold` and `erase`: the lifecycle of the stored trail.

Each command runs as the OS user. On the embedded store it needs the role that manages the
action (see `mcp-notary access`), and its decision is an `audit_access` event; on PostgreSQL
the database grants decide (retention and erasure delete rows, which only the owner may). Every
change is recorded in the ledger before it is made: a `retention` event before pruning, a
`legal_hold` event for each hold and release, an `erasure` event before a key is destroyed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mcp_notary.access.roles import Action
from mcp_notary.cli.access import local_read_side, require
from mcp_notary.cli.main import store_option
from mcp_notary.cli.terminal import cell, markup_safe, printable
from mcp_notary.cli.watch import OwnStream
from mcp_notary.config import NotaryConfig
from mcp_notary.errors import ConfigError, NotaryError
from mcp_notary.events.model import EventDraft
from mcp_notary.identity.local import os_principal
from mcp_notary.ids import new_event_id, utc_timestamp
from mcp_notary.ledger.checkpointer import DEFAULT_ORIGIN_PREFIX, CheckpointSettings, KeySigner
from mcp_notary.ledger.keys import load_or_create_signing_key
from mcp_notary.ledger.signing import load_signer
from mcp_notary.ledger.store import EventFilter, EventRow, Store
from mcp_notary.ledger.stores import default_store_url, open_store, sqlite_path
from mcp_notary.lifecycle.archive import open_archive
from mcp_notary.lifecycle.holds import HeldRow, LegalHold, active_holds
from mcp_notary.lifecycle.policy import NEVER_PRUNED, RetentionPolicy
from mcp_notary.lifecycle.retention import RetentionPlan, run_retention
from mcp_notary.lifecycle.vault import SubjectKeyring, load_vault_key
from mcp_notary.query.index import SearchIndex
from mcp_notary.vocabulary import Kind

Record = Callable[[Kind, dict[str, Any]], EventRow]


class HeldError(NotaryError):
    """An erasure a legal hold forbids."""

    exit_code = 6


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True),
    help="mcp-notary.toml with [retention] (and [erasure]).",
)


@contextmanager
def lifecycle_session(
    store: str | None, action: Action, label: str, query: dict[str, object]
) -> Iterator[tuple[Store, Record]]:
    """The writable store and a function that durably records a lifecycle event, after the
    access decision (embedded store) or on a stream of this command (PostgreSQL)."""
    url = store or default_store_url()
    if sqlite_path(url) is not None:
        with local_read_side(url, label) as (side, caller):
            decision = require(side, caller, action, query, None)

            def record_local(kind: Kind, details: dict[str, Any]) -> EventRow:
                return side.auditor.append(
                    kind, details, principal=caller.principal, method=f"lifecycle/{action}"
                )

            try:
                yield side.store, record_local
            finally:  # the attempt is recorded even when it then fails (a hold refuses it)
                side.control.record(caller, action, decision, "cli", query=query)
        return
    ledger = open_store(url)
    own = OwnStream(ledger, CheckpointSettings(KeySigner(load_or_create_signing_key(None))), label)

    def record_own(kind: Kind, details: dict[str, Any]) -> EventRow:
        draft = EventDraft(
            kind=kind,
            timestamp=utc_timestamp(),
            principal=os_principal(),
            transport="inprocess",
            method=f"lifecycle/{action}",
            outcome="success",
            details=details,
        )
        return own.submit(draft).result(timeout=60)

    try:
        yield ledger, record_own
    finally:
        own.close()
        ledger.close()


def _holds(store: Store) -> list[LegalHold]:
    return active_holds(r.body for r in store.find(EventFilter(kind="legal_hold")))


def _progress(console: Console, what: str, quiet: bool) -> Progress:
    return Progress(
        TextColumn(f"{what}: {{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
    )


# -- retention -----------------------------------------------------------------------------------


@click.group()
def retention() -> None:
    """Retention: how long events stay in the store, in the archive, and at all."""


def _policy(config_path: str | None, store: str | None) -> tuple[RetentionPolicy, str | None]:
    """The `[retention]` policy of the config, and the store (`--store`, else its `store`)."""
    config = NotaryConfig.load(config_path)
    return RetentionPolicy.from_mapping(config.retention), store or config.store


@retention.command("show")
@store_option
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def retention_show(store: str | None, config_path: str | None, as_json: bool) -> None:
    """Print the effective retention policy, the legal holds in force and the past runs."""
    policy, store = _policy(config_path, store)
    with lifecycle_session(store, "stats", "mcp-notary retention", {"show": "retention"}) as (
        ledger,
        _record,
    ):
        holds = _holds(ledger)
        runs = [json.loads(r.body) for r in ledger.find(EventFilter(kind="retention"))]
        pruned = ledger.pruned_ranges()
    body: dict[str, Any] = {
        "policy": policy.to_dict(),
        "policy_version": policy.version,
        "legal_holds": [h.to_details() for h in holds],
        "runs": [
            {
                "event_id": run["event_id"],
                "at": run["timestamp"],
                "by": (run.get("principal") or {}).get("id"),
                **{
                    k: run["details"].get(k)
                    for k in ("run_id", "as_of", "policy_version", "archived_events")
                },
                "expired_events": run["details"].get("expired_events"),
                "held_events": run["details"].get("held_events"),
            }
            for run in runs
        ],
        "pruned_events": sum(r.last - r.first + 1 for r in pruned),
    }
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    out = Console(highlight=False)
    d = policy.default
    out.print(f"[bold]retention policy[/] {policy.version}  {policy.basis}")
    out.print(f"  default: hot {d.to_dict()['hot'] or 'forever'}, total "
              f"{d.to_dict()['total'] or 'forever'}")  # fmt: skip
    for rule in policy.rules:
        match = ", ".join(f"{k}={v}" for k, v in rule.to_dict()["match"].items())
        out.print(f"  {match}: hot {rule.periods.to_dict()['hot'] or 'forever'}, total "
                  f"{rule.periods.to_dict()['total'] or 'forever'}")  # fmt: skip
    out.print(f"  archive: {policy.archive or 'none (bodies stay in the store until total)'}")
    if policy.payload_days is not None:
        out.print(f"  payload: P{policy.payload_days}D (payloads sealed under day keys, which "
                  "retention destroys)")  # fmt: skip
    out.print(f"  never pruned: {', '.join(sorted(NEVER_PRUNED))}")
    out.print(f"[bold]legal holds in force[/]: {len(holds)}")
    for h in holds:
        out.print(markup_safe(f"  {h.hold_id}  {h.criteria()}  since {h.placed_at}: {h.reason}"))
    out.print(f"[bold]retention runs[/]: {len(runs)}; {body['pruned_events']} event(s) pruned")
    for run in body["runs"]:
        out.print(f"  {run['at']}  archived {run['archived_events']}, expired "
                  f"{run['expired_events']}, held {run['held_events']} (policy "
                  f"{run['policy_version']})")  # fmt: skip


def _parse_now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"--now: {value!r} is not an RFC 3339 time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _plan_table(plan: RetentionPlan) -> Table:
    table = Table(header_style="bold")
    for column in ("stream", "archive", "expire", "held", "kept"):
        table.add_column(column)
    for s in plan.streams:
        table.add_row(
            cell(s.stream),
            str(s.count(s.archive)),
            str(s.count(s.expire)),
            str(s.held),
            str(s.kept),
        )
    return table


@retention.command("apply")
@store_option
@config_option
@click.option(
    "--dry-run", is_flag=True, help="Show what would be archived and pruned; change nothing."
)
@click.option("--archive", "archive_url", help="Segment archive: a directory or s3://bucket/prefix "
              "[default: [retention].archive].")  # fmt: skip
@click.option(
    "--now", "now_text", help="Apply the policy as of this time (RFC 3339) [default: now]."
)
@click.option(
    "--signing-key",
    envvar="MCP_NOTARY_SIGNING_KEY_FILE",
    type=click.Path(dir_okay=False),
    help="Key that signs each segment's checkpoint [default: the checkpoint key file].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
def retention_apply(
    store: str | None,
    config_path: str | None,
    dry_run: bool,
    archive_url: str | None,
    now_text: str | None,
    signing_key: str | None,
    as_json: bool,
) -> None:
    """Archive and prune what the policy says has expired.

    Events past their hot period are written to the archive as signed, self-verifying
    segments, then their bodies leave the store; events past their total period leave it
    outright. Legal holds keep what they match. Each event keeps its place and hashes, so
    `verify` still passes and reports the pruned ranges as deleted by policy.
    """
    policy, store = _policy(config_path, store)
    url = archive_url or policy.archive
    archive = open_archive(url) if url else None
    now = _parse_now(now_text)
    console = Console(stderr=True)
    query: dict[str, object] = {"dry_run": dry_run, "policy_version": policy.version}
    with lifecycle_session(store, "retention", "mcp-notary retention", query) as (ledger, record):
        if not dry_run:
            prepare_for_pruning(store)
        with _progress(console, "retention", as_json) as progress:
            planning = progress.add_task("planning", total=ledger.count())
            pruning = progress.add_task("archiving and pruning", total=None, start=False)

            def planned(n: int) -> None:
                progress.advance(planning, n)

            def applied(n: int) -> None:
                progress.start_task(pruning)
                progress.advance(pruning, n)

            plan = run_retention(
                ledger,
                policy,
                now,
                archive=archive,
                signer=lambda: KeySigner(
                    load_signer(signing_key) if signing_key else load_or_create_signing_key(None)
                ),
                origin_prefix=DEFAULT_ORIGIN_PREFIX,
                record=lambda details: record("retention", details),
                dry_run=dry_run,
                planned=planned,
                applied=applied,
            )
    details = plan.details()
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, **details}, indent=2))
        return
    out = Console(highlight=False)
    out.print(_plan_table(plan))
    totals = plan.totals()
    verb = "would archive" if dry_run else "archived"
    out.print(
        f"{verb} {totals['archived_events']}, "
        f"{'would prune' if dry_run else 'pruned'} "
        f"{totals['archived_events'] + totals['expired_events']} event(s) "
        f"({totals['expired_events']} past their total period); {totals['held_events']} held "
        f"by {len(plan.holds)} legal hold(s); policy {policy.version}"
    )
    if archive is None and policy.default.hot is not None:
        out.print("[yellow]no archive configured: bodies stay in the store until their total "
                  "period ends[/]")  # fmt: skip
    if plan.payload_keys or plan.payload_keys_held:
        out.print(
            f"payload period: {len(plan.payload_keys)} day key(s) "
            f"{'would be' if dry_run else 'were'} destroyed (their payloads are shredded), "
            f"{len(plan.payload_keys_held)} kept by legal holds"
        )
    if plan.expired_segments:
        out.print(f"{len(plan.expired_segments)} archived segment(s) past their total period "
                  f"{'would be' if dry_run else 'were'} deleted")  # fmt: skip


def prepare_for_pruning(store: str | None) -> None:
    """Give an embedded store's existing search index its delete trigger, so pruning removes
    the postings too (every path that prunes calls this first)."""
    path = sqlite_path(store or default_store_url())
    if path is None:
        return
    db = sqlite3.connect(path.expanduser(), isolation_level=None, timeout=30)
    try:
        SearchIndex(db).upgrade()
    finally:
        db.close()


# -- legal hold ----------------------------------------------------------------------------------


@click.group()
def hold() -> None:
    """Legal holds: events that neither retention nor erasure may touch until released."""


@hold.command("place")
@store_option
@click.option("--reason", required=True, help="Why (a matter or case reference).")
@click.option("--principal", help="Hold this principal's events.")
@click.option("--tool", help="Hold calls of this tool.")
@click.option("--since", help="Hold events from this time (RFC 3339, inclusive).")
@click.option("--until", help="Hold events before this time (RFC 3339, exclusive).")
@click.option("--query", "text", help="Hold events whose stored text contains this.")
@click.option("--subject", help="Hold a data subject's sealed events (blocks their erasure).")
@click.option("--stream", help="Hold one stream's events.")
@click.option("--vault-key", type=click.Path(dir_okay=False), help="Vault key file (--subject).")
def hold_place(
    store: str | None,
    reason: str,
    principal: str | None,
    tool: str | None,
    since: str | None,
    until: str | None,
    text: str | None,
    subject: str | None,
    stream: str | None,
    vault_key: str | None,
) -> None:
    """Place a hold on every event matching all the criteria given."""
    subject_key = load_vault_key(vault_key).key_id(subject) if subject else None
    criteria = {
        "principal": principal, "tool": tool, "since": since, "until": until,
        "query": text, "subject_key": subject_key, "stream": stream,
    }  # fmt: skip
    given = {k: v for k, v in criteria.items() if v is not None}
    if not given:
        raise ConfigError("a hold needs at least one criterion (--principal, --tool, --since, "
                          "--until, --query, --subject or --stream)")  # fmt: skip
    placed = LegalHold(
        hold_id=f"hold_{new_event_id()[-12:]}",
        reason=reason,
        placed_at=utc_timestamp(),
        placed_by=os_principal().id,
        **given,
    )
    query: dict[str, object] = {"place": placed.hold_id, **given}
    with lifecycle_session(store, "legal_hold", "mcp-notary hold", query) as (_ledger, record):
        record("legal_hold", placed.to_details())
    click.echo(f"placed {placed.hold_id}: {placed.criteria()}")


@hold.command("release")
@store_option
@click.option("--reason", required=True, help="Why the hold ends.")
@click.argument("hold_id")
def hold_release(store: str | None, reason: str, hold_id: str) -> None:
    """Release a hold: what it kept follows the retention policy again."""
    query: dict[str, object] = {"release": hold_id}
    with lifecycle_session(store, "legal_hold", "mcp-notary hold", query) as (ledger, record):
        if hold_id not in {h.hold_id for h in _holds(ledger)}:
            raise ConfigError(f"no legal hold {hold_id} is in force (see `mcp-notary hold list`)")
        record(
            "legal_hold",
            {"action": "released", "hold_id": hold_id, "reason": reason,
             "released_by": os_principal().id},
        )  # fmt: skip
    click.echo(f"released {hold_id}")


@hold.command("list")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def hold_list(store: str | None, as_json: bool) -> None:
    """The legal holds in force."""
    with lifecycle_session(store, "stats", "mcp-notary hold", {"list": "holds"}) as (ledger, _r):
        holds = _holds(ledger)
    if as_json:
        click.echo(json.dumps([h.to_details() for h in holds], indent=2))
        return
    for h in holds:
        click.echo(printable(f"{h.hold_id}  {json.dumps(h.criteria())}  {h.placed_at} by "
                             f"{h.placed_by}: {h.reason}"))  # fmt: skip
    click.echo(f"{len(holds)} hold(s) in force", err=True)


# -- erasure -------------------------------------------------------------------------------------


@click.command()
@store_option
@click.option("--subject", required=True, help="The data subject's identifier, as configured "
              "in [erasure] (an argument value or a principal id).")  # fmt: skip
@click.option("--reason", required=True, help="Why (e.g. an Art. 17 request reference).")
@click.option(
    "--vault-key",
    type=click.Path(dir_okay=False),
    help="Vault key file [env MCP_NOTARY_VAULT_KEY_FILE; default: vault.key in the data dir].",
)
def erase(store: str | None, subject: str, reason: str, vault_key: str | None) -> None:
    """Crypto-shred a data subject: destroy the key their sealed payloads are encrypted under.

    Refused while a legal hold covers any of the subject's events. The events stay (their
    skeleton and the ciphertext the chain covers), so `verify` still passes; their payload
    can never be opened again. Recorded as an `erasure` event before the key is destroyed.
    """
    vault = load_vault_key(vault_key)
    key_id = vault.key_id(subject)
    query: dict[str, object] = {"subject_key": key_id}
    with lifecycle_session(store, "erase", "mcp-notary erase", query) as (ledger, record):
        keyring = SubjectKeyring(ledger, vault)
        marker = key_id.encode()
        sealed = [
            r
            for stream in ledger.stream_names()
            for r in ledger.scan(stream)
            if r.kind == "call" and marker in r.body
        ]
        blocking = [
            h.hold_id
            for h in _holds(ledger)
            if any(
                h.matches(HeldRow(r.stream, r.seq, r.timestamp, r.tool, r.principal_id, r.body))
                for r in sealed
            )
        ]
        if blocking:
            raise HeldError(
                f"refused: legal hold(s) {', '.join(blocking)} cover events of this subject; "
                "release them first"
            )
        if ledger.subject_key(key_id) is None:
            raise ConfigError(f"no key for this subject ({key_id}): nothing sealed, or erased")
        record(
            "erasure",
            {"subject_key": key_id, "sealed_events": len(sealed), "reason": reason,
             "erased_by": os_principal().id},
        )  # fmt: skip
        keyring.destroy(key_id)
    click.echo(f"erased {key_id}: {len(sealed)} sealed event(s) can no longer be opened")
