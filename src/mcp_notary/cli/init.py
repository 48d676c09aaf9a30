"""`mcp-notary init --template NAME[,NAME...]`: write a commented mcp-notary.toml from
compliance templates."""

from __future__ import annotations

from pathlib import Path

import click

from mcp_notary.compliance.templates import (
    combine,
    load_templates,
    render_config,
    template_names,
)
from mcp_notary.config import NotaryConfig
from mcp_notary.errors import ConfigError


@click.command("init")
@click.option(
    "--template",
    "templates",
    multiple=True,
    required=True,
    metavar="NAME[,NAME...]",
    help=f"Compliance template(s) to combine: {', '.join(template_names())}.",
)
@click.option(
    "--output",
    "-o",
    default="mcp-notary.toml",
    show_default=True,
    metavar="FILE",
    help="Where to write the configuration ('-' for stdout).",
)
@click.option("--store", default=None, metavar="URL", help="Audit store to name in the file.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(templates: tuple[str, ...], output: str, store: str | None, force: bool) -> None:
    """Write a commented mcp-notary.toml for compliance templates (they combine: longest
    retention, shortest payload TTL, union of mandatory fields and sensitive fields)."""
    text = render_config(combine(load_templates(templates)), store=store)
    if output == "-":
        click.echo(text, nl=False)
        return
    path = Path(output)
    if path.exists() and not force:
        raise ConfigError(f"{path} exists: pass --force to overwrite it")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        NotaryConfig.load(tmp)  # never leave a file the other commands would refuse
    except ConfigError:
        tmp.unlink()
        raise
    tmp.replace(path)
    click.echo(f"wrote {path}", err=True)
