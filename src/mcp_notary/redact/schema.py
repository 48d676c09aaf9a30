"""Which properties a tool's JSON Schema declares sensitive.

MCP has no sensitivity flag of its own (every proposal was closed; research/mcp-protocol.md
section 4), so we honour what JSON Schema and common extensions already say:
`"sensitive": true`, `"x-sensitive": true`, `"writeOnly": true` (2020-12: the value is sent
but never read back, i.e. a credential) and `"format": "password"`. Marks are found in nested
`properties`, `items`/`prefixItems`, `additionalProperties`/`patternProperties`, the
`allOf`/`anyOf`/`oneOf`/`if`/`then`/`else` branches, and local `$ref`s into `$defs` or
`definitions`. A marked property is redacted whole, whatever it contains.

Schemas come from servers, which may be hostile: depth and reference chains are bounded, and a
schema we cannot read simply marks nothing (detectors still run on every value).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from mcp_notary.redact.pointer import ANY

_MAX_DEPTH = 32
_MAX_VISITS = 20_000  # a recursive schema with branching refs would otherwise explode
_BRANCHES = ("allOf", "anyOf", "oneOf")
_ANY_MEMBER = (
    "additionalProperties",
    "unevaluatedProperties",
    "items",
    "additionalItems",
    "unevaluatedItems",
    "contains",
)
_CONDITIONALS = ("if", "then", "else")


def _mark(node: dict[str, Any]) -> str | None:
    """The rule id of the sensitivity mark on a schema node, if any."""
    if node.get("sensitive") is True:
        return "schema.sensitive"
    if node.get("x-sensitive") is True:
        return "schema.x-sensitive"
    if node.get("writeOnly") is True:
        return "schema.writeOnly"
    if node.get("format") == "password":
        return "schema.format-password"
    return None


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any] | None:
    """A local reference (`#`, `#/$defs/X`, `#/definitions/X`, any `#/a/b` path)."""
    if not ref.startswith("#"):
        return None  # remote references are never fetched
    node: Any = root
    path = ref[1:]
    if path:
        for part in path.lstrip("/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
    return node if isinstance(node, dict) else None


def sensitive_paths(schema: Any) -> list[tuple[tuple[str, ...], str]]:
    """(path, rule id) for every sensitive location a schema declares; `*` in a path matches
    any member or index.

    Breadth-first, so the shallow fields of a recursive schema are found before the visit
    budget is spent on `a/a/a/...`."""
    found: list[tuple[tuple[str, ...], str]] = []
    if not isinstance(schema, dict):
        return found
    seen: set[tuple[int, tuple[str, ...]]] = set()
    queue: deque[tuple[Any, tuple[str, ...], int]] = deque([(schema, (), 0)])
    while queue and len(seen) < _MAX_VISITS:
        node, path, depth = queue.popleft()
        if not isinstance(node, dict) or depth > _MAX_DEPTH:
            continue
        marker = (id(node), path)
        if marker in seen:  # the same subschema reached twice at the same place
            continue
        seen.add(marker)
        rule = _mark(node)
        if rule is not None:
            found.append((path, rule))
            continue
        queue.extend((sub, sub_path, depth + 1) for sub, sub_path in _children(schema, node, path))
    return found


def _children(
    root: dict[str, Any], node: dict[str, Any], path: tuple[str, ...]
) -> list[tuple[Any, tuple[str, ...]]]:
    """Subschemas of `node` and the data path each one describes."""
    out: list[tuple[Any, tuple[str, ...]]] = []
    ref = node.get("$ref")
    if isinstance(ref, str):
        out.append((_resolve(root, ref), path))
    props = node.get("properties")
    if isinstance(props, dict):
        out.extend((sub, (*path, name)) for name, sub in props.items() if isinstance(name, str))
    for key in _ANY_MEMBER:
        sub = node.get(key)
        if isinstance(sub, dict):
            out.append((sub, (*path, ANY)))
    pattern_props = node.get("patternProperties")
    if isinstance(pattern_props, dict):
        out.extend((sub, (*path, ANY)) for sub in pattern_props.values())
    for key in ("prefixItems", "items"):  # `items` as a list is the draft-04..07 tuple form
        subs = node.get(key)
        if isinstance(subs, list):
            out.extend((sub, (*path, str(i))) for i, sub in enumerate(subs))
    for key in (*_BRANCHES, *_CONDITIONALS):
        subs = node.get(key)
        out.extend((sub, path) for sub in (subs if isinstance(subs, list) else [subs]))
    return out
