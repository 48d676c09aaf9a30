"""What a forger with write access to a SQLite store does after editing event bytes: recompute
the leaf and chain hashes, so only the checkpoints and the verifier's own checks can tell."""

from __future__ import annotations

import sqlite3

from mcp_notary.ledger.canonical import GENESIS_HASH, chain_hash
from mcp_notary.ledger.merkle import leaf_hash


def rows(db: sqlite3.Connection, stream: str) -> list[tuple[int, bytes]]:
    return [
        (seq, bytes(body))
        for seq, body in db.execute(
            "SELECT seq, body FROM events WHERE stream = ? ORDER BY seq", (stream,)
        )
    ]


def rehash_from(db: sqlite3.Connection, stream: str, first_seq: int) -> None:
    """Recompute leaf and chain hashes from `first_seq` on, as a forger would."""
    prev = GENESIS_HASH
    for seq, body in rows(db, stream):
        if seq >= first_seq:
            db.execute(
                "UPDATE events SET leaf_hash = ?, chain_hash = ? WHERE stream = ? AND seq = ?",
                (leaf_hash(body), chain_hash(prev, body), stream, seq),
            )
            prev = chain_hash(prev, body)
        else:
            (stored,) = db.execute(
                "SELECT chain_hash FROM events WHERE stream = ? AND seq = ?", (stream, seq)
            ).fetchone()
            prev = bytes(stored)
