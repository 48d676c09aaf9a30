"""`response_summary`: a short, redacted account of a result, by method and verbosity.

- `summary` (default): what came back and how big, not the payload. For tool results: isError,
  block counts by type, the first N characters of the (redacted) text, sizes and keyed digests
  of the rest, attachments as size + mimeType + digest, structuredContent redacted and bounded.
  For list methods: count and names. For anything else: the redacted result, bounded.
- `full`: the whole result, redacted (blobs still become size + digest).
- `digest`: only sizes, counts and a keyed digest of the canonical result.

Pointers recorded in the manifest are rooted at `/response_summary`. Redactions inside the text
content are recorded at `/response_summary/text` even when they lie beyond the stored prefix:
the manifest says what the response contained, not only what the prefix shows.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from typing import Any

from mcp_notary.redact.pointer import Nodes, descend, join
from mcp_notary.redact.tokens import MARKER_OPEN
from mcp_notary.redact.walker import PLAIN, Mode, Scrubber, canonical, cut, limited, looks_json

ROOT = "/response_summary"
MAX_ITEMS = 20  # array items kept in bounded forms
MAX_DEPTH = 6
MAX_NAMES = 100
_OTHER_CONTENT = frozenset(("sampling/createMessage", "elicitation/create"))

# Enumerations the protocol defines. A server may put anything in these members, and they are
# stored unscanned, so any other value is stored as "other".
BLOCK_TYPES = frozenset(("text", "image", "audio", "resource", "resource_link"))
ROLES = frozenset(("user", "assistant", "system"))
RESULT_TYPES = frozenset(("complete", "input_required", "task"))
ACTIONS = frozenset(("accept", "decline", "cancel"))


def _known(value: Any, allowed: frozenset[str]) -> str:
    return value if isinstance(value, str) and value in allowed else "other"


LIST_MEMBERS = {
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
    "roots/list": "roots",
    "tasks/list": "tasks",
}


@lru_cache(maxsize=64)
def bounded(chars: int) -> Mode:
    """Strings cut at `chars`, arrays at MAX_ITEMS, nesting at MAX_DEPTH."""
    return Mode(limit=chars, max_items=MAX_ITEMS, max_depth=MAX_DEPTH)


def summarize(
    scrub: Scrubber,
    method: str | None,
    result: Any,
    *,
    verbosity: str,
    chars: int,
    nodes: Nodes,
    extra_nodes: Nodes = (),
    requested: Any = None,
) -> Any:
    """The response summary of `result`. `nodes` are the field rules at `/result`;
    `requested` is an elicitation's requestedSchema."""
    if result is None:
        return None
    all_nodes = nodes + extra_nodes
    if verbosity == "digest":
        return _digest(scrub, result)
    # Tool results (and tasks/result, which returns one) carry content blocks; sampling and
    # elicitation results also have a `content` member, of another shape.
    is_content = isinstance(result, dict) and "content" in result and method not in _OTHER_CONTENT
    if verbosity == "full":
        json_nodes = descend(all_nodes, "structuredContent") if is_content else None
        return scrub.value(result, ROOT, all_nodes, Mode(json_nodes=json_nodes))
    if not isinstance(result, dict):
        return scrub.value(result, ROOT, all_nodes, bounded(chars))
    if method in LIST_MEMBERS:
        return _listing(scrub, result, LIST_MEMBERS[method])
    if is_content:
        return _tool_result(scrub, result, chars, all_nodes)
    if method == "prompts/get":
        return _prompt(scrub, result, chars)
    if method == "resources/read":
        return _resource(scrub, result, chars)
    if method == "sampling/createMessage":
        return _sampling(scrub, result, chars)
    if method == "elicitation/create":
        return _elicitation(scrub, result, chars, all_nodes, requested)
    return scrub.value(result, ROOT, all_nodes, bounded(chars))


def _digest(scrub: Scrubber, result: Any) -> dict[str, Any]:
    data = canonical(result).encode("utf-8", "surrogatepass")
    out: dict[str, Any] = {"bytes": len(data), "digest": scrub.digest(data)}
    if isinstance(result, dict):
        if isinstance(result.get("isError"), bool):
            out["is_error"] = result["isError"]
        blocks = _as_blocks(result.get("content"))
        if blocks:
            out["content"] = {"count": len(blocks), "types": dict(_types(blocks))}
    return out


def _as_blocks(content: Any) -> list[Any]:
    if isinstance(content, list):
        return content
    return [content] if isinstance(content, dict) else []


def _types(blocks: list[Any]) -> Counter[str]:
    return Counter(
        _known(b.get("type"), BLOCK_TYPES) if isinstance(b, dict) else "other" for b in blocks
    )


