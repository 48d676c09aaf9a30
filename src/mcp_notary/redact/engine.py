"""The regular-expression engine the detectors run on.

All rules are scanned as ONE alternation in one pass. Python's backtracking `re` tries every
branch at every position: ~670 us for 1 KB of prose with 20 rules. RE2 (`google-re2`, a DFA)
does the same pass in ~3 us, so it is used when importable; the stdlib `re` is a fallback that
gives the same answers, only slower. The rules are written in the common subset of both
dialects (no look-around, no back-references, no end anchors) and without nested ambiguous
repetition, so the fallback cannot backtrack catastrophically. `MCP_NOTARY_REGEX_ENGINE=re`
forces the fallback.

Patterns and texts are bytes (text as UTF-8), matched byte by byte in both engines: RE2 works
on bytes internally, and handing it bytes skips the wrapper's per-call str<->bytes offset
translation. Rules that must accept non-ASCII letters (e-mail addresses) say `\x80-\xff`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any


def _load_re2() -> Any:
    if os.environ.get("MCP_NOTARY_REGEX_ENGINE", "").lower() == "re":
        return None  # forced fallback, used by the tests to check both engines agree
    try:
        import re2  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    return re2


_RE2 = _load_re2()

ENGINE: str = "re2" if _RE2 is not None else "re"
"""Which engine compiled patterns use: "re2" or "re" (stdlib fallback)."""


Span = tuple[int, int]
Found = tuple[int, Span, "Span | None", "Span | None"]
"""(rule index, whole match, secret group, key group) of one match."""

_SECRET_NAMES = ("s", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9")
_NAMED = re.compile(r"\(\?P<([A-Za-z0-9_]+)>")


def _names(index: Any) -> dict[str, int]:
    # RE2 names the groups of a bytes pattern in bytes.
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in index.items()}


def _pick(
    spans: Sequence[Span], secret: tuple[int, ...], key: int | None
) -> tuple[Span | None, Span | None]:
    found = next((spans[g] for g in secret if spans[g][0] >= 0), None)
    return found, (spans[key] if key is not None and spans[key][0] >= 0 else None)


class RuleMatcher:
    """Finds, from a position on, the leftmost position where any rule matches, with every
    rule that matches there and its `s*` (secret) and `k` (key) groups. Rules are regex
    sources in priority order."""

    _singles: list[Any]
    _single_groups: list[tuple[tuple[int, ...], int | None]]

    def __init__(self, patterns: Sequence[str], engine: str | None = None) -> None:
        self.engine = engine or ENGINE
        self._n = len(patterns)
        if self.engine == "re2":
            self._init_re2(patterns)
        else:
            self._init_re(patterns)

    # stdlib: a group-free alternation finds where the next match is; each rule's own
    # pattern, tried there, says which rules match and gives their groups.
    def _init_re(self, patterns: Sequence[str]) -> None:
        plain = "|".join(_NAMED.sub("(?:", p) for p in patterns)
        self._combined = re.compile(plain.encode("ascii"))
        self._singles = [re.compile(p.encode("ascii")) for p in patterns]
        self._single_groups = [
            (
                tuple(s.groupindex[n] for n in _SECRET_NAMES if n in s.groupindex),
                s.groupindex.get("k"),
            )
            for s in self._singles
        ]
        self._raw = False

    # RE2: a group-free alternation finds where the next match is (RE2 is twice as fast when
    # it need not report groups, and most scans find nothing); a RE2 Set says which rules can
    # match there; each rule's own small pattern then confirms the first one and gives its
    # groups. The combined grouped pattern would cost ~8 us per hit (150 groups).
    def _init_re2(self, patterns: Sequence[str]) -> None:
        assert _RE2 is not None
        options = _RE2.Options()
        options.max_mem = 64 << 20  # the default 8 MiB pushes RE2 to its slow NFA on big texts
        # Bytes as bytes (Latin-1), as Python's `re` reads a bytes pattern: both engines then
        # give the same answers on any input, UTF-8 or not.
        options.encoding = _RE2.Options.Encoding.LATIN1
        plain = "|".join(_NAMED.sub("(?:", p) for p in patterns)
        self._finder = _RE2.compile(plain.encode("ascii"), options)
        self._singles = [_RE2.compile(p.encode("ascii"), options) for p in patterns]
        self._single_groups = []
        for single in self._singles:
            own = _names(single.groupindex)
            self._single_groups.append(
                (tuple(own[n] for n in _SECRET_NAMES if n in own), own.get("k"))
            )
        self._set = _RE2.Set.MatchSet(options)
        for p in patterns:
            self._set.Add(p.encode("ascii"))
        self._set.Compile()
        # The wrapper's per-call cost (~1 us) is most of a short search; call the compiled
        # RE2 object underneath when this version of google-re2 exposes it.
        raw: Any = getattr(self._finder, "_regexp", None)
        anchor: Any = getattr(getattr(getattr(_RE2, "_re2", None), "RE2", None), "Anchor", None)
        self._raw = raw is not None and anchor is not None and hasattr(raw, "Match")
        if self._raw:
            self._unanchored = anchor.UNANCHORED
            self._anchor_start = anchor.ANCHOR_START
            self._finder_raw = raw
            self._singles_raw = [s._regexp for s in self._singles]

    def find(self, data: bytes, pos: int) -> list[Found]:
        """Every rule that matches at the leftmost position (from `pos`) where any rule
        matches, in priority order; [] when none does. All of them, not only the first: a
        rule listed earlier may match less there than a later one (`aws_secret_access_key=`
        takes 40 characters, the assignment rule the whole value), and redaction takes the
        union."""
        size = len(data)
        if self.engine != "re2":
            m = self._combined.search(data, pos)
            if m is None:
                return []
            begin, end = m.span()
            window = min(size, end + _WINDOW)
            candidates: Sequence[int] = [
                i for i, single in enumerate(self._singles) if single.match(data, begin, window)
            ]
        else:
            if self._raw:
                begin, end = self._finder_raw.Match(self._unanchored, data, pos, size)[0]
                if begin < 0:
                    return []
            else:
                found = self._finder.search(data, pos)
                if found is None:
                    return []
                begin, end = found.span()
            # Which rules can match at `begin` (the Set is anchored there), judged on the
            # match plus some right context: enough for a rule that matches more than the
            # leftmost-first winner, and for one ending in \b to see what follows.
            candidates = sorted(self._set.Match(data[begin : end + _WINDOW]) or ())
        out: list[Found] = []
        for i in candidates:
            spans = self._match_rule(i, data, begin, size)
            if spans is not None:
                secret, key = _pick(spans, *self._single_groups[i])
                out.append((i, spans[0], secret, key))
        if not out:  # the cut context misled the Set: ask every rule in order
            for i in range(self._n):
                spans = self._match_rule(i, data, begin, size)
                if spans is not None:
                    secret, key = _pick(spans, *self._single_groups[i])
                    out.append((i, spans[0], secret, key))
        if not out:
            raise AssertionError("no rule matches where the combined pattern did")
        return out

    def _match_rule(self, i: int, data: bytes, begin: int, size: int) -> Sequence[Span] | None:
        if self._raw:
            spans: Sequence[Span] = self._singles_raw[i].Match(
                self._anchor_start, data, begin, size
            )
            return spans if spans[0][0] >= 0 else None
        m = self._singles[i].match(data, begin)
        return None if m is None else m.regs


_WINDOW = 257
