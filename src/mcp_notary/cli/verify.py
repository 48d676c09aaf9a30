"""`mcp-notary verify`: recompute the whole trail from its stored bytes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mcp_notary.cli.main import store_option
from mcp_notary.ledger.store import EventRow
from mcp_notary.ledger.stores import open_store
from mcp_notary.verify.chain import Finding, verify_stream

EXIT_INTACT, EXIT_INTEGRITY, EXIT_INCOMPLETE = 0, 1, 2


@click.command()
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
def verify(store: str | None, as_json: bool) -> None:
    """Verify every stream's hash chain. Exit 0 intact, 1 integrity failure, 2 incomplete."""
    ledger = open_store(store, readonly=True)
    findings: list[Finding] = []
    streams = ledger.streams()
    total = ledger.count()
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("verifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=as_json or total < 50_000 or not console.is_terminal,
    )
    checked = 0

    def _counted(rows: Iterator[EventRow]) -> Iterator[EventRow]:
        nonlocal checked
        for row in rows:
            checked += 1
            if checked % 5000 == 0:
                progress.update(task, completed=checked)
            yield row

    try:
        with progress:
            task = progress.add_task("verify", total=total)
            for info in streams:
                findings.extend(verify_stream(info.stream, _counted(ledger.scan(info.stream))))
    finally:
        ledger.close()
    status = EXIT_INTACT
    if any(f.severity == "integrity" for f in findings):
        status = EXIT_INTEGRITY
    elif findings:
        status = EXIT_INCOMPLETE
    verdict = {
        EXIT_INTACT: "intact",
        EXIT_INTEGRITY: "integrity failure",
        EXIT_INCOMPLETE: "incomplete evidence",
    }[status]
    if as_json:
        report = {
            "result": verdict,
            "streams": len(streams),
            "events": checked,
            "findings": [f.to_dict() for f in findings],
        }
        click.echo(json.dumps(report, indent=2))
    else:
        out = Console()
        for finding in findings:
            out.print(f"[red]✗[/] {finding.describe()}")
        mark = "[green]✓[/]" if status == EXIT_INTACT else "[red]✗[/]"
        out.print(f"{mark} {verdict}: {checked} events in {len(streams)} stream(s) checked")
    sys.exit(status)