def _plain(
    scrub: Scrubber, out: dict[str, Any], name: str, value: Any, pointer: str, chars: int = 200
) -> None:
    """Set `out[name]` to a short metadata string (mimeType, role, model), redacted at the next
    flush like any other string; non-strings other than scalars are left out."""
    if isinstance(value, str):
        scrub.later(out, name, value, pointer, mode=limited(chars))
    elif isinstance(value, (int, float, bool)) or value is None:
        out[name] = value


def _blocks(
    scrub: Scrubber,
    out: dict[str, Any],
    blocks: list[Any],
    chars: int,
    json_nodes: Nodes,
    skip: set[int] | None = None,
) -> None:
    """Add to `out` counts, a text prefix and attachment descriptors for content blocks (or
    resource contents, which have `text`/`blob` but no `type`). Text blocks in `skip` (JSON
    copies of structuredContent) count towards sizes and the digest but are not shown."""
    out["content"] = {"count": len(blocks), "types": dict(_types(blocks))}
    texts: list[str] = []
    shown: list[str] = []  # redacted in place at the flush
    attachments: list[dict[str, Any]] = []
    resources: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    text_mode = Mode(json_nodes=json_nodes) if json_nodes else PLAIN
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        text = block.get("text")
        if isinstance(text, str) and (kind == "text" or kind is None):
            texts.append(text)
            if skip is None or i not in skip:
                shown.append(text)
                scrub.later(shown, len(shown) - 1, text, f"{ROOT}/text", (), text_mode)
        elif kind in ("image", "audio") or (kind is None and isinstance(block.get("blob"), str)):
            data = block.get("data", block.get("blob"))
            entry: dict[str, Any] = {"index": i, "type": kind or "blob"}
            if isinstance(data, str):
                entry["bytes"], entry["digest"] = scrub.blob(data)
                scrub.record(f"{ROOT}/attachments/{len(attachments)}", "blob", "blob.base64")
            _plain(scrub, entry, "mimeType", block.get("mimeType"), f"{ROOT}/attachments")
            attachments.append(entry)
        elif kind == "resource" and isinstance(block.get("resource"), dict):
            resources.append(_embedded(scrub, i, block["resource"], len(resources)))
        elif kind == "resource_link":
            link: dict[str, Any] = {"index": i}
            pointer = f"{ROOT}/links/{len(links)}"
            _plain(scrub, link, "uri", block.get("uri"), f"{pointer}/uri", 1000)
            _plain(scrub, link, "name", block.get("name"), f"{pointer}/name")
            links.append(link)
    if texts:
        if shown:
            out["text"] = ""  # filled after the flush, when the texts are redacted
            scrub.likely(cut("\n".join(shown), chars))  # what it will be if nothing is found
        out["text_chars"] = sum(len(t) for t in texts) + len(texts) - 1

        def finish() -> None:
            joined = "\n".join(shown)
            prefix = cut(joined, chars)
            if shown:
                if len(prefix) < len(joined):
                    out["truncated"] = True
                scrub.final(out, "text", prefix, f"{ROOT}/text")
            if not shown or len(prefix) < len(joined) or len(shown) < len(texts):
                whole = "\n".join(texts).encode("utf-8", "surrogatepass")
                out["text_digest"] = scrub.digest(whole)  # of all of it, unredacted

        scrub.after_flush(finish)
    for name, items in (("attachments", attachments), ("resources", resources), ("links", links)):
        if items:
            out[name] = items[:MAX_ITEMS]


def _embedded(scrub: Scrubber, index: int, res: dict[str, Any], n: int) -> dict[str, Any]:
    pointer = f"{ROOT}/resources/{n}"
    entry: dict[str, Any] = {"index": index}
    _plain(scrub, entry, "uri", res.get("uri"), f"{pointer}/uri", 1000)
    _plain(scrub, entry, "mimeType", res.get("mimeType"), f"{pointer}/mimeType")
    if isinstance(res.get("text"), str):
        data = res["text"].encode("utf-8", "surrogatepass")
        entry["chars"], entry["digest"] = len(res["text"]), scrub.digest(data)
    elif isinstance(res.get("blob"), str):
        entry["bytes"], entry["digest"] = scrub.blob(res["blob"])
        scrub.record(pointer, "blob", "blob.base64")
    return entry


def _copies(result: dict[str, Any], blocks: list[Any]) -> set[int]:
    """Indices of text blocks that are the JSON copy of structuredContent (tools SHOULD send
    one). The summary shows structuredContent once, redacted, instead of twice."""
    structured = result["structuredContent"]
    copies: set[int] = set()
    for i, block in enumerate(blocks):
        text = block.get("text") if isinstance(block, dict) else None
        if not isinstance(text, str) or not looks_json(text):
            continue
        try:
            if json.loads(text) == structured:
                copies.add(i)
        except (ValueError, RecursionError):
            continue
    return copies


