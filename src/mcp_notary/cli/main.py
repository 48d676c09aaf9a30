"""The `mcp-notary` command: a thin edge that parses, calls the library and prints.

Exit codes are decided here and only here: 0 ok, 1 integrity failure, 2 incomplete evidence,
3 usage or configuration error, 4 store error, 5 access denied (missing or refused credential).
"""

from __future__ import annotations

import sys

import click

from mcp_notary.errors import ConfigError, NotaryError, StoreError

EXIT_USAGE = 3
EXIT_STORE = 4
EXIT_DENIED = 5

store_option = click.option(
    "--store",
    envvar="MCP_NOTARY_STORE",
    default=None,
    metavar="URL",
    help="Audit store: a SQLite file path, sqlite:///path or postgresql://... "
    "[env MCP_NOTARY_STORE; default: audit.db in the per-user data directory]",
)


class NotaryGroup(click.Group):
    """Turns library errors into one readable line and an exit code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"mcp-notary: {exc.diagnostics()}", err=True)
            sys.exit(EXIT_USAGE)
        except StoreError as exc:
            click.echo(f"mcp-notary: {exc.diagnostics()}", err=True)
            sys.exit(EXIT_STORE)
        except NotaryError as exc:
            click.echo(f"mcp-notary: {exc.diagnostics()}", err=True)
            # Errors that are not integrity failures say so (access.AccessDenied: 5).
            sys.exit(getattr(exc, "exit_code", 1))


@click.group(cls=NotaryGroup)
@click.version_option(package_name="mcp-notary")
def cli() -> None:
    """Mandatory, redacted, tamper-evident audit logging for MCP servers."""


def main() -> None:
    from mcp_notary.cli.demo import demo
    from mcp_notary.cli.keys import rotate_key, rotate_redaction_key
    from mcp_notary.cli.prove import prove, verify_proof
    from mcp_notary.cli.proxy import proxy
    from mcp_notary.cli.read import events, show
    from mcp_notary.cli.verify import verify
    from mcp_notary.cli.watch import watch
    from mcp_notary.cli.wrap import wrap

    tamper_evidence = (verify, prove, verify_proof, watch, rotate_key, rotate_redaction_key)
    for command in (wrap, proxy, events, show, *tamper_evidence, demo):
        cli.add_command(command)
    from mcp_notary.cli.access import access
    from mcp_notary.cli.serve import serve
    from mcp_notary.cli.sql import sql

    for command in (access, sql, serve):  # the read side (issue 7)
        cli.add_command(command)
    from mcp_notary.cli.init import init
    from mcp_notary.cli.lifecycle import erase, hold, retention
    from mcp_notary.cli.report import report

    # compliance templates, evidence reports, retention, legal hold, erasure (issue 8)
    for command in (init, report, retention, hold, erase):
        cli.add_command(command)
    from mcp_notary.cli.export import export

    cli.add_command(export)  # exporters (issue 9)
    try:
        from mcp_notary.cli.redact import redact_command
    except ImportError:
        pass
    else:
        cli.add_command(redact_command)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.UsageError as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
