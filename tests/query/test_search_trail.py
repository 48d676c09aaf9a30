"""Full-text search is exact against a real trail of 10,000 calls made through `wrap`, on both
backends (SQLite's FTS5 index, PostgreSQL's tsvector index): every query's results equal a
brute-force scan of the stored (redacted) bodies."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from e2e_notary import Notary
from pgtest import pg_schema
from readside_trail import run_trail

from mcp_notary.query.engine import QueryEngine, open_query_engine
from mcp_notary.query.model import Cursor, Query

pytestmark = pytest.mark.timeout(300)
CALLS = 10_000
_TOKEN = re.compile(r"[^\W_]+")  # what FTS5's unicode61 tokenizer calls a word


Trail = tuple[QueryEngine, list[dict[str, Any]]]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def trail(
    request: pytest.FixtureRequest,
    notary: Notary,
    time_cmd: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Trail]:
    def searched(store: str) -> Iterator[Trail]:
        run_trail(notary, time_cmd, store, CALLS, chunk=1000)  # type: ignore[arg-type]
        engine = open_query_engine(store)
        engine.ensure_index()
        bodies = [json.loads(r.body) for r in engine.iterate(Query(limit=None, sort="oldest"))]
        yield engine, bodies
        engine.close()

    if request.param == "postgres":
        with pg_schema("search") as url:
            yield from searched(url)
        return
    yield from searched(str(tmp_path_factory.mktemp("search-10k") / "audit.db"))


def _words(event: dict[str, Any]) -> list[str]:
    """The indexed text of an event, as the index's tokenizer splits it."""
    parts: list[Any] = [
        event.get("tool"),
        event.get("target"),
        event.get("arguments"),
        event.get("response_summary"),
        (event.get("error") or {}).get("message"),
        event.get("details"),
        (event.get("server") or {}).get("name"),
        event.get("trace_id"),
        " ".join(f.get("kind", "") for f in event.get("sensitive_fields") or []),
    ]
    text = " ".join(p if isinstance(p, str) else json.dumps(p) for p in parts if p is not None)
    return [w.lower() for w in _TOKEN.findall(text)]


def _has(words: list[str], term: str) -> bool:
    return term in words


def _phrase(words: list[str], phrase: str) -> bool:
    wanted = phrase.split()
    return any(words[i : i + len(wanted)] == wanted for i in range(len(words)))


Predicate = Callable[[list[str], dict[str, Any]], bool]
CASES: list[tuple[Query, Predicate]] = [
    (Query(text="tokyo", limit=None), lambda w, e: _has(w, "tokyo")),
    (
        Query(text="Tokyo", tool="convert_time", limit=None),
        lambda w, e: _has(w, "tokyo") and e["tool"] == "convert_time",
    ),
    (Query(text='"olympus mons"', limit=None), lambda w, e: _phrase(w, "olympus mons")),
    (Query(text="lond*", limit=None), lambda w, e: any(x.startswith("lond") for x in w)),
    (
        Query(text="sao -tokyo", limit=None),
        lambda w, e: _has(w, "sao") and not _has(w, "tokyo"),
    ),
    (
        Query(text="probe", outcome="protocol_error", limit=None),
        lambda w, e: _has(w, "probe") and e["outcome"] == "protocol_error",
    ),
    (
        Query(text="mars", outcome="tool_error", limit=None),
        lambda w, e: _has(w, "mars") and e["outcome"] == "tool_error",
    ),
]


def test_the_trail_went_through_wrap(trail: Trail) -> None:
    _, bodies = trail
    calls = [e for e in bodies if e["kind"] == "call" and e["method"] == "tools/call"]
    assert len(calls) == CALLS
    assert {e["transport"] for e in calls} == {"stdio"}
    assert {e["outcome"] for e in calls} == {"success", "tool_error", "protocol_error"}


@pytest.mark.parametrize("case", range(len(CASES)))
def test_search_matches_a_brute_force_scan(trail: Trail, case: int) -> None:
    engine, bodies = trail
    query, predicate = CASES[case]
    expected = {e["event_id"] for e in bodies if predicate(_words(e), e)}
    found = [json.loads(r.body)["event_id"] for r in engine.iterate(query)]
    assert len(found) == len(set(found)), "an event came back twice"
    assert set(found) == expected, (query, len(found), len(expected))
    assert expected, f"the trail should contain matches for {query.text!r}"


def test_newest_first_pages_of_a_large_result(
    trail: Trail,
) -> None:
    """A word in most events: pages come from the time index (the dense plan), still exact."""
    engine, bodies = trail
    expected = [e for e in bodies if _has(_words(e), "get")]
    assert len(expected) > 5000
    newest = sorted(expected, key=lambda e: (e["timestamp"], e["stream"], e["seq"]), reverse=True)
    query = Query(text="get", limit=250)
    seen: list[str] = []
    while True:
        page = engine.search(query)
        seen += [r.event_id for r in page.rows]
        if page.next_cursor is None:
            break
        query = Query(text="get", limit=250, cursor=Cursor.decode(page.next_cursor))
    assert seen == [e["event_id"] for e in newest]
