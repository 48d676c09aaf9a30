"""`mcp-notary rotate-key` and `rotate-redaction-key`: replace a key and record the rotation as a
`key_rotation` event in the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mcp_notary.cli.main import store_option
from mcp_notary.cli.watch import OwnStream
from mcp_notary.events.model import EventDraft
from mcp_notary.identity.local import os_principal
from mcp_notary.ids import utc_timestamp
from mcp_notary.ledger.checkpointer import CheckpointSettings, KeySigner
from mcp_notary.ledger.keys import (
    default_signing_key_path,
    load_or_create_signing_key,
    rotate_signing_key,
)
from mcp_notary.ledger.signing import load_signer
from mcp_notary.ledger.stores import open_store
from mcp_notary.redact.tokens import rotate_key as rotate_redaction_key_file


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
    path = Path(signing_key) if signing_key else default_signing_key_path()
    rotation = rotate_signing_key(path, grace_s=grace * 3600)
    _record_rotation(
        store,
        path,
        {
            "key": "checkpoint",
            "old_vkey": rotation.old.vkey,
            "old_not_after": rotation.old_not_after,
            "new_vkey": rotation.new.vkey,
            "new_not_before": rotation.new_not_before,
        },
    )
    click.echo(f"new key {rotation.new.vkey}")
    click.echo(f"old key retired to {rotation.retired_key}, valid until {rotation.old_not_after}")
    click.echo(f"trusted keys for auditors: {rotation.trusted_keys}")


@click.command("rotate-redaction-key")
@store_option
@click.option(
    "--key-file",
    envvar="MCP_NOTARY_REDACTION_KEY_FILE",
    type=click.Path(dir_okay=False),
    help="The redaction key to rotate [default: redaction.key in the per-user data directory].",
)
@click.option(
    "--keep-old",
    is_flag=True,
    help="Keep the old key beside the new one, so old tokens can still be matched.",
)
def rotate_redaction_key(store: str | None, key_file: str | None, keep_old: bool) -> None:
    """Rotate the key behind redaction tokens (do it when the key may have leaked).

    Tokens made after the rotation no longer join with older ones; the rotation is recorded as
    a key_rotation event with both key ids (never the keys). Restart running proxies."""
    _key, rotation = rotate_redaction_key_file(key_file, keep_old=keep_old)
    _record_rotation(store, None, rotation.details())
    click.echo(f"new redaction key id {rotation.new_key_id} (was {rotation.old_key_id})")


def _record_rotation(store: str | None, signing_key: Path | None, details: dict[str, Any]) -> None:
    """Append the `key_rotation` event on a stream of its own, checkpointed like any other."""
    signer = load_signer(signing_key) if signing_key else load_or_create_signing_key(None)
    ledger = open_store(store)
    own = OwnStream(ledger, CheckpointSettings(KeySigner(signer)), "mcp-notary keys")
    try:
        own.submit(
            EventDraft(
                kind="key_rotation",
                timestamp=utc_timestamp(),
                principal=os_principal(),
                transport="inprocess",
                details=details,
            )
        )
    finally:
        own.close()
        ledger.close()
