"""`mcp-notary wrap -- COMMAND ...`: audit a stdio MCP server."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from mcp_notary.capture.stdio import StdioRelay
from mcp_notary.cli.main import store_option
from mcp_notary.config import NotaryConfig
from mcp_notary.events.build import CaptureContext
from mcp_notary.identity.local import configured_principal, launch_facts, os_principal
from mcp_notary.ledger.checkpointer import DEFAULT_INTERVAL_S
from mcp_notary.ledger.stores import open_store
from mcp_notary.ledger.writer import MAX_BEHIND_EVENTS, MAX_BEHIND_S, BacklogLimit
from mcp_notary.recorder import (
    AuditRecorder,
    key_file_checkpointing,
    redactor_from_config,
    sealing_from_config,
)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@store_option
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="mcp-notary.toml")
@click.option("--server-name", help="Name recorded for the server (default: its serverInfo).")
@click.option("--principal", help="Principal id, for a launcher that knows the human.")
@click.option(
    "--durability",
    type=click.Choice(["batched", "strict"]),
    default=None,
    help="batched (default): group commits; traffic waits only when the writer falls behind "
    "(--max-behind). strict: forward a request only after its record is durable; refuse calls "
    "when the store fails.",
)
@click.option(
    "--signing-key",
    envvar="MCP_NOTARY_SIGNING_KEY_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Checkpoint signing key file (0600; created with its .vkey on first use). "
    "[env MCP_NOTARY_SIGNING_KEY_FILE; default: checkpoint.key in the per-user data directory]",
)
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    metavar="DIR|s3://BUCKET/PREFIX",
    help="Copy every checkpoint there too (repeatable): an append-only directory or an "
    "S3 bucket with Object Lock.",
)
@click.option(
    "--checkpoint-interval",
    type=click.FloatRange(min=0.05),
    default=DEFAULT_INTERVAL_S,
    show_default=True,
    help="Seconds between checkpoints while the trail grows.",
)
@click.option(
    "--max-behind",
    envvar="MCP_NOTARY_MAX_BEHIND",
    type=click.IntRange(min=1),
    default=MAX_BEHIND_EVENTS,
    show_default=True,
    help="Backpressure: traffic waits while this many events are not yet durable "
    "(what a kill -9 can lose). [env MCP_NOTARY_MAX_BEHIND]",
)
@click.option(
    "--max-behind-ms",
    envvar="MCP_NOTARY_MAX_BEHIND_MS",
    type=click.FloatRange(min=0, min_open=True),
    default=MAX_BEHIND_S * 1000,
    show_default=True,
    help="Backpressure: traffic waits while the oldest event not yet durable is this old. "
    "[env MCP_NOTARY_MAX_BEHIND_MS]",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def wrap(
    store: str | None,
    config_path: str | None,
    server_name: str | None,
    principal: str | None,
    durability: str | None,
    signing_key: Path | None,
    anchors: tuple[str, ...],
    checkpoint_interval: float,
    max_behind: int,
    max_behind_ms: float,
    command: tuple[str, ...],
) -> None:
    """Start COMMAND as a stdio MCP server and audit every message it exchanges.

    Put `mcp-notary wrap --` in front of the server command in your MCP client's config.
    Nothing is ever written to stdout but the server's own bytes.
    """
    config = NotaryConfig.load(config_path)
    mode = durability or config.durability
    recorder = AuditRecorder(
        open_store(store or config.store, strict=mode == "strict"),
        redactor_from_config(config),
        CaptureContext(
            principal=configured_principal(principal) if principal else os_principal(),
            transport="stdio",
            server_name=server_name,
            server_command=command,
            launch=launch_facts(),
        ),
        durability="strict" if mode == "strict" else "batched",
        stream_label=server_name or Path(command[0]).name,
        checkpointing=key_file_checkpointing(signing_key, anchors, checkpoint_interval),
        sealing=sealing_from_config(config),
        backlog=BacklogLimit(max_behind, max_behind_ms / 1000),
    )
    recorder.start()
    status: int | None = None
    try:
        status = StdioRelay(command, recorder, strict=mode == "strict").run()
    finally:
        recorder.close("child_exited" if status is not None else "error", {"status": status})
        recorder.store.close()
    sys.stdout.flush()
    assert status is not None
    if status < 0:
        # Die of the same signal, so our parent sees what it would have seen from the server.
        if -status not in (signal.SIGKILL, signal.SIGSTOP):  # those cannot be handled anyway
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    sys.exit(status)
