"""RFC 6962 / RFC 9162 Merkle tree math: hashes, compact ranges, proofs and their verifiers.

Everything here is a pure function of its inputs. Storage is passed in as a function
(``get_node(level, index) -> bytes``, Tessera style) so the same proof code serves an
in-memory tree (:class:`MerkleLevels`), tlog-tiles on disk, or a database.

Node coordinates: ``(level, index)`` names the *perfect* subtree covering leaves
``[index << level, (index + 1) << level)``; level 0 holds the leaf hashes. Only perfect
subtrees are ever stored, because those are the only nodes that never change as the log
grows; the hashes of right-border subtrees of a non-power-of-two tree are recomputed from
them on demand.

Hashing (RFC 6962 section 2.1)::

    MTH({})  = SHA-256("")
    leaf     = SHA-256(0x00 || d)
    node     = SHA-256(0x01 || left || right)

Error hierarchy::

    IntegrityError (mcp_notary.errors)
    └── ProofError (also a ValueError)   a proof, root or size claim does not verify
        └── RootMismatchError            the proof is well formed but yields another root
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypedDict

from mcp_notary.errors import IntegrityError

__all__ = [
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

LEAF_PREFIX = b"\x00"
"""Domain-separation prefix for leaf hashes (RFC 6962 section 2.1)."""

NODE_PREFIX = b"\x01"
"""Domain-separation prefix for interior node hashes (RFC 6962 section 2.1)."""

HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256; tlog-tiles allows nothing else)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root hash of the empty tree, ``SHA-256("")``."""

NodeGetter = Callable[[int, int], bytes]
"""``get_node(level, index)``: the hash of the perfect subtree at those coordinates."""

# Bound once: these run millions of times when a verifier rebuilds a large tree.
_sha256 = hashlib.sha256
_HEX_HASH = re.compile(r"[0-9a-f]{64}")


class ProofError(IntegrityError, ValueError):
    """A Merkle proof, root or size claim does not verify.

    It is a :class:`ValueError` so callers that treat bad input generically still catch
    it, and an :class:`~mcp_notary.errors.IntegrityError` so the CLI reports it as
    evidence that failed to verify rather than as a crash.
    """


class RootMismatchError(ProofError):
    """The proof has the right shape but reconstructs a root other than the one claimed."""

    def __init__(self, what: str, expected: bytes, calculated: bytes) -> None:
        self.expected = expected
        self.calculated = calculated
        super().__init__(
            f"{what}: calculated root {calculated.hex()} does not match expected {expected.hex()}"
        )


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 hash of a leaf: ``SHA-256(0x00 || data)``."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return _sha256(NODE_PREFIX + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The split point ``k`` of RFC 6962: the largest power of two strictly less than n > 1."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, expected {HASH_SIZE}")


