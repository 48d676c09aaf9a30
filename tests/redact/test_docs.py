"""docs/redaction.md stays honest: every rule and every setting is documented."""

from __future__ import annotations

from pathlib import Path

from mcp_notary.redact.rules import DEFAULT_RULES
from mcp_notary.redact.settings import _SERVER_KEYS, _TOP_KEYS

DOC = (Path(__file__).parents[2] / "docs" / "redaction.md").read_text()


def test_every_rule_id_is_documented() -> None:
    missing = [r.id for r in DEFAULT_RULES if not r.skip and f"`{r.id}`" not in DOC]
    assert not missing


def test_every_setting_is_documented() -> None:
    def documented(key: str) -> bool:
        # settings as `key` or `key = ...`, tables as [redaction.servers.NAME.tools.TOOL]
        return f"`{key}`" in DOC or f"{key} =" in DOC or f".{key}." in DOC

    assert not [key for key in sorted(_TOP_KEYS | _SERVER_KEYS) if not documented(key)]


def test_rule_count_matches_the_text() -> None:
    count = sum(1 for r in DEFAULT_RULES if not r.skip)
    assert f"The detectors are {count} rules" in DOC
