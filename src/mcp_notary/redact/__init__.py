"""Redaction: schema-declared sensitivity, operator overlays, secret and PII detectors, keyed
correlation tokens and the redaction manifest. Pure functions apart from the key file.

Entry point: `PolicyRedactor(RedactionPolicy.from_mapping(table), key).finalize(draft)`.
"""

from mcp_notary.redact.detectors import Detectors, Finding, Redacted, default_detectors
from mcp_notary.redact.engine import ENGINE
from mcp_notary.redact.policy import PolicyRedactor, Redaction, RedactionPolicy
from mcp_notary.redact.rules import DEFAULT_RULES, Rule
from mcp_notary.redact.tokens import (
    KeyRotation,
    RedactionKey,
    default_key_path,
    load_or_create_key,
    rotate_key,
)

__all__ = [
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
