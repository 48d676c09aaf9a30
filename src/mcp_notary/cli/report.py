"""`mcp-notary report`: an evidence pack for compliance templates over a period, from a SQLite
or PostgreSQL store. The report is an audited read (needs a role with `reports.run`; recorded
as an `audit_access` event)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from mcp_notary.cli.access import local_read_side, purpose_option
from mcp_notary.cli.main import store_option
from mcp_notary.cli.verify import origin_prefix_option, resolve_trusted_keys, trusted_key_option
from mcp_notary.compliance.evidence import EvidenceOptions
from mcp_notary.compliance.report import generate, render_html, render_json, render_pdf
from mcp_notary.compliance.templates import load_templates, template_names
from mcp_notary.config import NotaryConfig
from mcp_notary.errors import ConfigError
from mcp_notary.ledger.private import replace_private
from mcp_notary.query.model import normalise_time


def _period(start: str | None, end: str | None) -> tuple[str, str]:
    """--from inclusive, --to exclusive; a bare --to date means through the end of that day."""
    now = datetime.now(UTC)
    end_value = normalise_time(end, "--to") if end else None
    if end and len(end.strip()) == 10 and end_value is not None:
        moment = datetime.fromisoformat(end_value.replace("Z", "+00:00")) + timedelta(days=1)
        end_value = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    to = end_value or (now + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    default_from = (now - timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    frm = normalise_time(start, "--from") if start else default_from
    assert frm is not None
    return frm, to


def _write_report(path: Path, data: bytes) -> None:
    """A report quotes the trail: a new file is 0600 (replacing an old one atomically); a
    device or pipe (`-o /dev/stdout`) is written as it is."""
    if path.exists() and not path.is_file():
        path.write_bytes(data)
    else:
        replace_private(path, data)


@click.command("report")
@store_option
@click.option(
    "--template",
    "templates",
    multiple=True,
    metavar="NAME[,NAME...]",
    help=f"Template(s): {', '.join(template_names())}. Default: [compliance] templates of "
    "--config.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="An mcp-notary.toml (for its [compliance] templates and [redaction] rules).",
)
@click.option(
    "--from", "start", metavar="DATE", help="Period start (inclusive) [default: a year ago]."
)
@click.option(
    "--to", "end", metavar="DATE", help="Period end (a date includes that day) [default: now]."
)
@click.option(
    "--format", "fmt", type=click.Choice(["html", "json", "pdf"]), default="html", show_default=True
)
@click.option("--output", "-o", metavar="FILE", help="Write here instead of stdout (pdf needs it).")
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    metavar="DIR|s3://BUCKET/PREFIX",
    help="Anchor(s) holding checkpoint copies: receipts are listed, gaps reported.",
)
@click.option(
    "--archive",
    "archive_url",
    metavar="DIR|s3://BUCKET/PREFIX",
    help="The retention archive, judged with the store (storage limitation) "
    "[default: [retention].archive of --config].",
)
@trusted_key_option
@origin_prefix_option
@purpose_option
def report(
    store: str | None,
    templates: tuple[str, ...],
    config_path: str | None,
    start: str | None,
    end: str | None,
    fmt: str,
    output: str | None,
    anchors: tuple[str, ...],
    archive_url: str | None,
    trusted_keys: tuple[str, ...],
    origin_prefix: str,
    purpose: str | None,
) -> None:
    """Evidence pack for compliance templates: per-clause pass/fail with the query that
    decided it, chain verification, checkpoints, access review.

    Reads a SQLite or a PostgreSQL store (--store postgresql://...) alike. An audited read:
    needs a role with reports.run and is recorded as an audit_access event.

    Exit 0 when no clause fails, 1 when one does, 3 usage error, 5 access denied.
    """
    config = NotaryConfig.load(config_path)
    names = list(templates) or list(config.compliance.get("templates", []))
    if not names:
        raise ConfigError("name a template with --template (or [compliance] templates in --config)")
    chosen = load_templates(names)
    if fmt == "pdf" and not output:
        raise ConfigError("--format pdf needs --output FILE")
    frm, to = _period(start, end)
    keys, key_sources = resolve_trusted_keys(trusted_keys)
    disabled = config.redaction.get("disable_rules", [])
    archive = archive_url or config.retention.get("archive")
    options = EvidenceOptions(
        frm, to, keys, anchors, origin_prefix, tuple(disabled),
        archive=archive if isinstance(archive, str) and archive else None,
    )  # fmt: skip
    with local_read_side(store or config.store, "mcp-notary report") as (side, caller):
        model = generate(
            side,
            caller,
            chosen,
            options,
            interface="cli",
            purpose=purpose,
            trusted_key_sources=key_sources,
        )
    if fmt == "pdf":
        assert output is not None
        _write_report(Path(output), render_pdf(model))
    else:
        text = render_json(model) if fmt == "json" else render_html(model)
        if output:
            _write_report(Path(output), text.encode("utf-8"))
        else:
            click.echo(text, nl=False)
    s = model["summary"]
    click.echo(
        f"{s['pass']} passed, {s['fail']} failed, {s['not_applicable']} not applicable"
        + (f"; written to {output}" if output else ""),
        err=True,
    )
    sys.exit(1 if s["fail"] else 0)
