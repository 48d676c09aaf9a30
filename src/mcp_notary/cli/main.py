"""The `mcp-notary` command: a thin edge that parses, calls the library and prints.

Exit codes are decided here and only here: 0 ok, 1 integrity failure, 2 incomplete evidence,
3 usage or configuration error, 4 store error.
"""

from __future__ import annotations

import sys

import click

from mcp_notary.errors import ConfigError, NotaryError, StoreError

EXIT_USAGE = 3
EXIT_STORE = 4

store_option = click.option(
    "--store",
    envvar="MCP_NOTARY_STORE",
    default=None,
    metavar="URL",
    help="Audit store: a SQLite file path or sqlite:///path. "
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
            sys.exit(1)


@click.group(cls=NotaryGroup)
@click.version_option(package_name="mcp-notary")
def cli() -> None:
    """Mandatory, redacted, tamper-evident audit logging for MCP servers."""


def main() -> None:
    from mcp_notary.cli.demo import demo
    from mcp_notary.cli.read import events, show
    from mcp_notary.cli.verify import verify
    from mcp_notary.cli.wrap import wrap

    for command in (wrap, events, show, verify, demo):
        cli.add_command(command)
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
