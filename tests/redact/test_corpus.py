"""The labelled corpus (shared/corpus/secrets.jsonl): every secret removed, negatives untouched.

recall = share of `secrets` substrings absent from the redacted text;
false-positive rate = share of negatives whose text changed. Run with `-s` to see the figures.
Both regex engines must give the same answers (RE2 is the fast path, `re` the fallback).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcp_notary.redact.detectors import Detectors
from mcp_notary.redact.engine import ENGINE
from mcp_notary.redact.policy import PolicyRedactor, RedactionPolicy
from mcp_notary.redact.tokens import RedactionKey

CORPUS = Path(__file__).parents[2].parent / "shared/corpus/secrets.jsonl"
ENGINES = [
    "re",
    pytest.param(
        "re2", marks=pytest.mark.skipif(ENGINE != "re2", reason="google-re2 not installed")
    ),
]


def _rows() -> list[dict[str, Any]]:
    if not CORPUS.exists():
        pytest.skip(f"corpus not found at {CORPUS}")
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("engine", ENGINES)
def test_corpus_recall_and_false_positives(engine: str) -> None:
    redactor = PolicyRedactor(
        RedactionPolicy.from_mapping({}),
        RedactionKey(b"corpus-test-key-" * 2),
        detectors=Detectors(engine=engine),
    )
    rows = _rows()
    secrets = missed = negatives = changed = 0
    misses = []
    for row in rows:
        out = redactor.redact_payload(row["text"]).value
        assert isinstance(out, str)
        if row["kind"] == "negative":
            negatives += 1
            if out != row["text"]:
                changed += 1
                misses.append(f"false positive {row['id']}: {out!r}")
        for secret in row["secrets"]:
            secrets += 1
            if secret in out:
                missed += 1
                misses.append(f"missed {row['id']} ({row['kind']})")
    recall = 1 - missed / secrets
    fp_rate = changed / negatives
    print(f"\n[{engine}] corpus: {len(rows)} rows, {secrets} secrets, {negatives} negatives; "
          f"recall {recall:.2%}, false-positive rate {fp_rate:.2%}")  # fmt: skip
    assert recall == 1.0, misses
    assert fp_rate <= 0.02, misses


def test_engines_agree_on_the_corpus() -> None:
    if ENGINE != "re2":
        pytest.skip("google-re2 not installed")
    key = RedactionKey(b"k" * 32)
    fast, slow = Detectors(engine="re2"), Detectors(engine="re")
    for row in _rows():
        assert fast.redact(row["text"], key).text == slow.redact(row["text"], key).text, row["id"]
