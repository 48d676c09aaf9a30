"""`mcp-notary access`: roles, API tokens, and who you are. Also the helpers every CLI read
command uses to open the read side as the local OS user and to have its read audited."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import click
from rich.console import Console
from rich.table import Table

from mcp_notary.access.control import AccessDenied, Caller
from mcp_notary.access.readside import ReadSide, open_read_side
from mcp_notary.access.roles import ROLES, Action, Decision
from mcp_notary.cli.main import store_option
from mcp_notary.cli.terminal import cell
from mcp_notary.errors import ConfigError
from mcp_notary.identity.local import os_principal
from mcp_notary.ids import utc_timestamp

purpose_option = click.option(
    "--purpose",
    metavar="TEXT",
    help="Why you are reading (a ticket or case id): recorded with the audit-of-audit event.",
)

_DURATION = re.compile(r"^(\d+)([hdw])$")


@contextmanager
def local_read_side(store: str | None, label: str) -> Iterator[tuple[ReadSide, Caller]]:
    """The read side as the OS user running the command. Its reads are recorded on the store's
    shared reader stream, checkpointed on exit."""
    principal = os_principal()
    side = open_read_side(
        store, process_principal=principal, interface="cli", label=label, shared=True
    )
    try:
        yield side, side.control.local_caller(principal)
    finally:
        side.close()


def require(
    side: ReadSide,
    caller: Caller,
    action: Action,
    query: dict[str, object],
    purpose: str | None,
) -> Decision:
    """The decision for `action`; a refusal is recorded and raised (exit 5)."""
    return side.control.require(caller, action, "cli", query=query, purpose=purpose)


def _expiry(expires_in: str | None) -> str | None:
    if expires_in is None:
        return None
    match = _DURATION.match(expires_in.strip())
    if not match:
        raise ConfigError(f"--expires-in: {expires_in!r} is not like 12h, 90d or 4w")
    count, unit = int(match.group(1)), match.group(2)
    delta = {"h": timedelta(hours=count), "d": timedelta(days=count), "w": timedelta(weeks=count)}
    moment = datetime.now(UTC) + delta[unit]
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@click.group()
def access() -> None:
    """Who may read the audit trail: roles, API tokens, and who you are.

    Roles: auditor (read events, reports, exports, SQL), security (auditor + alerts and legal
    hold), admin (configure and manage access; cannot read events unless also auditor),
    viewer (only their own principal's events). Until anyone holds a role, the local user is
    the store's owner; until someone holds admin, the local user may manage access. Every
    change is an audit_access event in the ledger.
    """


@access.command("grant")
@store_option
@purpose_option
@click.argument("principal")
@click.argument("role", type=click.Choice(ROLES))
def grant(store: str | None, purpose: str | None, principal: str, role: str) -> None:
    """Grant ROLE to PRINCIPAL (an OS user name, or the principal id of a token's owner)."""
    with local_read_side(store, "mcp-notary access") as (side, caller):
        side.control.grant(caller, principal, role, "cli", purpose)
    click.echo(f"granted {role} to {principal}")


@access.command("revoke")
@store_option
@purpose_option
@click.argument("principal")
@click.argument("role", type=click.Choice(ROLES))
def revoke(store: str | None, purpose: str | None, principal: str, role: str) -> None:
    """Revoke ROLE from PRINCIPAL."""
    with local_read_side(store, "mcp-notary access") as (side, caller):
        side.control.revoke(caller, principal, role, "cli", purpose)
    click.echo(f"revoked {role} from {principal}")


@access.command("list")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_grants(store: str | None, as_json: bool) -> None:
    """Show who holds which role, and the history of grants and revocations."""
    with local_read_side(store, "mcp-notary access") as (side, caller):
        require(side, caller, "access_list", {}, None)
        changes = side.control.store.grant_changes()
        state = side.control.state()
        side.control.record(caller, "access_list", True, "cli", returned=len(changes))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "roles": {p: sorted(r) for p, r in sorted(state.roles.items())},
                    "history": [c.__dict__ for c in changes],
                },
                indent=2,
            )
        )
        return
    table = Table(header_style="bold")
    for column in ("principal", "roles"):
        table.add_column(column)
    for principal, roles in sorted(state.roles.items()):
        table.add_row(cell(principal), cell(", ".join(sorted(roles))))
    Console().print(table)


@access.group("token")
def token() -> None:
    """API tokens for `mcp-notary serve` (shown once, stored hashed)."""


@token.command("create")
@store_option
@purpose_option
@click.argument("principal")
@click.option("--name", default="api", show_default=True, help="A label to recognise it by.")
@click.option("--expires-in", metavar="12h|90d|4w", help="Lifetime (default: until revoked).")
def token_create(
    store: str | None, purpose: str | None, principal: str, name: str, expires_in: str | None
) -> None:
    """Issue an API token for PRINCIPAL. The token is printed once, on stdout, and never
    stored: only its Argon2id hash is kept."""
    expires_at = _expiry(expires_in)
    with local_read_side(store, "mcp-notary access") as (side, caller):
        issued, record = side.control.create_token(
            caller, principal, name, expires_at, "cli", purpose
        )
    click.echo(issued.value)
    until = f", expires {record.expires_at}" if record.expires_at else ""
    click.echo(
        f"token {record.token_id} for {principal}{until}: store it now, it is not shown again",
        err=True,
    )


@token.command("list")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def token_list(store: str | None, as_json: bool) -> None:
    """Show issued tokens (ids, owners, state; never secrets)."""
    with local_read_side(store, "mcp-notary access") as (side, caller):
        require(side, caller, "access_list", {"tokens": True}, None)
        state = side.control.state()
        side.control.record(caller, "access_list", True, "cli", query={"tokens": True},
                            returned=len(state.tokens))  # fmt: skip
    now = utc_timestamp()
    rows = []
    for record in state.tokens.values():
        status = "active"
        if record.token_id in state.revoked:
            status = "revoked"
        elif state.active_token(record.token_id, now) is None:
            status = "expired"
        rows.append(
            {
                "token_id": record.token_id,
                "principal": record.principal,
                "name": record.name,
                "created_at": record.created_at,
                "expires_at": record.expires_at,
                "created_by": record.actor,
                "status": status,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    columns = ("token_id", "principal", "name", "created_at", "expires_at", "status")
    table = Table(header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(cell(row[c] or "") for c in columns))
    Console().print(table)


@token.command("revoke")
@store_option
@purpose_option
@click.argument("token_id")
def token_revoke(store: str | None, purpose: str | None, token_id: str) -> None:
    """Revoke the token TOKEN_ID (effective at once, sessions included)."""
    with local_read_side(store, "mcp-notary access") as (side, caller):
        side.control.revoke_token(caller, token_id, "cli", purpose)
    click.echo(f"revoked token {token_id}")


@access.command("whoami")
@store_option
@click.option("--token", "token_value", envvar="MCP_NOTARY_TOKEN", help="Check this API token.")
def whoami(store: str | None, token_value: str | None) -> None:
    """Who the read side takes you for, and your roles."""
    with local_read_side(store, "mcp-notary access") as (side, caller):
        if token_value:
            caller = side.control.authenticate_token(token_value)
    basis = "local store owner (no roles granted yet)" if caller.local_owner else caller.via
    click.echo(
        json.dumps(
            {
                "principal": caller.principal.id,
                "via": basis,
                "roles": sorted(caller.roles),
                "token_id": caller.token_id,
            },
            indent=2,
        )
    )


__all__ = ["AccessDenied", "access", "local_read_side", "purpose_option", "require"]
