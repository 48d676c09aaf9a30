"""`mcp-notary verify`: recompute the whole trail from its stored bytes and check it against
every signed checkpoint it can find: the store's, the auditor's own, the anchors'."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mcp_notary.anchor import open_anchor
from mcp_notary.cli.main import store_option
from mcp_notary.cli.terminal import markup_safe
from mcp_notary.errors import ConfigError
from mcp_notary.ledger.checkpointer import DEFAULT_ORIGIN_PREFIX
from mcp_notary.ledger.keys import (
    TrustedKey,
    default_signing_key_path,
    load_trusted_keys,
    trusted_keys_path_for,
    vkey_path_for,
)
from mcp_notary.ledger.segment import SegmentError, decode_segment
from mcp_notary.ledger.store import LeafRecord, Store, column_check_rows, stream_ends
from mcp_notary.ledger.stores import default_store_url, open_store, sqlite_path
from mcp_notary.lifecycle.archive import Archive, open_archive
from mcp_notary.lifecycle.retention import recorded_prunes_in
from mcp_notary.recorder import writer_alive
from mcp_notary.verify.chain import Finding
from mcp_notary.verify.checkpoints import CheckpointEvidence
from mcp_notary.verify.parallel import PARALLEL_MIN_ROWS, ParallelRowChecker
from mcp_notary.verify.report import TrailReport, verify_trail
from mcp_notary.verify.segments import check_segment
from mcp_notary.verify.trail import StreamChecker

_MAX_CHECKPOINT_FILE = 64 * 1024

trusted_key_option = click.option(
    "--trusted-key",
    "trusted_keys",
    multiple=True,
    metavar="FILE",
    help="A vkey or trusted-keys file (repeatable). Default: the trusted-keys file (after a "
    "rotation) or the vkey beside the local signing key, if there is one.",
)
origin_prefix_option = click.option(
    "--origin-prefix",
    default=DEFAULT_ORIGIN_PREFIX,
    show_default=True,
    help="Checkpoint origins are <prefix>/<stream>.",
)


def resolve_trusted_keys(paths: Sequence[str]) -> tuple[list[TrustedKey], list[str]]:
    """The trusted keys and where they came from (the local default vkey if none given)."""
    if paths:
        keys: list[TrustedKey] = []
        for path in paths:
            keys += load_trusted_keys(path)
        return keys, list(paths)
    key_path = default_signing_key_path()
    for default in (trusted_keys_path_for(key_path), vkey_path_for(key_path)):
        if default.exists():
            return load_trusted_keys(default), [str(default)]
    return [], []


def read_checkpoint_file(path: str) -> CheckpointEvidence:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_CHECKPOINT_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read checkpoint file {path}: {exc.strerror}") from exc
    return CheckpointEvidence(data[:_MAX_CHECKPOINT_FILE], f"file:{path}")


def gather_evidence(
    ledger: Store, checkpoint_files: Sequence[str], anchors: Sequence[str]
) -> tuple[list[CheckpointEvidence], dict[str, str]]:
    """Every checkpoint copy: the store's, the given files', the anchors'."""
    evidence: list[CheckpointEvidence] = []
    known_origins: dict[str, str] = {}
    for row in ledger.checkpoints():
        evidence.append(CheckpointEvidence(row.note, "store", row.stream))
        known_origins.setdefault(row.origin, row.stream)
    evidence += [read_checkpoint_file(p) for p in checkpoint_files]
    for url in anchors:
        anchor = open_anchor(url)
        evidence += [CheckpointEvidence(n.note, f"anchor:{n.location}") for n in anchor.notes()]
    return evidence, known_origins


def _pruned_note(report: TrailReport) -> str:
    pruned = sum(b - a + 1 for s in report.streams for a, b in s.pruned)
    return f" ({pruned} of them pruned by retention policy)" if pruned else ""


def verify_archive(
    ledger: Store,
    archive: Archive,
    keys: Sequence[TrustedKey],
    origin_prefix: str,
    known_origins: dict[str, str],
    report: TrailReport,
) -> int:
    """Check every segment of `archive` (findings go into `report`); returns how many."""
    count = 0
    for name in archive.names():
        count += 1
        source = f"archive:{name}"
        try:
            segment = decode_segment(archive.get(name))
        except SegmentError as exc:
            report.findings.append(
                Finding("unreadable", "*", None, f"{name}: {exc}", source=source)
            )
            continue
        stored = [
            r
            for page in ledger.scan_leaves(
                segment.stream, segment.first_seq, segment.last_seq, bodies=False
            )
            for r in page
        ]
        report.findings += check_segment(
            segment,
            source,
            keys,
            origin_prefix=origin_prefix,
            known_origins=known_origins,
            stored=stored,
        )
    return count


def write_saved_checkpoints(
    report: TrailReport, evidence: Sequence[CheckpointEvidence], out: Path
) -> int:
    """Keep, per stream, the newest stored checkpoint that verified: the auditor's own copy
    for next time (``--checkpoint``). Returns how many were written."""
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for stream in report.streams:
        if stream.covered_size == 0:
            continue
        for item in evidence:
            if item.stream != stream.stream or item.source != "store":
                continue
            lines = item.note.split(b"\n", 2)
            if len(lines) > 1 and lines[1] == str(stream.covered_size).encode():
                name = stream.stream.replace("/", "_") + f".{stream.covered_size}.checkpoint"
                (out / name).write_bytes(item.note)
                written += 1
                break
    return written


