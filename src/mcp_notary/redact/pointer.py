"""JSON Pointers (RFC 6901) and the path trie that field rules are matched with.

Field rules (schema-declared sensitivity, operator overlays) name places in an MCP message
such as `/params/arguments/api_key` or `/result/structuredContent/items/*/token`; `*` stands
for any one member name or array index. While the walker descends a payload it carries the
trie nodes that match the path so far, so checking a member costs a dict lookup, not a scan
of every rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mcp_notary.errors import ConfigError

ANY = "*"

Op = Literal["drop", "sensitive", "hash", "allow"]
_OP_RANK: dict[str, int] = {"allow": 0, "hash": 1, "sensitive": 2, "drop": 3}

# Who said it, weakest first. A more specific operator statement beats a broader one, and any
# operator statement beats the tool's own schema (the operator may know the server over-marks).
LEVEL_SCHEMA, LEVEL_GLOBAL, LEVEL_SERVER, LEVEL_SCOPE = 0, 1, 2, 3


def escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def join(pointer: str, segment: str | int) -> str:
    return f"{pointer}/{escape(segment) if isinstance(segment, str) else segment}"


def parse(pointer: str) -> tuple[str, ...]:
    """Segments of an RFC 6901 pointer (`""` is the whole document)."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise ConfigError(f"JSON Pointer {pointer!r} must start with '/'")
    parts = pointer[1:].split("/")
    for part in parts:
        rest = part.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise ConfigError(f"JSON Pointer {pointer!r}: '~' must be written ~0 (and '/' as ~1)")
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in parts)


@dataclass(frozen=True, slots=True)
class Action:
    """What to do with the value at a path, and who asked for it (for the manifest)."""

    op: Op
    rule: str
    level: int
    kind: str = "sensitive"

    @property
    def rank(self) -> tuple[int, int]:
        return (self.level, _OP_RANK[self.op])


@dataclass(slots=True)
class PathTrie:
    children: dict[str, PathTrie] = field(default_factory=dict)
    any: PathTrie | None = None
    action: Action | None = None

    def add(self, segments: tuple[str, ...], action: Action) -> None:
        node = self
        for seg in segments:
            if seg == ANY:
                if node.any is None:
                    node.any = PathTrie()
                node = node.any
            else:
                node = node.children.setdefault(seg, PathTrie())
        if node.action is None or action.rank >= node.action.rank:
            node.action = action


Nodes = tuple[PathTrie, ...]


def step(nodes: Nodes, key: str) -> Nodes:
    """The trie nodes that match one segment further down."""
    out: list[PathTrie] = []
    for node in nodes:
        child = node.children.get(key)
        if child is not None:
            out.append(child)
        if node.any is not None:
            out.append(node.any)
    return tuple(out)


def descend(nodes: Nodes, *segments: str) -> Nodes:
    for seg in segments:
        if not nodes:
            break
        nodes = step(nodes, seg)
    return nodes


def action_of(nodes: Nodes) -> Action | None:
    """The strongest action among `nodes` (most specific source, then drop > sensitive > hash >
    allow)."""
    best: Action | None = None
    for node in nodes:
        a = node.action
        if a is not None and (best is None or a.rank > best.rank):
            best = a
    return best
