"""The evidence pack: per-clause results with the query that decided each, populations and
samples, the chain verification with the period's signed checkpoints and anchor receipts, the
access-review export, and the record of the report's own generation (an audited read).

`generate` does the audited read and returns a JSON-serialisable model; `render_json`,
`render_html` (one self-contained file: inline CSS, no network) and `render_pdf` (WeasyPrint,
when installed) turn it into what an assessor takes away.
"""

from __future__ import annotations

import importlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from mcp_notary.access.audit import Interface
from mcp_notary.access.control import Caller
from mcp_notary.access.readside import ReadSide
from mcp_notary.compliance.checks import CHECKS, Facts
from mcp_notary.compliance.evidence import EvidenceOptions, gather_facts
from mcp_notary.compliance.templates import Template
from mcp_notary.errors import ConfigError
from mcp_notary.lifecycle.policy import days_text

__all__ = ["evaluate", "generate", "render_html", "render_json", "render_pdf"]


def _tool_version() -> str:
    try:
        return version("mcp-notary")
    except PackageNotFoundError:  # running from a source tree
        return "unknown"


def evaluate(templates: Sequence[Template], facts: Facts) -> list[dict[str, Any]]:
    """Run every template's checks on `facts` (pure)."""
    out: list[dict[str, Any]] = []
    for t in templates:
        clauses: list[dict[str, Any]] = []
        for spec in t.checks:
            result = CHECKS[spec.check](facts, spec.params)
            clauses.append(
                {
                    "clause": spec.clause,
                    "title": spec.title,
                    "check": spec.check,
                    "params": dict(spec.params),
                    "query": spec.query,
                    "result": result.to_dict(),
                }
            )
        counts = Counter(c["result"]["status"] for c in clauses)
        out.append(
            {
                "name": t.name,
                "title": t.title,
                "version": t.framework_version,
                "summary": {s: counts.get(s, 0) for s in ("pass", "fail", "not_applicable")},
                "failed_clauses": [c["clause"] for c in clauses if c["result"]["status"] == "fail"],
                "retention": {
                    "hot": days_text(t.retention.hot_days),
                    "total": days_text(t.retention.total_days),
                    "payload": days_text(t.retention.payload_days),
                    "basis": t.retention.basis,
                },
                "access": dict(t.access),
                "clauses": clauses,
            }
        )
    return out


def generate(
    side: ReadSide,
    caller: Caller,
    templates: Sequence[Template],
    options: EvidenceOptions,
    *,
    interface: Interface = "cli",
    purpose: str | None = None,
    trusted_key_sources: Sequence[str] = (),
) -> dict[str, Any]:
    """Authorise, gather, check, and record the report as an `audit_access` event (durable
    before the model is returned: a report that cannot be audited is not produced)."""
    if not templates:
        raise ConfigError("name at least one compliance template")
    if options.period_from >= options.period_to:
        raise ConfigError("the report period is empty: --from must be before --to")
    query: dict[str, object] = {
        "templates": [t.name for t in templates],
        "from": options.period_from,
        "to": options.period_to,
        "anchors": list(options.anchors),
    }
    decision = side.control.require(caller, "report", interface, query=query, purpose=purpose)
    facts = gather_facts(side, options, report_stream=side.auditor.stream)
    results = evaluate(templates, facts)
    event_id = side.control.record(
        caller,
        "report",
        decision,
        interface,
        query=query,
        returned=len(facts.events),
        purpose=purpose,
    )
    by_kind = Counter(e.kind for e in facts.events)
    verification = dict(facts.verification)
    verification["trusted_keys"] = list(trusted_key_sources)
    summary = Counter(c["result"]["status"] for t in results for c in t["clauses"])
    return {
        "report": {
            "format": "mcp-notary-compliance-report/1",
            "generated_at": facts.generated_at,
            "generated_by": caller.principal.to_dict(),
            "roles": sorted(caller.roles),
            "purpose": purpose,
            "tool_version": _tool_version(),
            "store": side.location,
            "period": {"from": options.period_from, "to": options.period_to},
            "templates": [t.name for t in templates],
        },
        "generation_record": {
            "event_id": event_id,
            "stream": side.auditor.stream,
            "kind": "audit_access",
            "method": "audit/report",
            "note": "this report's own generation, recorded in the ledger before it was "
            "written (find it with: mcp-notary show EVENT_ID)",
        },
        "summary": {s: summary.get(s, 0) for s in ("pass", "fail", "not_applicable")},
        "population": {
            "events_in_period": len(facts.events),
            "by_kind": dict(sorted(by_kind.items())),
            "audit_access_events_in_store": len(facts.access.audit_events),
            "streams": len(facts.streams),
            "oldest_retrievable_event": facts.oldest_timestamp,
            "oldest_archived_event": facts.lifecycle.archived_oldest,
        },
        "templates": results,
        "verification": verification,
        "checkpoints": list(facts.checkpoints),
        "retention_runs": {
            "status": f"{len(facts.lifecycle.runs)} run(s) recorded in the ledger "
            "(each before it deleted anything)",
            "runs": list(facts.lifecycle.runs),
        },
        "legal_holds": {
            "status": f"{len(facts.lifecycle.holds)} hold(s) in force at the end of the period, "
            f"{len(facts.lifecycle.hold_events)} placement(s) or release(s) in it",
            "holds": list(facts.lifecycle.holds),
            "changes": list(facts.lifecycle.hold_events),
        },
        "erasures": list(facts.lifecycle.erasures),
        "access_review": {
            "roles_at_end": dict(facts.access.roles_at_end),
            "grant_history": list(facts.access.grants),
            "tokens": list(facts.access.tokens),
            "token_revocations": list(facts.access.revocations),
        },
    }


def render_json(model: Mapping[str, Any]) -> str:
    return json.dumps(model, indent=2, sort_keys=False, default=str) + "\n"


def render_html(model: Mapping[str, Any]) -> str:
    """One self-contained HTML file (inline CSS, no scripts, no network)."""
    import jinja2

    source = resources.files(__package__).joinpath("report.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=1, default=str)
    return env.from_string(source).render(m=model)


def _weasyprint() -> Any:
    # Imported by name: an optional dependency without type information.
    return importlib.import_module("weasyprint")


def pdf_available() -> bool:
    try:
        _weasyprint()
    except (ImportError, OSError):  # OSError: the Pango libraries are missing
        return False
    return True


def render_pdf(model: Mapping[str, Any]) -> bytes:
    """The HTML rendered to PDF by WeasyPrint. ConfigError if it is not installed."""
    try:
        weasyprint = _weasyprint()
    except (ImportError, OSError) as exc:
        raise ConfigError(
            "PDF output needs WeasyPrint (pip install weasyprint; apt-get install "
            "libpango-1.0-0 libpangoft2-1.0-0): " + str(exc)
        ) from exc
    pdf: bytes = weasyprint.HTML(string=render_html(model)).write_pdf()
    return pdf