@click.command()
@store_option
@click.option(
    "--checkpoint",
    "checkpoint_files",
    multiple=True,
    metavar="FILE",
    help="A checkpoint you saved earlier (repeatable): the store must still extend it.",
)
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    metavar="DIR|s3://BUCKET/PREFIX",
    help="An anchor holding checkpoint copies (repeatable); stored checkpoints missing "
    "there are reported.",
)
@trusted_key_option
@origin_prefix_option
@click.option(
    "--save-checkpoints",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="After an intact result, save each stream's newest verified checkpoint in DIR.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Processes that read and hash big streams in parallel [default: CPU count].",
)
@click.option(
    "--archive",
    "archive_url",
    metavar="DIR|s3://BUCKET/PREFIX",
    help="Also verify the retention archive's segments, offline, against the trusted keys and "
    "the hashes the store kept.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
def verify(
    store: str | None,
    checkpoint_files: tuple[str, ...],
    anchors: tuple[str, ...],
    trusted_keys: tuple[str, ...],
    origin_prefix: str,
    save_checkpoints: str | None,
    jobs: int | None,
    archive_url: str | None,
    as_json: bool,
) -> None:
    """Verify every stream against its hashes and signed checkpoints.

    Exit 0 intact, 1 integrity failure, 2 incomplete evidence, 3 usage error.
    """
    keys, key_sources = resolve_trusted_keys(trusted_keys)
    ledger = open_store(store, readonly=True)
    console = Console(stderr=True)
    path = sqlite_path(store or default_store_url())
    parallel = ParallelRowChecker(path.expanduser(), workers=jobs) if path else None
    try:
        evidence, known_origins = gather_evidence(ledger, checkpoint_files, anchors)
        total = ledger.count()
        progress = Progress(
            TextColumn("verifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=as_json or total < 50_000 or not console.is_terminal,
        )
        checked = 0

        def pages(stream: str) -> Iterator[list[LeafRecord]]:
            nonlocal checked
            for page in ledger.scan_leaves(stream):
                checked += len(page)
                progress.update(task, completed=checked)
                yield page

        def run_rows(stream: str, wanted: set[int]) -> tuple[StreamChecker, list[Finding]] | None:
            nonlocal checked
            if parallel is None or parallel.workers < 2:
                return None
            if ledger.count(stream) < PARALLEL_MIN_ROWS:
                return None

            def on_rows(n: int) -> None:
                nonlocal checked
                checked += n
                progress.update(task, completed=checked)

            return parallel.run(stream, wanted, on_rows)

        registrations = {info.stream: info for info in ledger.streams()}
        with progress:
            task = progress.add_task("verify", total=total)
            report = verify_trail(
                ledger.stream_names(),
                pages,
                evidence,
                keys,
                origin_prefix=origin_prefix,
                known_origins=known_origins,
                anchors_given=len(anchors),
                run_rows=run_rows,
                retention=recorded_prunes_in(ledger),
                column_rows=lambda stream: column_check_rows(ledger, stream),
                registrations=registrations,
                ends=lambda stream: stream_ends(ledger, stream),
                alive=lambda stream: writer_alive(stream, registrations.get(stream)),
            )
        segments = 0
        if archive_url:
            segments = verify_archive(
                ledger, open_archive(archive_url), keys, origin_prefix, known_origins, report
            )
    finally:
        ledger.close()
        if parallel is not None:
            parallel.close()
    saved = 0
    if save_checkpoints and report.status == 0:
        saved = write_saved_checkpoints(report, evidence, Path(save_checkpoints))
    if as_json:
        body = report.to_dict()
        body["trusted_keys"] = key_sources
        if archive_url:
            body["archive_segments"] = segments
        click.echo(json.dumps(body, indent=2))
    else:
        out = Console(highlight=False, soft_wrap=True)
        for stream_report in report.streams:
            for first, last in stream_report.pruned[:20]:
                out.print(
                    f"[dim]i {markup_safe(stream_report.stream)}: seq {first}..{last} deleted by "
                    "a recorded retention run (hashes kept and verified)[/]"
                )
        if archive_url:
            out.print(f"[dim]i {segments} archived segment(s) checked in {archive_url}[/]")
        for stream, state in report.states.items():
            if state.closure in ("gone", "unknown"):
                out.print(f"[yellow]![/] {markup_safe(stream)}: {markup_safe(state.detail)}")
        for finding in report.all_findings():
            mark = "[red]✗[/]" if finding.severity == "integrity" else "[yellow]![/]"
            out.print(f"{mark} {markup_safe(finding.describe())}")
        for line in report.checked():
            out.print(f"[dim]i checked {markup_safe(line)}[/]")
        for line in report.limits():
            out.print(f"[yellow]![/] limit: {markup_safe(line)}")
        mark = "[green]✓[/]" if report.status == 0 else "[red]✗[/]"
        scope = "" if report.outside_evidence else " (against the store's own evidence only)"
        out.print(
            f"{mark} {report.verdict}{scope}: {report.events} events in {len(report.streams)} "
            f"stream(s){_pruned_note(report)}, {report.checkpoints_checked} checkpoint copies "
            "checked"
        )
        if saved:
            out.print(f"saved {saved} checkpoint(s) in {save_checkpoints}")
    sys.exit(report.status)
