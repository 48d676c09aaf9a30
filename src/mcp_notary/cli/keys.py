"""`mcp-notary rotate-key`: replace the checkpoint signing key, keep the old one verifiable
within a validity window, and record the rotation as a `key_rotation` event."""

from __future__ import annotations

import click

from mcp_notary.cli.main import store_option
from mcp_notary.cli.watch import OwnStream
from mcp_notary.events.model import EventDraft
from mcp_notary.identity.local import os_principal
from mcp_notary.ids import utc_timestamp
from mcp_notary.ledger.checkpointer import CheckpointSettings, KeySigner
from mcp_notary.ledger.keys import default_signing_key_path, rotate_signing_key
from mcp_notary.ledger.signing import load_signer
from mcp_notary.ledger.stores import open_store


@click.command("rotate-key")
@store_option
@click.option(
    "--signing-key",
    envvar="MCP_NOTARY_SIGNING_KEY_FILE",
    type=click.Path(dir_okay=False),
    help="The key file to rotate [default: checkpoint.key in the per-user data directory].",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=24.0,
    show_default=True,
    help="Hours the old key stays valid, for proxies started before the rotation.",
)
def rotate_key(store: str | None, signing_key: str | None, grace: float) -> None:
    """Rotate the checkpoint signing key.

    The old key is kept as *.retired.key, the trusted-keys file beside the key gets both
    vkeys with validity windows (give it to auditors), and a key_rotation event is recorded
    in the store, checkpointed with the new key. Restart running proxies within the grace.
    """
    from pathlib import Path

    path = Path(signing_key) if signing_key else default_signing_key_path()
    rotation = rotate_signing_key(path, grace_s=grace * 3600)
    ledger = open_store(store)
    own = OwnStream(ledger, CheckpointSettings(KeySigner(load_signer(path))), "mcp-notary keys")
    try:
        own.submit(
            EventDraft(
                kind="key_rotation",
                timestamp=utc_timestamp(),
                principal=os_principal(),
                transport="inprocess",
                details={
                    "key": "checkpoint",
                    "old_vkey": rotation.old.vkey,
                    "old_not_after": rotation.old_not_after,
                    "new_vkey": rotation.new.vkey,
                    "new_not_before": rotation.new_not_before,
                },
            )
        )
    finally:
        own.close()
        ledger.close()
    click.echo(f"new key {rotation.new.vkey}")
    click.echo(f"old key retired to {rotation.retired_key}, valid until {rotation.old_not_after}")
    click.echo(f"trusted keys for auditors: {rotation.trusted_keys}")