# --------------------------------------------------------------------------------------
# Reference root


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return ``MTH(D[n])`` for the given leaf hashes, straight from the RFC 6962 definition.

    This is the reference the other code paths (:class:`CompactRange`,
    :class:`MerkleLevels`, proofs) are tested against, so it deliberately shares no code
    with them: it is the recursive definition, walking index ranges rather than copying
    slices. It costs one hash per leaf and per interior node, O(log n) stack.
    """
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT

    def mth(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return leaf_hashes[lo]
        k = _largest_power_of_two_below(hi - lo)
        return _sha256(NODE_PREFIX + mth(lo, lo + k) + mth(lo + k, hi)).digest()

    return mth(0, n)


# --------------------------------------------------------------------------------------
# Compact range


class CompactRangeState(TypedDict):
    """JSON-friendly snapshot of a :class:`CompactRange`: the leaf count and the hex
    hashes of its perfect subtrees, largest (leftmost) first."""

    size: int
    hashes: list[str]


class CompactRange:
    """An appendable RFC 6962 tree that keeps only O(log n) state (the "frontier").

    The state is the list of roots of the perfect subtrees that tile ``[0, size)``, one per
    set bit of ``size``, largest first. Appending merges equal-sized neighbours exactly as
    a binary counter carries, so the amortised cost is two hashes per leaf and the root is
    a fold over at most 64 hashes. A writer persists :meth:`to_state` next to its journal
    and resumes with :meth:`from_state` instead of rehashing every leaf.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        """Start an empty range (size 0, root :data:`EMPTY_ROOT`)."""
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_hashes(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Restore a range from its size and perfect-subtree hashes (largest first).

        Raises ValueError if the number or length of hashes cannot belong to ``size``.
        """
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"compact range size must be a non-negative integer, got {size!r}")
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a compact range of size {size} holds {size.bit_count()} hashes, got {len(hashes)}"
            )
        for i, h in enumerate(hashes):
            if not isinstance(h, bytes) or len(h) != HASH_SIZE:
                raise ValueError(f"compact range hash {i} is not {HASH_SIZE} bytes")
        cr = cls()
        cr._size = size
        cr._hashes = list(hashes)
        return cr

    @classmethod
    def from_state(cls, state: Mapping[str, object]) -> CompactRange:
        """Restore a range from :meth:`to_state` output (e.g. after a JSON round trip).

        Validation is strict because the state is read back from disk: hashes must be
        64 lowercase hex digits and their count must match ``size``.
        """
        if set(state) != {"size", "hashes"}:
            raise ValueError(
                f"compact range state must have keys 'size' and 'hashes', got {sorted(state)}"
            )
        size = state["size"]
        hexes = state["hashes"]
        if isinstance(size, bool) or not isinstance(size, int):
            raise ValueError(f"compact range size must be an integer, got {size!r}")
        if not isinstance(hexes, list):
            raise ValueError("compact range hashes must be a list of hex strings")
        hashes: list[bytes] = []
        for i, h in enumerate(hexes):
            if not isinstance(h, str) or not _HEX_HASH.fullmatch(h):
                raise ValueError(f"compact range hash {i} is not 64 lowercase hex digits: {h!r}")
            hashes.append(bytes.fromhex(h))
        return cls.from_hashes(size, hashes)

    def to_state(self) -> CompactRangeState:
        """Snapshot the range as ``{"size": n, "hashes": [hex, ...]}`` (JSON-serialisable)."""
        return {"size": self._size, "hashes": [h.hex() for h in self._hashes]}

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees covering ``[0, size)``, largest first."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash (already ``leaf_hash(data)``, 32 bytes)."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash is {len(leaf_hash)} bytes, expected {HASH_SIZE}")
        hashes = self._hashes
        hashes.append(leaf_hash)
        # Each trailing 1 bit of the old size is a perfect subtree the same height as the
        # one just completed; merge them like a binary carry.
        n = self._size
        while n & 1:
            right = hashes.pop()
            hashes[-1] = _sha256(NODE_PREFIX + hashes[-1] + right).digest()
            n >>= 1
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append several leaf hashes in order."""
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """Return the RFC 6962 root of the leaves appended so far."""
        hashes = self._hashes
        if not hashes:
            return EMPTY_ROOT
        # MTH splits at the largest power of two, i.e. the leftmost perfect subtree, so the
        # root is the right fold: node(h0, node(h1, ... node(h_{k-1}, h_k))).
        r = hashes[-1]
        for h in reversed(hashes[:-1]):
            r = _sha256(NODE_PREFIX + h + r).digest()
        return r

    def copy(self) -> CompactRange:
        """Return an independent copy (e.g. to compute a root without disturbing a writer)."""
        return CompactRange.from_hashes(self._size, self._hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable: equality without hashing

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


# --------------------------------------------------------------------------------------
# Subtree hashes and proof generation over a node getter


def subtree_hash(start: int, end: int, get_node: NodeGetter) -> bytes:
    """Return ``MTH(D[start:end])`` for a subtree of the RFC 6962 tree.

    ``[start, end)`` must be a range the RFC recursion produces (``start`` a multiple of
    the smallest power of two >= ``end - start``), which holds for every range a proof or
    root needs. The range is tiled left to right by the largest aligned perfect subtrees,
    fetched with ``get_node``, and folded from the right: O(log n) fetches and hashes.
    """
    if not 0 <= start < end or start % (1 << (end - start - 1).bit_length()):
        raise ValueError(f"[{start}, {end}) is not a subtree of an RFC 6962 tree")
    parts: list[bytes] = []
    pos = start
    while pos < end:
        # Largest level at which pos is aligned and the node still fits before end.
        level = (end - pos).bit_length() - 1
        if pos:
            level = min(level, (pos & -pos).bit_length() - 1)
        parts.append(get_node(level, pos >> level))
        pos += 1 << level
    r = parts[-1]
    for h in reversed(parts[:-1]):
        r = node_hash(h, r)
    return r


def inclusion_proof(index: int, size: int, get_node: NodeGetter) -> list[bytes]:
    """Return the RFC 6962 audit path ``PATH(index, D[size])``, leaf level first.

    Raises ValueError unless ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    proof: list[bytes] = []
    lo, hi = 0, size
    # Walk down from the root; each step records the sibling subtree the path skips.
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            proof.append(subtree_hash(lo + k, hi, get_node))
            hi = lo + k
        else:
            proof.append(subtree_hash(lo, lo + k, get_node))
            lo += k
    proof.reverse()  # the RFC lists siblings from the leaf upwards
    return proof


def consistency_proof(old_size: int, new_size: int, get_node: NodeGetter) -> list[bytes]:
    """Return the RFC 6962 consistency proof ``PROOF(old_size, D[new_size])``.

    Raises ValueError unless ``0 < old_size <= new_size``: a proof from the empty tree is
    meaningless (every tree extends it) and verifiers reject it.
    """
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    proof: list[bytes] = []
    lo, hi = 0, new_size
    # `complete` is the RFC's SUBPROOF flag b: true while the old tree's root is the very
    # subtree we are in, so the verifier already knows it and it is left out of the proof.
    complete = True
    while old_size != hi:
        k = _largest_power_of_two_below(hi - lo)
        if old_size - lo <= k:
            proof.append(subtree_hash(lo + k, hi, get_node))
            hi = lo + k
        else:
            proof.append(subtree_hash(lo, lo + k, get_node))
            lo += k
            complete = False
    if not complete:
        proof.append(subtree_hash(lo, hi, get_node))
    proof.reverse()
    return proof


def inclusion_proof_size(index: int, size: int) -> int:
    """Number of hashes in a valid inclusion proof for ``index`` in a tree of ``size``."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    # Below the level where the paths to `index` and `size - 1` meet, every level has a
    # sibling; above it only the levels where `index` is a right child do.
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def consistency_proof_size(old_size: int, new_size: int) -> int:
    """Number of hashes in a valid consistency proof from ``old_size`` to ``new_size``."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size == new_size:
        return 0
    # The proof is the inclusion path of leaf old_size-1 in the new tree, starting at the
    # level of the old tree's rightmost perfect subtree, plus that subtree's own hash
    # unless the old tree is itself perfect (then the verifier already holds it).
    shift = ((old_size & -old_size).bit_length()) - 1
    seed = 0 if old_size == 1 << shift else 1
    return seed + inclusion_proof_size(old_size - 1, new_size) - shift


# --------------------------------------------------------------------------------------
# In-memory tree


class MerkleLevels:
    """Every perfect-subtree hash of a fixed list of leaves, built once in O(n).

    After the build, :meth:`root` for any prefix size and each proof cost O(log n) hashes,
    which is what a verifier replaying a million-leaf log needs. Level ``L`` holds the
    ``size >> L`` complete nodes of that height (about 2n hashes in total).
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes]) -> None:
        """Hash every complete level above ``leaf_hashes`` (each must be 32 bytes)."""
        leaves = list(leaf_hashes)
        for i, h in enumerate(leaves):
            if len(h) != HASH_SIZE:
                raise ValueError(f"leaf hash {i} is {len(h)} bytes, expected {HASH_SIZE}")
        levels = [leaves]
        sha, prefix = _sha256, NODE_PREFIX
        level = leaves
        while len(level) > 1:
            # zip drops an unpaired last node: it is not complete at the next level.
            pairs = zip(level[0::2], level[1::2], strict=False)
            level = [sha(prefix + a + b).digest() for a, b in pairs]
            levels.append(level)
        self._levels = levels

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0])

    def get_node(self, level: int, index: int) -> bytes:
        """Return the perfect-subtree hash at ``(level, index)`` (a :data:`NodeGetter`)."""
        if level < 0 or level >= len(self._levels) or not 0 <= index < len(self._levels[level]):
            raise IndexError(f"no complete node at level {level}, index {index}")
        return self._levels[level][index]

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is outside 0..{self.size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """Root of the tree over the first ``size`` leaves (default: all of them)."""
        n = self._check_size(size)
        return EMPTY_ROOT if n == 0 else subtree_hash(0, n, self.get_node)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path for leaf ``index`` in the tree of the first ``size`` leaves."""
        return inclusion_proof(index, self._check_size(size), self.get_node)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Consistency proof from the first ``old_size`` to the first ``new_size`` leaves."""
        return consistency_proof(old_size, self._check_size(new_size), self.get_node)


# --------------------------------------------------------------------------------------
# Verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2)


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Returns None on success and raises :class:`ProofError` (or its subclass
    :class:`RootMismatchError`) on any failure; there is no boolean to forget to check.
    The steps are RFC 9162 section 2.1.3.2; the up-front length check only makes the
    message precise (the RFC loop rejects wrong lengths too, and still runs).
    """
    if index < 0 or size < 0:
        raise ProofError(f"negative leaf index or tree size ({index}, {size})")
    # Step 1.
    if index >= size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hash(leaf_hash, "leaf hash")
    expected = inclusion_proof_size(index, size)
    if len(proof) != expected:
        raise ProofError(
            f"inclusion proof for leaf {index} in a tree of size {size} must have "
            f"{expected} hashes, got {len(proof)}"
        )
    for i, p in enumerate(proof):
        _check_hash(p, f"inclusion proof hash {i}")
    # Steps 2-4.
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                # On the right border: skip levels where this node has no right sibling.
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # Step 5.
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    if r != root:
        raise RootMismatchError(f"inclusion proof for leaf {index} of {size}", root, r)


def verify_consistency(
    old_size: int,
    new_size: int,
    proof: Sequence[bytes],
    old_root: bytes,
    new_root: bytes,
) -> None:
    """Check that the tree of ``new_size`` with ``new_root`` extends the tree of
    ``old_size`` with ``old_root``.

    Returns None on success and raises :class:`ProofError` on any failure. Requires
    ``0 < old_size <= new_size``: as in transparency-dev/merkle, a proof from the empty
    tree is rejected as meaningless (it would accept any ``new_root``). Equal sizes need
    an empty proof and equal roots. Otherwise the steps are RFC 9162 section 2.1.4.2.
    """
    if old_size < 0 or new_size < 0:
        raise ProofError(f"negative tree size ({old_size}, {new_size})")
    if new_size < old_size:
        raise ProofError(f"new tree size {new_size} is smaller than old tree size {old_size}")
    if old_size == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if old_size == new_size:
        if proof:
            raise ProofError(f"tree sizes are equal ({old_size}) but the proof is not empty")
        if old_root != new_root:
            raise RootMismatchError(f"equal tree sizes ({old_size})", old_root, new_root)
        return
    # Step 1.
    if not proof:
        raise ProofError(f"empty consistency proof from size {old_size} to {new_size}")
    expected = consistency_proof_size(old_size, new_size)
    if len(proof) != expected:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} must have "
            f"{expected} hashes, got {len(proof)}"
        )
    for i, p in enumerate(proof):
        _check_hash(p, f"consistency proof hash {i}")
    # Step 2.
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # Steps 3-4.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # Step 7.
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    if fr != old_root:
        raise RootMismatchError(f"consistency proof, old tree of size {old_size}", old_root, fr)
    if sr != new_root:
        raise RootMismatchError(f"consistency proof, new tree of size {new_size}", new_root, sr)
