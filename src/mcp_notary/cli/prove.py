"""`mcp-notary prove EVENT_ID` and `mcp-notary verify-proof FILE`: offline evidence that one
event is in the signed log, and its check with nothing but a trusted key."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mcp_notary.cli.main import store_option
from mcp_notary.cli.verify import origin_prefix_option, resolve_trusted_keys, trusted_key_option
from mcp_notary.errors import ConfigError, IntegrityError
from mcp_notary.ledger.checkpoint import Checkpoint, SignedNote
from mcp_notary.ledger.merkle import MerkleLevels, leaf_hash
from mcp_notary.ledger.stores import open_store
from mcp_notary.verify.checkpoints import CheckpointEvidence, check_signatures
from mcp_notary.verify.proof import ProofBundle, make_bundle, verify_bundle


@click.command()
@store_option
@click.argument("event_id")
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    help="Where to write the bundle ('-' for stdout). Default: <EVENT_ID>.proof.json",
)
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(dir_okay=False, exists=True),
    help="Prove against this signed checkpoint (e.g. an anchored copy) instead of the "
    "newest stored one.",
)
@trusted_key_option
@origin_prefix_option
def prove(
    store: str | None,
    event_id: str,
    output: str | None,
    checkpoint_file: str | None,
    trusted_keys: tuple[str, ...],
    origin_prefix: str,
) -> None:
    """Write an offline inclusion-proof bundle for EVENT_ID: the event's bytes, its audit
    path and the signed checkpoint that covers it."""
    keys, _ = resolve_trusted_keys(trusted_keys)
    ledger = open_store(store, readonly=True)
    try:
        row = ledger.get(event_id)
        if row is None:
            raise ConfigError(f"no event {event_id} in the store")
        if checkpoint_file is not None:
            notes = [Path(checkpoint_file).read_bytes()]
        else:
            notes = [c.note for c in reversed(ledger.checkpoints(row.stream))]
        # The newest checkpoint that covers the event and that the trusted keys accept.
        chosen: tuple[bytes, Checkpoint] | None = None
        for candidate in notes:
            evidence = [CheckpointEvidence(candidate, "store", row.stream)]
            trusted, problems = check_signatures(evidence, keys, origin_prefix=origin_prefix)
            cp = Checkpoint.parse_body(SignedNote.parse(candidate).text)
            if cp.size >= row.seq and trusted and not problems:
                chosen = (candidate, cp)
                break
        if chosen is None:
            raise IntegrityError(
                f"no checkpoint of stream {row.stream} signed by a trusted key covers "
                f"seq {row.seq} yet"
            )
        note, size, root = chosen[0], chosen[1].size, chosen[1].root
        leaves: list[bytes] = []
        for page in ledger.scan_leaves(row.stream, 1, size):
            leaves += [
                leaf_hash(body) if body is not None else leaf  # pruned: kept leaf
                for _seq, _ts, body, leaf, _chain in page
            ]
    finally:
        ledger.close()
    if len(leaves) != size:
        raise IntegrityError(f"stream {row.stream} holds {len(leaves)} of the {size} events signed")
    tree = MerkleLevels(leaves)
    if tree.root() != root:
        raise IntegrityError(
            f"the stored events of {row.stream} do not produce the signed root of size {size}: "
            "run `mcp-notary verify`"
        )
    bundle = make_bundle(
        row.event_id, row.stream, row.seq, row.body, tree.inclusion_proof(row.seq - 1), note
    )
    text = bundle.to_json() + "\n"
    target = output or f"{event_id}.proof.json"
    if target == "-":
        click.echo(text, nl=False)
    else:
        Path(target).write_text(text, encoding="utf-8")
        click.echo(f"wrote {target}: {row.stream} seq {row.seq} in checkpoint of size {size}")


@click.command("verify-proof")
@click.argument("bundle_file", type=click.Path(dir_okay=False, exists=True))
@trusted_key_option
@origin_prefix_option
def verify_proof(bundle_file: str, trusted_keys: tuple[str, ...], origin_prefix: str) -> None:
    """Check a bundle written by `mcp-notary prove` with nothing but a trusted key.
    Exit 0 verified, 1 it does not verify, 3 usage error."""
    keys, _ = resolve_trusted_keys(trusted_keys)
    if not keys:
        raise ConfigError("verify-proof needs --trusted-key FILE")
    bundle = ProofBundle.from_json(Path(bundle_file).read_bytes())
    result = verify_bundle(bundle, keys, origin_prefix=origin_prefix)
    click.echo(
        f"✓ event {result.event_id} is {result.stream} seq {result.seq}, included in the "
        f"checkpoint of size {result.checkpoint.size} signed by {result.signers}"
    )
    sys.exit(0)
