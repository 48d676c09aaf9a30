"""Pieces several commands share."""

from __future__ import annotations

from mcp_notary.config import NotaryConfig
from mcp_notary.redact.api import Redactor


def make_redactor(config: NotaryConfig) -> Redactor:
    from mcp_notary.redact.policy import PolicyRedactor, RedactionPolicy

    return PolicyRedactor.from_config(RedactionPolicy.from_mapping(config.redaction))
