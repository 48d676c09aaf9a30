"""Redact one event's JSON payloads: field rules, key names, blobs, then detectors.

A `Scrubber` lives for one `finalize` call. It copies payloads member by member; at each member
it applies, in order:
  1. a field rule for that path (schema-declared or operator: drop, sensitive, hash, allow);
  2. blobs: base64 `data`/`blob` of content blocks become size + keyed digest, always;
  3. key names: a value under `password`, `api_key`, `Authorization`, ... becomes a token;
  4. detectors on every other string (and on member names).
Strings whose text is JSON are parsed and walked the same way, so `"password"` inside a
tool's JSON text output is still a key. Plain strings are not scanned one by one: they are
queued and scanned together in `flush()` (see detectors.py for why).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from mcp_notary.events.model import SensitiveField
from mcp_notary.redact.detectors import Detectors, Redacted
from mcp_notary.redact.keynames import sensitive_key_kind
from mcp_notary.redact.pointer import Action, Nodes, action_of, join, step
from mcp_notary.redact.rules import MIN_DETECTABLE
from mcp_notary.redact.tokens import MARKER_OPEN, RedactionKey, marker

# Members whose values are JSON Schemas: `"password": {"type": "string"}` there describes a
# field, it is not one. Detectors still run inside them.
SCHEMA_MEMBERS = frozenset(("inputSchema", "outputSchema", "requestedSchema"))

_B64_TEXT = re.compile(r"[A-Za-z0-9+/=_\-\r\n]+")
_BLOB_TEXT_MIN = 1024  # shorter base64-looking strings are ids and hashes, scanned as text
_JSON_START = frozenset("{[ \t\r\n")
_PLAIN_MIN = MIN_DETECTABLE
_MAX_NESTING = 64  # deeper JSON is described, not copied (and cannot exhaust the stack)
_EMBEDDED_TRIES = 64  # places tried for JSON inside text (each failed try is a C-level parse)
_BIG_INT = 10**12  # integers this large may be card numbers: scanned as their digits
# Private members of a JSON Web Key (RFC 7518 section 6): the key itself.
_JWK_PRIVATE = frozenset(("d", "p", "q", "dp", "dq", "qi", "k", "oth", "priv"))
_JWK_TYPES = frozenset(("RSA", "EC", "OKP", "oct", "AKP"))
# `{"name": "DB_PASSWORD", "value": "..."}`: environment lists, HAR headers, form fields.
_NAME_MEMBERS = ("name", "key", "Name", "Key")
_VALUE_MEMBERS = ("value", "Value")


@dataclass(frozen=True, slots=True)
class Mode:
    """How to copy a subtree."""

    keynames: bool = True  # redact values under secret-naming keys
    verbatim: bool = False  # operator `allow`: keep strings as they are (blobs still go)
    drop_meta: bool = True  # `_meta` is protocol metadata the event already extracted
    limit: int | None = None  # longest string kept (after redaction), else truncated
    max_items: int | None = None  # longest array kept
    max_depth: int | None = None  # deeper containers become a one-line description
    json_nodes: Nodes | None = None  # field rules for JSON found inside strings


PLAIN = Mode()
DETAILS = Mode(drop_meta=False, limit=1024)  # cut after redaction, never before


@lru_cache(maxsize=64)
def limited(limit: int | None) -> Mode:
    """Mode(limit=...), shared: Mode is frozen and slow to build, and limits are few."""
    return Mode(limit=limit)


def cut(text: str, limit: int) -> str:
    """`text` shortened to about `limit` characters, never inside a redaction marker."""
    if len(text) <= limit:
        return text
    end = limit
    opened = text.rfind(MARKER_OPEN, 0, end)
    if opened != -1:
        closed = text.find("]", opened)
        if closed >= end:
            end = closed + 1
    return text[:end]


def truncated(text: str, limit: int) -> str:
    """`cut`, with a note of how much was left out."""
    short = cut(text, limit)
    return short if len(short) == len(text) else f"{short}…[+{len(text) - len(short)} chars]"


def canonical(value: Any) -> str:
    """Sorted, compact JSON: the text a non-string value is tokenised or digested as."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _worth_hiding(value: Any) -> bool:
    """Booleans, null and empty values carry nothing a token would hide."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (str, list, dict)):
        return len(value) > 0 and not (isinstance(value, str) and value.startswith(MARKER_OPEN))
    return True


def _blob_member(obj: dict[str, Any]) -> str | None:
    """The member of a content block or resource that holds base64 bytes."""
    if obj.get("type") in ("image", "audio") and isinstance(obj.get("data"), str):
        return "data"
    if isinstance(obj.get("blob"), str) and ("uri" in obj or "mimeType" in obj):
        return "blob"
    return None


def _pair_name(item: str) -> str | None:
    """The kind of secret the NEXT item of an array holds when this one names it: a pair
    spelled as an array (`["password", "x"]`) or a flag in an argument vector (`--token x`)."""
    if len(item) > 256 or " " in item:  # a sentence, not a name
        return None
    name = item.lstrip("-")
    return None if "=" in name else sensitive_key_kind(name)


def _next_open(text: str, start: int) -> int:
    """Where the next JSON object or array might begin in `text`, or -1."""
    brace, bracket = text.find("{", start), text.find("[", start)
    return brace if bracket < 0 else bracket if brace < 0 else min(brace, bracket)


def looks_json(text: str) -> bool:
    head = text[:1]
    if head not in ("{", "[") and not head.isspace():
        return False
    stripped = text.strip()
    return len(stripped) >= 2 and stripped[0] + stripped[-1] in ("{}", "[]")


_FIELDS: dict[tuple[str, str, str, str], SensitiveField] = {}


def _field(entry: tuple[str, str, str, str]) -> SensitiveField:
    """SensitiveField is frozen (slow to build) and the same few recur in every event of a
    tool, so they are shared. Safe: they are immutable and hold no value."""
    found = _FIELDS.get(entry)
    if found is None:
        if len(_FIELDS) >= 16384:
            _FIELDS.clear()
        found = _FIELDS[entry] = SensitiveField(*entry)
    return found


class Scrubber:
    def __init__(
        self,
        detectors: Detectors,
        key: RedactionKey,
        memo: dict[str, Redacted | None] | None = None,
    ) -> None:
        self.detectors = detectors
        self.key = key
        self._fields: dict[tuple[str, str, str, str], None] = {}  # ordered, deduplicated
        self._pending: list[tuple[Any, Any, str, str, Mode]] = []
        # Texts likely to be stored as they are cut (a prefix of a text that will turn out
        # clean): scanned in the same pass as the rest, so the rescan of the cut is usually
        # a look-up rather than a second pass.
        self._likely: list[str] = []
        self._after: list[Callable[[], None]] = []
        # Detector results by text, for this event only: structuredContent and its JSON-text
        # copy hold the same strings, and are scanned once. (It holds raw text, so it must not
        # outlive the event: never share a Scrubber across events.)
        self._memo: dict[str, Redacted | None] = {} if memo is None else memo

    def child(self) -> Scrubber:
        """A scrubber for a sub-document, with its own manifest but this event's memo."""
        return Scrubber(self.detectors, self.key, self._memo)

    # -- manifest ------------------------------------------------------------------------------

    def record(self, pointer: str, kind: str, rule: str, version: str = "1") -> None:
        self._fields[(pointer, kind, rule, version)] = None

    def _too_deep(self, placeholder: str, pointer: str, mode: Mode) -> str:
        """What stands for a container past a depth limit. The hard limit fails closed and
        says so in the manifest; a summary's own shallower limit is its documented shape."""
        if mode.max_depth is None:
            self.record(pointer, "depth_limit", "limit.depth")
        return placeholder

    def number(self, value: int, pointer: str) -> Any:
        """An integer as stored: a large one whose digits a detector matches (a card number
        sent as a JSON number) becomes a marker like the same digits in a string."""
        if -_BIG_INT < value < _BIG_INT:
            return value
        found = self.detectors.redact(str(value), self.key)
        if not found.hits:
            return value
        for hit in found.hits:
            self.record(pointer, hit.kind, hit.rule.id, hit.rule.version)
        return found.text

    @property
    def fields(self) -> tuple[SensitiveField, ...]:
        return tuple(_field(entry) for entry in self._fields)

    # -- replacements --------------------------------------------------------------------------

    def token(self, value: Any, kind: str, rule: str, pointer: str) -> str:
        """A marker standing for `value` (strings by their text, anything else canonically)."""
        self.record(pointer, kind, rule)
        text = value if isinstance(value, str) else canonical(value)
        return marker(kind, self.key.token(text))

    def digest(self, data: bytes) -> str:
        return self.key.digest(data)

    def blob(self, text: str) -> tuple[int, str]:
        """Decoded size and keyed digest of base64 `text` (of the text itself if not base64)."""
        try:
            raw = base64.b64decode(text, validate=False)
        except (binascii.Error, ValueError):
            raw = text.encode("utf-8", "surrogatepass")
        return len(raw), self.key.digest(raw)

    # -- walking -------------------------------------------------------------------------------

    def value(self, value: Any, pointer: str, nodes: Nodes = (), mode: Mode = Mode()) -> Any:
        """A redacted copy of a JSON value. Strings inside containers are queued: call
        `flush()` before reading them."""
        return self._value(value, pointer, nodes, mode, 0)

    def _value(self, value: Any, pointer: str, nodes: Nodes, mode: Mode, depth: int) -> Any:
        limit = _MAX_NESTING if mode.max_depth is None else mode.max_depth
        if isinstance(value, dict):
            if depth >= limit:
                return self._too_deep(f"[object with {len(value)} members]", pointer, mode)
            return self._object(value, pointer, nodes, mode, depth)
        if isinstance(value, (list, tuple)):
            if depth >= limit:
                return self._too_deep(f"[array of {len(value)} items]", pointer, mode)
            return self._array(list(value), pointer, nodes, mode, depth)
        if isinstance(value, str):
            holder = [value]
            self._queue(holder, 0, value, pointer, nodes, mode)
            self.flush()
            return holder[0]
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return self.number(value, pointer)
        if value is None or isinstance(value, (bool, float)):
            return value
        # Not JSON (bytes, objects a caller put in `details`): store its text, scanned.
        return self._value(str(value), pointer, nodes, mode, depth)

    def _member(
        self,
        out: Any,
        slot: Any,
        name: str,
        child: Any,
        pointer: str,
        nodes: Nodes,
        mode: Mode,
        depth: int,
    ) -> None:
        """Copy one member (or array item) into `out[slot]`, or leave it out."""
        if nodes:
            act = action_of(nodes)
            if act is not None:
                if act.op != "allow":
                    self._apply(out, slot, child, pointer, act)
                    return
                mode = replace(mode, verbatim=True)
        if name and mode.keynames and not mode.verbatim:
            kind = sensitive_key_kind(name)
            if kind is not None and _worth_hiding(child):
                out[slot] = self.token(child, kind, f"key.{kind}", pointer)
                return
        cls = child.__class__
        if cls is str:
            out[slot] = child
            if not mode.verbatim:
                self._queue(out, slot, child, pointer, nodes, mode)
            elif mode.limit is not None:
                out[slot] = truncated(child, mode.limit)
        elif cls is int:
            out[slot] = self.number(child, pointer)
        elif cls is bool or child is None or (cls is float and math.isfinite(child)):
            out[slot] = child
        else:
            if name in SCHEMA_MEMBERS:
                mode = replace(mode, keynames=False)
            out[slot] = self._value(child, pointer, nodes, mode, depth + 1)

    def _apply(self, out: Any, slot: Any, child: Any, pointer: str, act: Action) -> None:
        if act.op == "drop":
            self.record(pointer, "dropped", act.rule)
            if isinstance(out, list):
                out[slot] = None  # keep indices stable
            return
        kind = "hash" if act.op == "hash" else act.kind
        out[slot] = self.token(child, kind, act.rule, pointer)

    def _object(
        self, obj: dict[str, Any], pointer: str, nodes: Nodes, mode: Mode, depth: int
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        blob_member = _blob_member(obj) if ("data" in obj or "blob" in obj) else None
        clean = self.detectors.clean_names
        verbatim, drop_meta = mode.verbatim, mode.drop_meta
        # The common case (no field rules here, not `allow`ed, key names checked) is inlined:
        # this loop runs for every member of every payload.
        fast = not nodes and not verbatim and mode.keynames
        pending, memo, limit = self._pending, self._memo, mode.limit
        hidden = (
            self._hidden_members(obj)
            if mode.keynames and not verbatim and ("kty" in obj or "value" in obj or "Value" in obj)
            else None
        )
        for raw_name, child in obj.items():
            name = raw_name if raw_name.__class__ is str else str(raw_name)
            if drop_meta and name == "_meta":
                continue
            if verbatim or len(name) < MIN_DETECTABLE or name in clean:
                shown = name
            else:
                shown = self._name(name, pointer)
            if "/" in shown or "~" in shown:
                child_ptr = join(pointer, shown)
            else:
                child_ptr = pointer + "/" + shown
            if name == blob_member:
                size, digest = self.blob(child)
                self.record(child_ptr, "blob", "blob.base64")
                out["bytes"], out["digest"] = size, digest
                continue
            if hidden is not None and name in hidden and _worth_hiding(child):
                out[shown] = self.token(child, *hidden[name], child_ptr)
                continue
            if not fast:
                child_nodes = step(nodes, name) if nodes else nodes
                self._member(out, shown, name, child, child_ptr, child_nodes, mode, depth)
                continue
            kind = sensitive_key_kind(name)
            if kind is not None and _worth_hiding(child):
                out[shown] = self.token(child, kind, f"key.{kind}", child_ptr)
                continue
            cls = child.__class__
            if cls is str:
                out[shown] = child
                n = len(child)
                if n < _PLAIN_MIN:  # too short for any rule
                    if limit is not None and n > limit:
                        out[shown] = truncated(child, limit)
                elif (
                    n < _BLOB_TEXT_MIN
                    and child[0] not in _JSON_START
                    and ('"' not in child or ("{" not in child and "[" not in child))
                    and (limit is None or n <= limit)
                    and child not in memo
                ):
                    pending.append((out, shown, child, child_ptr, mode))
                else:
                    self._queue(out, shown, child, child_ptr, nodes, mode)
            elif cls is dict or cls is list:
                sub = replace(mode, keynames=False) if name in SCHEMA_MEMBERS else mode
                out[shown] = self._value(child, child_ptr, nodes, sub, depth + 1)
            elif cls is int:
                out[shown] = (
                    child if -_BIG_INT < child < _BIG_INT else self.number(child, child_ptr)
                )
            elif cls is bool or child is None or (cls is float and math.isfinite(child)):
                out[shown] = child
            else:  # str/dict/list subclasses, tuples, NaN, non-JSON values: the general path
                self._member(out, shown, name, child, child_ptr, nodes, mode, depth)
        return out

    def _array(
        self, arr: list[Any], pointer: str, nodes: Nodes, mode: Mode, depth: int
    ) -> list[Any]:
        keep = arr if mode.max_items is None else arr[: mode.max_items]
        out: list[Any] = list(keep)  # scalars stay as they are; the rest is replaced below
        fast = not nodes and not mode.verbatim
        pairs = mode.keynames and not mode.verbatim
        two = len(keep) == 2
        value_of: str | None = None  # the kind, when the previous item named a secret
        for i, child in enumerate(keep):
            cls = child.__class__
            if value_of is not None:
                kind, value_of = value_of, None
                if _worth_hiding(child):
                    out[i] = self.token(child, kind, f"key.{kind}", f"{pointer}/{i}")
                    continue
            if pairs and cls is str and child and (two or child[0] == "-"):
                value_of = _pair_name(child)
            if fast and (
                (cls is int and -_BIG_INT < child < _BIG_INT)
                or cls is bool
                or child is None
                or (cls is float and math.isfinite(child))
            ):
                continue  # a number, bool or null
            child_ptr = f"{pointer}/{i}"
            if fast and cls is str:
                self._queue(out, i, child, child_ptr, nodes, mode)
            elif fast and cls is int:
                out[i] = self.number(child, child_ptr)
            elif fast and (cls is dict or cls is list):
                out[i] = self._value(child, child_ptr, nodes, mode, depth + 1)
            else:
                child_nodes = step(nodes, str(i)) if nodes else nodes
                self._member(out, i, "", child, child_ptr, child_nodes, mode, depth)
        if len(keep) < len(arr):
            out.append(f"[+{len(arr) - len(keep)} more items]")
        return out

    @staticmethod
    def _hidden_members(obj: dict[str, Any]) -> dict[str, tuple[str, str]] | None:
        """Members whose name is neutral but whose object says they are secret: a JSON Web
        Key's private members (judged by its `kty`), and the `value` of a `{"name": ...,
        "value": ...}` pair whose name names a secret."""
        found: dict[str, tuple[str, str]] | None = None
        kty = obj.get("kty")
        if kty.__class__ is str and kty in _JWK_TYPES:
            found = {m: ("private_key", "key.jwk_private") for m in _JWK_PRIVATE if m in obj}
        for label in _NAME_MEMBERS:
            named = obj.get(label)
            if named.__class__ is str:
                kind = sensitive_key_kind(named)
                if kind is not None:
                    found = found or {}
                    for member in _VALUE_MEMBERS:
                        if member in obj:
                            found[member] = (kind, f"key.{kind}")
                break
        return found or None

    def _name(self, name: str, pointer: str) -> str:
        """A member name, redacted if it is itself a secret (an e-mail used as a map key)."""
        result = self.detectors.redact_name(name, self.key)
        if result.hits:
            for hit in result.hits:
                self.record(join(pointer, result.text), hit.kind, hit.rule.id, hit.rule.version)
        return result.text

    def name(self, text: str, pointer: str) -> str:
        """A name (tool, method) as stored: scanned now, clean ones remembered across events."""
        if text in self.detectors.clean_names:
            return text
        result = self.detectors.redact_name(text, self.key)
        for hit in result.hits:
            self.record(pointer, hit.kind, hit.rule.id, hit.rule.version)
        return result.text

    # -- strings -------------------------------------------------------------------------------

    def later(
        self, out: Any, slot: Any, text: str, pointer: str, nodes: Nodes = (), mode: Mode = Mode()
    ) -> None:
        """Redact `text` into `out[slot]` at the next `flush()` (batched with the rest)."""
        out[slot] = text
        self._queue(out, slot, text, pointer, nodes, mode)

    def _queue(
        self, out: Any, slot: Any, text: str, pointer: str, nodes: Nodes, mode: Mode
    ) -> None:
        if text in self._memo:
            self._settle(out, slot, text, self._memo[text], pointer, mode)
            return
        if len(text) < MIN_DETECTABLE:
            if mode.limit is not None:
                out[slot] = truncated(text, mode.limit)
            return
        if len(text) >= _BLOB_TEXT_MIN and _B64_TEXT.fullmatch(text):
            out[slot] = self.token(text, "blob", "blob.base64_text", pointer)
            return
        if looks_json(text):
            json_nodes = nodes if mode.json_nodes is None else mode.json_nodes
            text = self._json_text(text, pointer, json_nodes, mode)
            out[slot] = text
        elif '"' in text and ("{" in text or "[" in text):
            text = self._embedded_json(text, pointer, mode)
            out[slot] = text
        # Whatever the JSON walk made of it, the text to be stored is scanned as text too:
        # the stored text is exactly a text the detectors scanned.
        self._pending.append((out, slot, text, pointer, mode))
        if mode.limit is not None and len(text) > mode.limit:
            self.likely(truncated(text, mode.limit))

    def likely(self, text: str) -> None:
        """Scan `text` with the next batch, for a `final` (or a cut) that may ask for it."""
        if text not in self._memo:
            self._likely.append(text)

    def _json_text(self, text: str, pointer: str, nodes: Nodes, mode: Mode) -> str:
        """JSON text redacted as JSON (key names, field rules, nested JSON), re-serialised if
        anything in it changed; `text` itself if it is not JSON or nothing changed. Repeated
        keys (a parser keeps the last, the walk would see only it) and depth limits change
        it: the text is then rebuilt from what was walked, never passed through."""
        repeated: list[None] = []

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            obj = dict(items)
            if len(obj) < len(items):
                repeated.append(None)
            return obj

        try:
            doc = json.loads(text, object_pairs_hook=pairs)
        except RecursionError:  # too deep even to parse: nothing of it is stored
            return self.token(text, "depth_limit", "limit.depth", pointer)
        except ValueError:
            return text
        inner = self.child()
        # Unbounded, and `_meta` kept: what the walk leaves out of the rebuilt text must not
        # be what decides that the original text is stored.
        inner_mode = Mode(keynames=mode.keynames, drop_meta=False)
        redacted = inner._value(doc, "", nodes, inner_mode, 0)
        inner.flush()
        if repeated:
            inner.record("", "dropped", "json.duplicate_key")
        if not inner._fields:
            return text
        for _ptr, kind, rule, version in inner._fields:
            self.record(pointer, kind, rule, version)  # the text is one string: point at it
        return json.dumps(redacted, ensure_ascii=False, indent=2 if "\n" in text else None)

    def _embedded_json(self, text: str, pointer: str, mode: Mode) -> str:
        """Text with JSON inside it (`Echo: {"kty": "RSA", "d": ...}`, a log line with a JSON
        payload): each JSON object or array in it is redacted as JSON, like whole JSON text,
        so key names and shapes apply there too. At most `_EMBEDDED_TRIES` places are tried."""
        decoder = json.JSONDecoder()
        pieces: list[str] = []
        pos = 0
        at = _next_open(text, 0)
        for _ in range(_EMBEDDED_TRIES):
            if at < 0:
                break
            try:
                doc, end = decoder.raw_decode(text, at)
            except (ValueError, RecursionError):
                at = _next_open(text, at + 1)
                continue
            if isinstance(doc, (dict, list)) and doc:
                fragment = text[at:end]
                redone = self._json_text(fragment, pointer, (), mode)
                if redone is not fragment:
                    pieces += (text[pos:at], redone)
                    pos = end
            at = _next_open(text, end)
        if not pieces:
            return text
        pieces.append(text[pos:])
        return "".join(pieces)

    def final(self, out: Any, slot: Any, text: str, pointer: str) -> None:
        """Store `text`, a text assembled from redacted pieces (joined, cut), at `out[slot]`
        once the detectors have scanned it as it is, at the next round of `flush()`."""
        out[slot] = text
        if text not in self._memo or self._memo[text] is not None:
            self._pending.append((out, slot, text, pointer, PLAIN))

    def after_flush(self, step: Callable[[], None]) -> None:
        """Run `step` once the queued strings are redacted (to assemble what needs them)."""
        self._after.append(step)

    def flush(self) -> None:
        """Run the detectors over every queued string and write the results in place, then
        the `after_flush` steps."""
        self._scan_pending()
        while self._after or self._pending:  # cut and assembled texts are scanned again
            steps, self._after = self._after, []
            for run in steps:
                run()
            self._scan_pending()

    def _scan_pending(self) -> None:
        if not self._pending:
            return  # `likely` texts alone are not worth a pass
        pending, self._pending = self._pending, []
        likely, self._likely = self._likely, []
        texts = list(dict.fromkeys([*(p[2] for p in pending), *likely]))  # each distinct once
        results = self.detectors.redact_many(texts, self.key)
        memo = self._memo
        for i, text in enumerate(texts):
            found = results.get(i)
            memo[text] = found
            if found is not None:
                memo.setdefault(found.text, None)  # a redacted text is a fixed point
        for out, slot, text, pointer, mode in pending:
            found = memo[text]
            if found is not None or (mode.limit is not None and len(text) > mode.limit):
                self._settle(out, slot, text, found, pointer, mode)

    def _settle(
        self, out: Any, slot: Any, text: str, found: Redacted | None, pointer: str, mode: Mode
    ) -> None:
        """Write the redacted `text` into `out[slot]` and record what was redacted."""
        new = text
        if found is not None:
            new = found.text
            for hit in found.hits:
                self.record(pointer, hit.kind, hit.rule.id, hit.rule.version)
        if mode.limit is not None:
            short = truncated(new, mode.limit)
            if len(short) != len(new):
                # A prefix is a new text: a rule may match it that did not match the whole
                # (`\b` now at its end), so it is scanned as it will be stored, in the next
                # round of the flush with the other cuts.
                self.final(out, slot, short, pointer)
                return
            new = short
        if new is not text:
            out[slot] = new
