"""Micro-benchmark of the ledger's Merkle code on N synthetic leaves.

Prints plain figures (no assertions): CompactRange append cost, MerkleLevels build rate
and root, root_from_leaves rate, and inclusion/consistency proof generation plus
verification rates. Leaf hashing is timed separately so the tree figures exclude it.

    .venv/bin/python benchmarks/bench_merkle.py --leaves 1000000
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time

from mcp_notary.ledger.merkle import (
    CompactRange,
    MerkleLevels,
    leaf_hash,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--leaves", type=int, default=1_000_000, help="number of leaves (N)")
    parser.add_argument("--proofs", type=int, default=20_000, help="proofs to generate+verify")
    parser.add_argument("--seed", type=int, default=1, help="random seed for proof indexes")
    args = parser.parse_args(argv)
    n: int = args.leaves
    if n < 2:
        parser.error("--leaves must be at least 2")
    rng = random.Random(args.seed)

    print(f"python {platform.python_version()} on {platform.machine()}, N = {n:,} leaves")

    t = time.perf_counter()
    leaves = [leaf_hash(i.to_bytes(8, "big")) for i in range(n)]
    dt = time.perf_counter() - t
    print(f"leaf_hash:            {dt / n * 1e6:8.3f} us/leaf  {n / dt:12,.0f} leaves/s")

    cr = CompactRange()
    append = cr.append
    t = time.perf_counter()
    for h in leaves:
        append(h)
    dt = time.perf_counter() - t
    cr_root = cr.root()
    print(f"CompactRange.append:  {dt / n * 1e6:8.3f} us/leaf  {n / dt:12,.0f} leaves/s")

    t = time.perf_counter()
    levels = MerkleLevels(leaves)
    dt = time.perf_counter() - t
    print(f"MerkleLevels build:   {dt:8.3f} s        {n / dt:12,.0f} leaves/s")
    t = time.perf_counter()
    root = levels.root()
    dt_root = time.perf_counter() - t
    print(f"MerkleLevels root:    {root.hex()}  ({dt_root * 1e6:.1f} us)")

    t = time.perf_counter()
    ref_root = root_from_leaves(leaves)
    dt = time.perf_counter() - t
    print(f"root_from_leaves:     {dt:8.3f} s        {n / dt:12,.0f} leaves/s")
    print(f"roots agree:          {root == cr_root == ref_root}")

    count = args.proofs
    indexes = [rng.randrange(n) for _ in range(count)]
    t = time.perf_counter()
    for i in indexes:
        verify_inclusion(leaves[i], i, n, levels.inclusion_proof(i), root)
    dt = time.perf_counter() - t
    print(f"inclusion gen+verify: {dt / count * 1e6:8.1f} us/proof {count / dt:12,.0f} proofs/s")

    t = time.perf_counter()
    for i in indexes:
        levels.inclusion_proof(i)
    gen = time.perf_counter() - t
    print(f"  generation only:    {gen / count * 1e6:8.1f} us/proof {count / gen:12,.0f} proofs/s")

    olds = [rng.randrange(1, n) for _ in range(count // 4)]
    pairs = [(m, levels.root(m)) for m in olds]
    t = time.perf_counter()
    for m, old_root in pairs:
        verify_consistency(m, n, levels.consistency_proof(m), old_root, root)
    dt = time.perf_counter() - t
    k = len(pairs)
    print(f"consistency gen+verify: {dt / k * 1e6:6.1f} us/proof {k / dt:12,.0f} proofs/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
