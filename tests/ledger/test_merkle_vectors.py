"""The transparency-dev/merkle RFC 6962 proof vectors (518 JSON files) against our verifiers.

Every file under ``inclusion/`` and ``consistency/`` is run. The ``subtree*`` directories
are for a different API (draft-ietf-plants-merkle-tree-certs subtrees ``[start, end)``);
the cases with ``start == 0`` are ordinary proofs against a tree of size ``end`` and are
run too. Cases with ``start > 0`` need a subtree verifier this module does not offer, and
``start == end == 0`` means "empty subtree", which has no counterpart in a plain
consistency check (a proof from the empty tree is always rejected), so both are left out
and counted.

The corpus is looked up in ``$MCP_NOTARY_MERKLE_VECTORS``, then ``tests/vectors/merkle``
in this repository, then ``../shared/vectors/merkle`` beside the checkout.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from mcp_notary.ledger.merkle import (
    MerkleLevels,
    ProofError,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)


def _find_corpus() -> Path | None:
    candidates = [
        os.environ.get("MCP_NOTARY_MERKLE_VECTORS", ""),
        str(Path(__file__).resolve().parents[1] / "vectors" / "merkle"),
        str(Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "merkle"),
    ]
    for c in candidates:
        if c and (Path(c) / "inclusion").is_dir():
            return Path(c)
    return None


CORPUS = _find_corpus()


def _load(kind: str) -> list[tuple[str, dict[str, Any]]]:
    if CORPUS is None:
        return []
    return [
        (str(p.relative_to(CORPUS)), json.loads(p.read_text()))
        for p in sorted((CORPUS / kind).rglob("*.json"))
    ]


INCLUSION = _load("inclusion")
CONSISTENCY = _load("consistency")
SUBTREE_INCLUSION = _load("subtreeinclusion")
SUBTREE_CONSISTENCY = _load("subtreeconsistency")
SUBTREE_INCLUSION_PLAIN = [c for c in SUBTREE_INCLUSION if c[1]["start"] == 0]
SUBTREE_CONSISTENCY_PLAIN = [
    c for c in SUBTREE_CONSISTENCY if c[1]["start"] == 0 and c[1]["end"] > 0
]


def b64(s: str) -> bytes:
    return base64.b64decode(s)


def proof_of(case: dict[str, Any]) -> list[bytes]:
    return [b64(p) for p in case["proof"] or []]


def run_inclusion(case: dict[str, Any], size: int) -> None:
    verify_inclusion(
        b64(case["leafHash"]), case["leafIdx"], size, proof_of(case), b64(case["root"])
    )


def run_consistency(case: dict[str, Any], old: int, new: int) -> None:
    verify_consistency(old, new, proof_of(case), b64(case["root1"]), b64(case["root2"]))


def check(want_err: bool, run: Any, *args: Any) -> None:
    if want_err:
        with pytest.raises(ProofError):
            run(*args)
    else:
        run(*args)


def ids(cases: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in cases]


def test_vector_corpus_is_present_and_complete() -> None:
    assert CORPUS is not None, "RFC 6962 vector corpus not found; set MCP_NOTARY_MERKLE_VECTORS"
    assert len(INCLUSION) == 98
    assert len(CONSISTENCY) == 98
    assert len(SUBTREE_INCLUSION) == 204
    assert len(SUBTREE_CONSISTENCY) == 118
    assert len(SUBTREE_INCLUSION_PLAIN) == 101
    assert len(SUBTREE_CONSISTENCY_PLAIN) == 91
    # Both outcomes are represented, so a verifier that always accepts or always rejects
    # cannot pass.
    for cases in (INCLUSION, CONSISTENCY):
        assert {c["wantErr"] for _, c in cases} == {True, False}


@pytest.mark.parametrize(("name", "case"), INCLUSION, ids=ids(INCLUSION))
def test_inclusion_vector(name: str, case: dict[str, Any]) -> None:
    check(case["wantErr"], run_inclusion, case, case["treeSize"])


@pytest.mark.parametrize(("name", "case"), CONSISTENCY, ids=ids(CONSISTENCY))
def test_consistency_vector(name: str, case: dict[str, Any]) -> None:
    check(case["wantErr"], run_consistency, case, case["size1"], case["size2"])


@pytest.mark.parametrize(
    ("name", "case"), SUBTREE_INCLUSION_PLAIN, ids=ids(SUBTREE_INCLUSION_PLAIN)
)
def test_subtree_inclusion_vector_from_zero(name: str, case: dict[str, Any]) -> None:
    # [0, end) is the whole tree of size `end`.
    check(case["wantErr"], run_inclusion, case, case["end"])


@pytest.mark.parametrize(
    ("name", "case"), SUBTREE_CONSISTENCY_PLAIN, ids=ids(SUBTREE_CONSISTENCY_PLAIN)
)
def test_subtree_consistency_vector_from_zero(name: str, case: dict[str, Any]) -> None:
    # [0, end) within a tree of `size` is a consistency proof from size `end`.
    check(case["wantErr"], run_consistency, case, case["end"], case["size"])


# The happy-path vectors are built on transparency-dev's standard 8-leaf tree, so our
# proof generator must reproduce their proofs exactly, not merely produce ones that verify.
GO_LEAVES = [
    leaf_hash(bytes.fromhex(h))
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
GO_TREE = MerkleLevels(GO_LEAVES)


def _standard_tree(size: int, root: str) -> bool:
    return 0 < size <= 8 and GO_TREE.root(size) == b64(root)


GENERATED_INCLUSION = [
    c
    for c in INCLUSION
    if not c[1]["wantErr"]
    and _standard_tree(c[1]["treeSize"], c[1]["root"])
    and b64(c[1]["leafHash"]) == GO_LEAVES[c[1]["leafIdx"]]
]
GENERATED_CONSISTENCY = [
    c
    for c in CONSISTENCY
    if not c[1]["wantErr"]
    and _standard_tree(c[1]["size1"], c[1]["root1"])
    and _standard_tree(c[1]["size2"], c[1]["root2"])
]


def test_generated_vector_selection_is_not_empty() -> None:
    # Every happy path in inclusion/0-4 and consistency/0-4 uses the standard tree.
    assert len(GENERATED_INCLUSION) == 5
    assert len(GENERATED_CONSISTENCY) == 5


@pytest.mark.parametrize(("name", "case"), GENERATED_INCLUSION, ids=ids(GENERATED_INCLUSION))
def test_generator_reproduces_inclusion_vector(name: str, case: dict[str, Any]) -> None:
    assert GO_TREE.inclusion_proof(case["leafIdx"], case["treeSize"]) == proof_of(case)


@pytest.mark.parametrize(("name", "case"), GENERATED_CONSISTENCY, ids=ids(GENERATED_CONSISTENCY))
def test_generator_reproduces_consistency_vector(name: str, case: dict[str, Any]) -> None:
    assert GO_TREE.consistency_proof(case["size1"], case["size2"]) == proof_of(case)