def _tool_result(scrub: Scrubber, result: dict[str, Any], chars: int, nodes: Nodes) -> Any:
    structured_nodes = descend(nodes, "structuredContent")
    out: dict[str, Any] = {"is_error": result.get("isError") is True}
    if isinstance(result.get("resultType"), str):
        out["result_type"] = _known(result["resultType"], RESULT_TYPES)
    blocks = _as_blocks(result.get("content"))
    copies = _copies(result, blocks) if "structuredContent" in result else set()
    _blocks(scrub, out, blocks, chars, structured_nodes, copies)
    if copies:
        out["structured_copies"] = len(copies)
    if "structuredContent" in result:
        out["structuredContent"] = scrub.value(
            result["structuredContent"],
            f"{ROOT}/structuredContent",
            structured_nodes,
            bounded(chars),
        )
    for member, name in (("inputRequests", "input_requests"), ("task", "task")):
        if member in result:
            out[name] = scrub.value(
                result[member], f"{ROOT}/{name}", descend(nodes, member), bounded(chars)
            )
    return out


def _listing(scrub: Scrubber, result: dict[str, Any], member: str) -> dict[str, Any]:
    items = result.get(member)
    items = items if isinstance(items, list) else []
    names = [
        str(item.get("name") or item.get("uri") or item.get("taskId") or "")
        if isinstance(item, dict)
        else "?"
        for item in items[:MAX_NAMES]
    ]
    shown: list[str] = list(names)
    for n, name in enumerate(names):
        scrub.later(shown, n, name, f"{ROOT}/names", mode=limited(200))  # cut after the scan
    out: dict[str, Any] = {"count": len(items), "names": shown}
    if len(items) > MAX_NAMES:
        out["names_truncated"] = True
    if result.get("nextCursor"):
        out["next_cursor"] = True  # the cursor itself is opaque server state
    return out


def _prompt(scrub: Scrubber, result: dict[str, Any], chars: int) -> dict[str, Any]:
    messages = result.get("messages")
    messages = messages if isinstance(messages, list) else []
    roles = Counter(_known(m.get("role"), ROLES) for m in messages if isinstance(m, dict))
    blocks = [b for m in messages if isinstance(m, dict) for b in _as_blocks(m.get("content"))]
    out: dict[str, Any] = {"messages": len(messages), "roles": dict(roles)}
    _plain(scrub, out, "description", result.get("description"), f"{ROOT}/description", chars)
    _blocks(scrub, out, blocks, chars, ())
    return out


def _resource(scrub: Scrubber, result: dict[str, Any], chars: int) -> Any:
    contents = result.get("contents")
    contents = contents if isinstance(contents, list) else []
    out: dict[str, Any] = {}
    _blocks(scrub, out, contents, chars, ())
    out["content"].pop("types", None)  # resource contents carry no block type
    uris = [str(c.get("uri", "")) for c in contents[:MAX_ITEMS] if isinstance(c, dict)]
    for n, uri in enumerate(uris):
        scrub.later(uris, n, uri, f"{ROOT}/uris", mode=limited(1000))
    out["uris"] = uris
    return out


def _sampling(scrub: Scrubber, result: dict[str, Any], chars: int) -> Any:
    out: dict[str, Any] = {}
    for member, name in (("role", "role"), ("model", "model"), ("stopReason", "stop_reason")):
        if member in result:
            _plain(scrub, out, name, result[member], f"{ROOT}/{name}")
    _blocks(scrub, out, _as_blocks(result.get("content")), chars, ())
    return out


def _elicitation(
    scrub: Scrubber, result: dict[str, Any], chars: int, nodes: Nodes, requested: Any
) -> dict[str, Any]:
    """What the user answered a form with is their data, not audit metadata: each answer
    becomes a token (joinable, not readable), except yes/no answers and choices the form
    itself offered (`enum`), which are what an auditor needs to see consent."""
    out: dict[str, Any] = {}
    if isinstance(result.get("action"), str):
        out["action"] = _known(result["action"], ACTIONS)
    content = result.get("content")
    if not isinstance(content, dict):
        if content is not None:
            out["content"] = scrub.value(content, f"{ROOT}/content", nodes, bounded(chars))
        return out
    props = requested.get("properties") if isinstance(requested, dict) else None
    props = props if isinstance(props, dict) else {}
    flagged = scrub.value(content, f"{ROOT}/content", descend(nodes, "content"), bounded(chars))
    answers: dict[str, Any] = {}
    for name, value in flagged.items() if isinstance(flagged, dict) else ():
        raw = content.get(name)
        prop = props.get(name) if isinstance(name, str) else None
        offered = prop.get("enum") if isinstance(prop, dict) else None
        if (
            raw is None
            or isinstance(raw, bool)
            or (isinstance(offered, list) and raw in offered)
            or (isinstance(value, str) and value.startswith(MARKER_OPEN))
        ):
            answers[name] = value
        else:
            pointer = join(f"{ROOT}/content", name)
            answers[name] = scrub.token(raw, "user_input", "elicitation.answer", pointer)
    out["content"] = answers
    return out
