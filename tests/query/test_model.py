"""Query parsing and the search-expression builder: what people type becomes safe FTS5."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_notary.query.model import Cursor, Query, QueryError, fts_expression


def test_terms_phrases_prefixes_and_exclusions() -> None:
    assert fts_expression("London error") == '"London" AND "error"'
    assert fts_expression('"Europe/London" lond* -paris') == (
        '("Europe London" AND "lond"*) NOT ("paris")'
    )


@pytest.mark.parametrize("text", ["", "   ", "-only", '""', "***", "-a -b"])
def test_a_search_needs_a_positive_word(text: str) -> None:
    with pytest.raises(QueryError):
        fts_expression(text)


@given(st.text(max_size=60))
def test_no_input_is_read_as_fts5_syntax(text: str) -> None:
    """Whatever is typed, the expression is valid FTS5 (or refused up front)."""
    try:
        expression = fts_expression(text)
    except QueryError:
        return
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(a)")
    db.execute("SELECT * FROM t WHERE t MATCH ?", (expression,)).fetchall()


def test_cursor_round_trip_and_garbage() -> None:
    cursor = Cursor("2026-01-01T00:00:00.000000Z", "host/1/abc", 42)
    assert Cursor.decode(cursor.encode()) == cursor
    for bad in ("!!!", "e30", "WzEsMiwzXQ"):  # not base64 / {} / [1,2,3]
        with pytest.raises(QueryError):
            Cursor.decode(bad)


def test_parse_validates_and_normalises() -> None:
    query = Query.parse(since="2026-01-02", until="2026-01-03T10:00:00+02:00", limit="10")
    assert query.since == "2026-01-02T00:00:00.000000Z"
    assert query.until == "2026-01-03T08:00:00.000000Z"
    assert query.limit == 10
    bad_inputs = [
        {"since": "yesterday"},
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "ten"},
        {"outcome": "ok"},
        {"kind": "nope"},
        {"trace_id": "XYZ"},
        {"event_id": "not-a-uuid"},
        {"sort": "random"},
        {"since": "2026-02-01", "until": "2026-01-01"},
        {"text": "x" * 501},
        {"bogus": "1"},
    ]
    for raw in bad_inputs:
        with pytest.raises(QueryError):
            Query.parse(**raw)


def test_viewer_restriction_overrides_any_principal_filter() -> None:
    query = Query.parse(principal="alice", text="secret")
    assert query.own_only("bob").principal == "bob"
    assert query.own_only("bob").text == "secret"


def test_tsquery_expression_mirrors_the_fts5_expression() -> None:
    from mcp_notary.query.model import tsquery_expression

    assert tsquery_expression('Lisbon "Sao_Paulo time" lond* -oslo -"new york"') == (
        "('lisbon' & ('sao' <-> 'paulo' <-> 'time') & 'lond':*) & !('oslo' | ('new' <-> 'york'))"
    )
    # Input is never tsquery syntax: operators and quotes only separate words (one
    # whitespace-separated term is one phrase, as in FTS5; `&` alone has no word).
    assert tsquery_expression("a'|b & !c:*") == "('a' <-> 'b') & 'c':*"
    assert tsquery_expression("ÉCOLE") == "'école'"
    with pytest.raises(QueryError):
        tsquery_expression("-only -negative")
    with pytest.raises(QueryError):
        tsquery_expression("___ !!")
