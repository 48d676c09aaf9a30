"""Stored text on a terminal: escapes visible, markup never interpreted."""

from __future__ import annotations

import json
from io import StringIO

from rich.console import Console
from rich.table import Table

from mcp_notary.cli.terminal import cell, json_for_terminal, markup_safe, printable

HOSTILE = "a\x1b[2Jb\x07c\x9bd\u202ee\u200bf\u2028g\U000e0041[red]x[/red][link=http://e]y[/link]"


def rendered(renderable: object) -> str:
    out = StringIO()
    console = Console(file=out, force_terminal=True, width=200, highlight=False)
    console.print(renderable)
    return out.getvalue()


def test_printable_escapes_every_control_format_and_separator_character() -> None:
    text = printable(HOSTILE)
    assert all(ch.isprintable() for ch in text)
    for escape in ("\\x1b", "\\x07", "\\x9b", "\\u202e", "\\u200b", "\\u2028", "\\U000e0041"):
        assert escape in text
    assert printable("łukasz \u2013 ok \u00a0") == "łukasz \u2013 ok \u00a0"  # unchanged


def test_a_table_cell_shows_markup_literally_and_writes_no_escape_of_its_own() -> None:
    table = Table()
    table.add_column("tool")
    table.add_row(cell(HOSTILE))
    out = rendered(table)
    assert "[red]x[/red]" in out and "[link=http://e]y[/link]" in out
    assert "\x07" not in out and "\x9b" not in out and "\u202e" not in out
    assert "\x1b[2J" not in out and "\x1b]8;" not in out  # no clear screen, no hyperlink


def test_markup_safe_in_a_markup_string() -> None:
    out = rendered(f"[dim]stream {markup_safe(HOSTILE)}[/]")
    assert "[red]x[/red]" in out and "\x1b[2J" not in out and "\x1b]8;" not in out


def test_json_for_terminal_keeps_the_value() -> None:
    text = json.dumps({"tool": HOSTILE, "n": [1, 2]}, ensure_ascii=False, indent=2)
    safe = json_for_terminal(text)
    assert json.loads(safe) == json.loads(text)
    assert all(ch.isprintable() or ch == "\n" for ch in safe)
