"""The public surface of mcp_notary.redact."""

from __future__ import annotations

import mcp_notary.redact as redact


def test_public_names_are_exactly_these() -> None:
    assert sorted(redact.__all__) == sorted(
        [
            "DEFAULT_RULES",
            "ENGINE",
            "Detectors",
            "Finding",
            "KeyRotation",
            "PolicyRedactor",
            "Redacted",
            "Redaction",
            "RedactionKey",
            "RedactionPolicy",
            "Rule",
            "default_detectors",
            "default_key_path",
            "load_or_create_key",
            "rotate_key",
        ]
    )
    for name in redact.__all__:
        assert hasattr(redact, name)
