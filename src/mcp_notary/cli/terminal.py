"""Stored text on an auditor's terminal.

Tool names, ids, arguments and results are chosen by whoever sent them. Printed as they are,
an ANSI or OSC 8 escape in a tool name clears, recolours or disguises rows, a bidirectional
override reorders them, and Rich markup (`[red]`, `[link=...]`) is interpreted by the table
it lands in. So every stored string a command prints passes through here first:

- `printable` writes control characters (C0, DEL, C1), format characters (bidi overrides,
  zero-width characters) and line/paragraph separators as visible escapes (`\\x1b`, `\\u202e`);
- `cell` makes it a Rich `Text`, which is never parsed for markup;
- `json_for_terminal` escapes the same characters inside JSON text, which stays valid JSON of
  the same value (RFC 8785 escapes C0 controls itself, but not C1 or bidi controls).
"""

from __future__ import annotations

import unicodedata

from rich.markup import escape
from rich.text import Text

__all__ = ["cell", "json_for_terminal", "markup_safe", "printable"]


_UNSAFE = frozenset(("Cc", "Cf", "Zl", "Zp"))


def _escape(ch: str) -> str:
    if unicodedata.category(ch) not in _UNSAFE:
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _json_escape(ch: str) -> str:
    if ch == "\n" or unicodedata.category(ch) not in _UNSAFE:
        return ch  # a raw newline in JSON text is layout: strings hold theirs escaped
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    high, low = divmod(code - 0x10000, 0x400)  # JSON spells astral characters as a pair
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"


def printable(text: str) -> str:
    """`text` with every control, format and separator character written as an escape."""
    # isprintable() is False for all of those (and for some harmless ones, such as a
    # no-break space, which the slow path keeps): most text takes the fast path.
    return text if text.isprintable() else "".join(map(_escape, text))


def markup_safe(text: str) -> str:
    """`printable(text)` for a Rich markup string: its brackets are text, not markup."""
    return escape(printable(text))


def cell(value: object, style: str = "") -> Text:
    """A table cell or a line that shows `value` literally."""
    return Text(printable("" if value is None else str(value)), style=style)


def json_for_terminal(text: str) -> str:
    """JSON text with the characters `printable` escapes spelled as `\\u` escapes: the same
    JSON value, safe to show on a terminal."""
    return text if text.isprintable() else "".join(map(_json_escape, text))
