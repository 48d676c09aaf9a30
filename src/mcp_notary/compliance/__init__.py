"""Compliance templates (data files) and evidence reports.

A template (``templates/<name>.toml``) sets capture, redaction, retention and access together
and maps its clauses to automated checks from :mod:`mcp_notary.compliance.checks`. A report
gathers facts through the audited read side (:mod:`mcp_notary.compliance.evidence`), runs the
pure checks and renders an evidence pack (:mod:`mcp_notary.compliance.report`).
"""

from __future__ import annotations

from mcp_notary.compliance.templates import (
    Template,
    combine,
    load_template,
    template_names,
)

__all__ = ["Template", "combine", "load_template", "template_names"]
