"""The packaged look-alike table is exactly what the Unicode TR 39 confusables data and NFKC
say. On a difference, the test prints the module to replace
src/mcp_notary/redact/confusables.py with."""

from __future__ import annotations

import unicodedata

from confusable_homoglyphs import confusables

from mcp_notary.redact import confusables as generated
from mcp_notary.redact.confusables import ASCII_LOOKALIKES
from mcp_notary.redact.keynames import INVISIBLE


def derived() -> dict[int, str]:
    table: dict[int, str] = {}
    for ch, entries in confusables.confusables_data.items():
        if len(ch) != 1 or ch.isascii():
            continue
        for entry in entries:
            glyph = entry.get("c", "")
            if len(glyph) == 1 and glyph.isascii() and glyph.isalnum():
                table[ord(ch)] = glyph
                break
    for code in range(0x80, 0x110000):  # compatibility forms TR 39 leaves out (full-width)
        if code in table or 0xD800 <= code < 0xE000:
            continue
        folded = unicodedata.normalize("NFKC", chr(code))
        if len(folded) == 1 and folded.isascii() and folded.isalnum():
            table[code] = folded
    return table


# The module's own docstring heads the regenerated module, so the two cannot drift apart.
HEADER = f'"""{generated.__doc__}"""\n\nfrom __future__ import annotations\n\n'
FOOTER = (
    "ASCII_LOOKALIKES: dict[int, str] = dict(zip(map(ord, _FROM), _TO, strict=True))\n"
    '"""Code point -> the ASCII letter or digit it looks like (for `str.translate`)."""\n'
)


def module_text(table: dict[int, str]) -> str:
    """The source of mcp_notary/redact/confusables.py for `table`."""
    items = sorted(table.items())

    def esc(code: int) -> str:
        return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"

    lines = [HEADER + "_FROM = ("]
    lines += ['    "' + "".join(esc(c) for c, _ in items[i : i + 12]) + '"'
              for i in range(0, len(items), 12)]  # fmt: skip
    to = "".join(g for _, g in items)
    lines += [")", "_TO = ("]
    lines += ['    "' + to[i : i + 72] + '"' for i in range(0, len(to), 72)]
    lines += [")", "", FOOTER]
    return "\n".join(lines)


def test_table_matches_the_confusables_data() -> None:
    expected = derived()
    missing = {hex(c): g for c, g in expected.items() if ASCII_LOOKALIKES.get(c) != g}
    extra = sorted(hex(c) for c in ASCII_LOOKALIKES if c not in expected)
    assert not missing and not extra, module_text(expected)


def test_common_homoglyphs_fold() -> None:
    # Cyrillic a, o, p, e, s; Greek omicron; full-width and mathematical letters.
    text = "\u0430\u043e\u0440\u0435\u0455\u03bf\uff50\U0001d429"
    assert text.translate(ASCII_LOOKALIKES) == "aopesopp"


def test_invisible_is_every_format_character_and_the_grapheme_joiner() -> None:
    expected = {c for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf"} | {0x034F}
    found = {c for c in range(0x110000) if INVISIBLE.fullmatch(chr(c))}
    assert found == expected, sorted(map(hex, found ^ expected))
