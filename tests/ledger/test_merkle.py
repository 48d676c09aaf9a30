"""Tests for mcp_notary.ledger.merkle: known answers, cross-checks and property tests."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_notary.errors import IntegrityError
from mcp_notary.ledger import merkle
from mcp_notary.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    LEAF_PREFIX,
    NODE_PREFIX,
    CompactRange,
    MerkleLevels,
    ProofError,
    RootMismatchError,
    consistency_proof,
    consistency_proof_size,
    inclusion_proof,
    inclusion_proof_size,
    leaf_hash,
    node_hash,
    root_from_leaves,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)

# Leaves and roots of the standard 8-leaf tree from transparency-dev/merkle
# (testonly/constants.go), the tree the RFC 6962 test vectors are built on.
GO_LEAF_INPUTS = [
    bytes.fromhex(h)
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
GO_ROOTS = [
    bytes.fromhex(h)
    for h in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]

MAX_SIZE = 300
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(MAX_SIZE)]
TREE = MerkleLevels(LEAVES)
ROOTS = [root_from_leaves(LEAVES[:n]) for n in range(MAX_SIZE + 1)]


def flip_bit(data: bytes, bit: int) -> bytes:
    """Return ``data`` with one bit inverted (bit index modulo its length in bits)."""
    bit %= len(data) * 8
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --------------------------------------------------------------------------------------
# Hashing


def test_prefixes_and_empty_root() -> None:
    assert LEAF_PREFIX == b"\x00"
    assert NODE_PREFIX == b"\x01"
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert HASH_SIZE == 32


def test_rfc6962_hash_known_answers() -> None:
    # From transparency-dev/merkle rfc6962_test.go.
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert leaf_hash(b"L123456").hex() == (
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert node_hash(b"N123", b"N456").hex() == (
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )
    # Domain separation: an empty leaf is not the empty tree.
    assert leaf_hash(b"") != EMPTY_ROOT


def test_go_reference_roots_every_implementation() -> None:
    leaves = [leaf_hash(d) for d in GO_LEAF_INPUTS]
    levels = MerkleLevels(leaves)
    cr = CompactRange()
    assert cr.root() == GO_ROOTS[0]
    for n in range(len(leaves) + 1):
        assert root_from_leaves(leaves[:n]) == GO_ROOTS[n]
        assert levels.root(n) == GO_ROOTS[n]
        assert MerkleLevels(leaves[:n]).root() == GO_ROOTS[n]
        if n:
            cr.append(leaves[n - 1])
        assert cr.root() == GO_ROOTS[n]


def test_go_reference_compact_range_state() -> None:
    # compact.Tree hashes for size 7 are nodes (2,0), (1,2), (0,6) of the 8-leaf tree.
    leaves = [leaf_hash(d) for d in GO_LEAF_INPUTS]
    cr = CompactRange()
    cr.extend(leaves[:7])
    assert [h.hex() for h in cr.hashes] == [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    ]


def test_public_api_is_exact() -> None:
    assert sorted(merkle.__all__) == sorted(
        [
            "EMPTY_ROOT",
            "HASH_SIZE",
            "LEAF_PREFIX",
            "NODE_PREFIX",
            "CompactRange",
            "CompactRangeState",
            "MerkleLevels",
            "NodeGetter",
            "ProofError",
            "RootMismatchError",
            "consistency_proof",
            "consistency_proof_size",
            "inclusion_proof",
            "inclusion_proof_size",
            "leaf_hash",
            "node_hash",
            "root_from_leaves",
            "subtree_hash",
            "verify_consistency",
            "verify_inclusion",
        ]
    )


def test_proof_error_hierarchy() -> None:
    assert issubclass(ProofError, ValueError)
    assert issubclass(ProofError, IntegrityError)
    assert issubclass(RootMismatchError, ProofError)


# --------------------------------------------------------------------------------------
# CompactRange


def test_compact_range_matches_reference_for_every_prefix() -> None:
    cr = CompactRange()
    assert (cr.size, cr.root()) == (0, EMPTY_ROOT)
    for n, h in enumerate(LEAVES, start=1):
        cr.append(h)
        assert cr.size == n
        assert cr.root() == ROOTS[n], n
        assert len(cr.hashes) == bin(n).count("1")


def test_compact_range_state_round_trip_every_prefix_and_resume() -> None:
    cr = CompactRange()
    for n in range(0, 130):
        state = json.loads(json.dumps(cr.to_state()))
        restored = CompactRange.from_state(state)
        assert restored == cr
        assert restored.root() == ROOTS[n]
        # Resuming from the restored state must give the same tree as never stopping.
        for m in range(n, min(n + 5, MAX_SIZE)):
            restored.append(LEAVES[m])
            assert restored.root() == ROOTS[m + 1]
        cr.append(LEAVES[n])


def test_compact_range_state_shape() -> None:
    cr = CompactRange()
    cr.extend(LEAVES[:5])
    state = cr.to_state()
    assert state == {"size": 5, "hashes": [h.hex() for h in cr.hashes]}
    assert len(state["hashes"]) == 2


@pytest.mark.parametrize(
    "state",
    [
        {"size": 3, "hashes": ["00" * 32]},  # size 3 needs two hashes
        {"size": 1, "hashes": []},
        {"size": -1, "hashes": []},
        {"size": True, "hashes": ["00" * 32]},
        {"size": "1", "hashes": ["00" * 32]},
        {"size": 1, "hashes": ["AA" * 32]},  # uppercase is not the canonical spelling
        {"size": 1, "hashes": ["00" * 31]},
        {"size": 1, "hashes": ["zz" * 32]},
        {"size": 1, "hashes": [" 0" * 32]},
        {"size": 1, "hashes": "00" * 32},
        {"size": 1, "hashes": [0]},
        {"size": 0},
        {"size": 0, "hashes": [], "root": ""},
    ],
)
def test_compact_range_from_state_rejects_bad_state(state: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CompactRange.from_state(state)


def test_compact_range_from_hashes_validates() -> None:
    with pytest.raises(ValueError):
        CompactRange.from_hashes(2, [b"\x00" * 31])
    with pytest.raises(ValueError):
        CompactRange.from_hashes(2, [])
    assert CompactRange.from_hashes(0, []).root() == EMPTY_ROOT


def test_compact_range_rejects_wrong_length_leaf() -> None:
    cr = CompactRange()
    with pytest.raises(ValueError):
        cr.append(b"short")
    assert cr.size == 0


def test_compact_range_copy_is_independent() -> None:
    cr = CompactRange()
    cr.extend(LEAVES[:3])
    other = cr.copy()
    other.append(LEAVES[3])
    assert cr.size == 3 and other.size == 4
    assert cr.root() == ROOTS[3] and other.root() == ROOTS[4]
    assert "size=3" in repr(cr)


@given(st.lists(st.binary(max_size=40), max_size=70))
def test_compact_range_and_levels_match_reference_on_random_leaves(data: list[bytes]) -> None:
    leaves = [leaf_hash(d) for d in data]
    cr = CompactRange()
    cr.extend(leaves)
    expected = root_from_leaves(leaves)
    assert cr.root() == expected
    assert MerkleLevels(leaves).root() == expected
    assert CompactRange.from_state(cr.to_state()).root() == expected


# --------------------------------------------------------------------------------------
# MerkleLevels and node getters


def test_levels_root_for_every_prefix() -> None:
    for n in range(MAX_SIZE + 1):
        assert TREE.root(n) == ROOTS[n]
    assert TREE.root() == ROOTS[MAX_SIZE]
    assert TREE.size == MAX_SIZE
    assert MerkleLevels([]).root() == EMPTY_ROOT


def test_levels_get_node_bounds() -> None:
    levels = MerkleLevels(LEAVES[:5])
    assert levels.get_node(0, 4) == LEAVES[4]
    assert levels.get_node(2, 0) == ROOTS[4]
    for level, index in [(0, 5), (1, 2), (2, 1), (3, 0), (-1, 0), (0, -1)]:
        with pytest.raises(IndexError):
            levels.get_node(level, index)
    with pytest.raises(ValueError):
        levels.root(6)
    with pytest.raises(ValueError):
        MerkleLevels([b"\x00" * 31])


def test_proofs_from_storage_callback_touch_only_perfect_nodes() -> None:
    # A tile-like store: only complete subtrees exist, computed independently.
    size = 23
    store: dict[tuple[int, int], bytes] = {
        (level, index): root_from_leaves(LEAVES[index << level : (index + 1) << level])
        for level in range(6)
        for index in range(size >> level)
    }
    fetched: list[tuple[int, int]] = []

    def get_node(level: int, index: int) -> bytes:
        fetched.append((level, index))
        return store[(level, index)]

    levels = MerkleLevels(LEAVES[:size])
    for i in range(size):
        assert inclusion_proof(i, size, get_node) == levels.inclusion_proof(i)
    for m in range(1, size + 1):
        assert consistency_proof(m, size, get_node) == levels.consistency_proof(m)
    assert subtree_hash(0, size, get_node) == ROOTS[size]
    assert fetched and all(k in store for k in fetched)


def test_subtree_hash_rejects_non_subtree_ranges() -> None:
    for start, end in [(0, 0), (3, 2), (1, 3), (2, 5), (-1, 1)]:
        with pytest.raises(ValueError):
            subtree_hash(start, end, TREE.get_node)
    assert subtree_hash(4, 7, TREE.get_node) == root_from_leaves(LEAVES[4:7])


def test_proof_generation_rejects_impossible_requests() -> None:
    with pytest.raises(ValueError):
        TREE.inclusion_proof(5, 5)
    with pytest.raises(ValueError):
        TREE.inclusion_proof(-1, 5)
    with pytest.raises(ValueError):
        TREE.consistency_proof(0, 5)
    with pytest.raises(ValueError):
        TREE.consistency_proof(6, 5)
    with pytest.raises(ValueError):
        TREE.consistency_proof(1, MAX_SIZE + 1)
    assert TREE.consistency_proof(7, 7) == []


# --------------------------------------------------------------------------------------
# Proofs: exhaustive over small trees


def test_inclusion_exhaustive_small_trees() -> None:
    for n in range(1, 65):
        levels = MerkleLevels(LEAVES[:n])
        for i in range(n):
            proof = levels.inclusion_proof(i)
            assert proof == TREE.inclusion_proof(i, n)
            assert len(proof) == inclusion_proof_size(i, n)
            verify_inclusion(LEAVES[i], i, n, proof, ROOTS[n])


def test_consistency_exhaustive_small_trees() -> None:
    for n in range(1, 65):
        levels = MerkleLevels(LEAVES[:n])
        for m in range(1, n + 1):
            proof = levels.consistency_proof(m)
            assert proof == TREE.consistency_proof(m, n)
            assert len(proof) == consistency_proof_size(m, n)
            verify_consistency(m, n, proof, ROOTS[m], ROOTS[n])


def test_rfc6962_example_proof_shapes() -> None:
    # RFC 6962 section 2.1.3/2.1.4 examples over a 7-leaf tree (a..g).
    assert [len(TREE.inclusion_proof(i, 7)) for i in (0, 3, 4, 6)] == [3, 3, 3, 2]
    assert len(TREE.consistency_proof(3, 7)) == 4  # [c, d, g, l]
    assert len(TREE.consistency_proof(4, 7)) == 1  # [l]
    assert len(TREE.consistency_proof(6, 7)) == 3  # [i, j, k]
    # PROOF(4, D[7]) = [MTH(D[4:7])]
    assert TREE.consistency_proof(4, 7) == [root_from_leaves(LEAVES[4:7])]


# --------------------------------------------------------------------------------------
# Proofs: property tests on sizes 1..300


@st.composite
def index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(min_value=1, max_value=MAX_SIZE))
    return draw(st.integers(min_value=0, max_value=size - 1)), size


@st.composite
def old_and_new(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(min_value=1, max_value=MAX_SIZE))
    return draw(st.integers(min_value=1, max_value=new)), new


@settings(max_examples=300)
@given(index_and_size())
def test_inclusion_proof_verifies_against_reference_root(case: tuple[int, int]) -> None:
    index, size = case
    proof = TREE.inclusion_proof(index, size)
    assert proof == MerkleLevels(LEAVES[:size]).inclusion_proof(index)
    verify_inclusion(LEAVES[index], index, size, proof, root_from_leaves(LEAVES[:size]))


@settings(max_examples=300)
@given(index_and_size(), st.data())
def test_inclusion_any_bit_flip_is_rejected(case: tuple[int, int], data: st.DataObject) -> None:
    index, size = case
    proof = TREE.inclusion_proof(index, size)
    root, leaf = ROOTS[size], LEAVES[index]
    target = data.draw(st.integers(min_value=-2, max_value=len(proof) - 1), label="target")
    bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
    if target == -2:
        root = flip_bit(root, bit)
    elif target == -1:
        leaf = flip_bit(leaf, bit)
    else:
        proof = list(proof)
        proof[target] = flip_bit(proof[target], bit)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, size, proof, root)


@settings(max_examples=200)
@given(index_and_size(), st.data())
def test_inclusion_truncated_or_extended_proof_is_rejected(
    case: tuple[int, int], data: st.DataObject
) -> None:
    index, size = case
    proof = TREE.inclusion_proof(index, size)
    extra = data.draw(st.sampled_from([b"\x00" * 32, ROOTS[size], LEAVES[0]]))
    mutants = [[*proof, extra], [extra, *proof]]
    if proof:
        mutants += [proof[:-1], proof[1:]]
    for mutant in mutants:
        with pytest.raises(ProofError):
            verify_inclusion(LEAVES[index], index, size, mutant, ROOTS[size])


@settings(max_examples=300)
@given(old_and_new())
def test_consistency_proof_verifies_against_reference_roots(case: tuple[int, int]) -> None:
    old, new = case
    proof = TREE.consistency_proof(old, new)
    assert proof == MerkleLevels(LEAVES[:new]).consistency_proof(old)
    verify_consistency(
        old, new, proof, root_from_leaves(LEAVES[:old]), root_from_leaves(LEAVES[:new])
    )


@settings(max_examples=300)
@given(old_and_new(), st.data())
def test_consistency_any_bit_flip_is_rejected(case: tuple[int, int], data: st.DataObject) -> None:
    old, new = case
    proof = TREE.consistency_proof(old, new)
    old_root, new_root = ROOTS[old], ROOTS[new]
    target = data.draw(st.integers(min_value=-2, max_value=len(proof) - 1), label="target")
    bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
    if target == -2:
        old_root = flip_bit(old_root, bit)
    elif target == -1:
        new_root = flip_bit(new_root, bit)
    else:
        proof = list(proof)
        proof[target] = flip_bit(proof[target], bit)
    with pytest.raises(ProofError):
        verify_consistency(old, new, proof, old_root, new_root)


@settings(max_examples=200)
@given(old_and_new())
def test_consistency_truncated_or_extended_proof_is_rejected(case: tuple[int, int]) -> None:
    old, new = case
    proof = TREE.consistency_proof(old, new)
    mutants = [[*proof, ROOTS[old]], [ROOTS[old], *proof]]
    if proof:
        mutants += [proof[:-1], proof[1:]]
    for mutant in mutants:
        with pytest.raises(ProofError):
            verify_consistency(old, new, mutant, ROOTS[old], ROOTS[new])


@given(old_and_new())
def test_consistency_with_swapped_roots_is_rejected(case: tuple[int, int]) -> None:
    old, new = case
    if ROOTS[old] == ROOTS[new]:
        return
    with pytest.raises(ProofError):
        verify_consistency(old, new, TREE.consistency_proof(old, new), ROOTS[new], ROOTS[old])


# --------------------------------------------------------------------------------------
# Verifier edge cases and messages


def test_verify_inclusion_argument_errors() -> None:
    proof = TREE.inclusion_proof(1, 4)
    with pytest.raises(ProofError, match="outside"):
        verify_inclusion(LEAVES[1], 4, 4, proof, ROOTS[4])
    with pytest.raises(ProofError, match="negative"):
        verify_inclusion(LEAVES[1], -1, 4, proof, ROOTS[4])
    with pytest.raises(ProofError, match="leaf hash is 31 bytes"):
        verify_inclusion(LEAVES[1][:31], 1, 4, proof, ROOTS[4])
    with pytest.raises(ProofError, match="must have 2 hashes, got 1"):
        verify_inclusion(LEAVES[1], 1, 4, proof[:1], ROOTS[4])
    with pytest.raises(ProofError, match="proof hash 0"):
        verify_inclusion(LEAVES[1], 1, 4, [proof[0][:31], proof[1]], ROOTS[4])
    with pytest.raises(RootMismatchError) as info:
        verify_inclusion(LEAVES[2], 1, 4, proof, ROOTS[4])
    assert info.value.expected == ROOTS[4]


def test_verify_consistency_argument_errors() -> None:
    with pytest.raises(ProofError, match="smaller"):
        verify_consistency(5, 4, [], ROOTS[5], ROOTS[4])
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 4, [], EMPTY_ROOT, ROOTS[4])
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ProofError, match="not empty"):
        verify_consistency(4, 4, [ROOTS[4]], ROOTS[4], ROOTS[4])
    with pytest.raises(RootMismatchError):
        verify_consistency(4, 4, [], ROOTS[4], ROOTS[3])
    with pytest.raises(ProofError, match="empty consistency proof"):
        verify_consistency(3, 4, [], ROOTS[3], ROOTS[4])
    verify_consistency(4, 4, [], ROOTS[4], ROOTS[4])
