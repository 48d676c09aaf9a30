"""The check functions are pure: facts in, verdict out. Cases the seeded trail cannot reach
cheaply (a raw card number stored, a silent crash, a year-old trail, a cut stream)."""

from __future__ import annotations

from typing import Any

from mcp_notary.compliance.checks import (
    AccessFacts,
    EventFact,
    Facts,
    StreamFact,
    access_review,
    checkpoint_coverage,
    pipeline_failures_alerted,
    reads_audited,
    redaction_in_force,
    retention_oldest_event,
)
from mcp_notary.compliance.evidence import secret_scanner

NOW = "2026-11-24T12:00:00.000000Z"


def facts(**overrides: Any) -> Facts:
    base: dict[str, Any] = {
        "period_from": "2026-01-01T00:00:00.000000Z",
        "period_to": "2026-11-25T00:00:00.000000Z",
        "generated_at": NOW,
        "events": [],
        "streams": [],
        "oldest_timestamp": None,
        "verification": {"findings": [], "stream_reports": []},
        "checkpoints": [],
        "anchors_given": 0,
        "access": AccessFacts(),
        "secret_scan": secret_scanner(),
    }
    base.update(overrides)
    return Facts(**base)


def call(seq: int, arguments: Any) -> EventFact:
    body = {"kind": "call", "method": "tools/call", "tool": "pay", "arguments": arguments}
    return EventFact("s", seq, f"e{seq}", NOW, "call", body)


def stream(
    name: str, last_ts: str, phase: str | None, *, reader: bool = False, first: int = 1
) -> StreamFact:
    kind = "audit_access" if reader else ("lifecycle" if phase else "call")
    return StreamFact(name, first, 9, last_ts, kind, phase, reader)


def test_a_raw_card_number_in_a_stored_payload_fails_and_a_marker_does_not() -> None:
    marker = "[REDACTED:payment_card:411111******1111:0123456789ab]"
    clean = facts(events=[call(1, {"card": marker, "note": "Asia/Tokyo 12:00"})])
    assert redaction_in_force(clean, {"kinds": ["payment_card"]}).status == "pass"
    leaked = facts(events=[call(1, {"card": marker}), call(2, {"n": ["x", "4111 1111 1111 1111"]})])
    result = redaction_in_force(leaked, {"kinds": ["payment_card"]})
    assert result.status == "fail" and result.exception_count == 1
    (exc,) = result.exceptions
    assert exc["seq"] == 2 and exc["pointer"] == "/arguments/n/1"
    assert "4111" not in str(exc)  # where and which rule, never the value
    # Limited to card numbers, an e-mail address is not this clause's business.
    mail = facts(events=[call(1, {"to": "jane.doe@example.com"})])
    assert redaction_in_force(mail, {"kinds": ["payment_card"]}).status == "pass"
    assert redaction_in_force(mail, {}).status == "fail"


def test_a_silent_crash_fails_but_readers_noticed_crashes_and_live_streams_do_not() -> None:
    old, recent = "2026-11-24T09:00:00.000000Z", "2026-11-24T11:50:00.000000Z"
    fine = facts(
        streams=[
            stream("stopped", old, "stopped"),
            stream("noticed", old, "ended_uncleanly"),
            stream("reader", old, None, reader=True),
            stream("live", recent, None),
        ]
    )
    assert pipeline_failures_alerted(fine, {"grace_minutes": 60}).status == "pass"
    silent = facts(streams=[stream("crashed", old, None)])
    result = pipeline_failures_alerted(silent, {"grace_minutes": 60})
    assert result.status == "fail" and result.exceptions[0]["stream"] == "crashed"


def test_retention_passes_on_an_old_trail_and_fails_when_history_was_cut() -> None:
    old = facts(oldest_timestamp="2025-09-01T00:00:00.000000Z", streams=[stream("a", NOW, None)])
    assert retention_oldest_event(old, {"days": 365}).status == "pass"
    young = facts(oldest_timestamp="2026-10-01T00:00:00.000000Z", streams=[stream("a", NOW, None)])
    assert retention_oldest_event(young, {"days": 365}).status == "not_applicable"
    cut = facts(
        oldest_timestamp="2026-10-01T00:00:00.000000Z", streams=[stream("a", NOW, None, first=7)]
    )
    assert retention_oldest_event(cut, {"days": 365}).status == "fail"


def test_access_review_needs_required_roles_and_separated_duties() -> None:
    ok = facts(access=AccessFacts(roles_at_end={"ops": ["admin"], "ann": ["auditor"]}))
    params = {"required_roles": ["admin", "auditor"], "separate_roles": [["admin", "auditor"]]}
    assert access_review(ok, params).status == "pass"
    both = facts(access=AccessFacts(roles_at_end={"ops": ["admin", "auditor"]}))
    problems = {e["problem"] for e in access_review(both, params).exceptions}
    assert problems == {"holds roles that must be separate"}
    nobody = facts(access=AccessFacts(roles_at_end={}))
    assert access_review(nobody, params).exception_count == 2


def test_coverage_requires_an_anchor_only_when_asked() -> None:
    f = facts()
    assert checkpoint_coverage(f, {}).status == "pass"
    assert checkpoint_coverage(f, {"require_anchor": True}).status == "fail"
    uncovered = facts(
        verification={"findings": [{"kind": "uncovered", "stream": "s", "severity": "incomplete"}]}
    )
    assert checkpoint_coverage(uncovered, {}).status == "fail"
    own = facts(
        verification={
            "findings": [{"kind": "uncovered", "stream": "me", "severity": "incomplete"}]
        },
        report_stream="me",
    )
    assert checkpoint_coverage(own, {}).status == "pass"


def test_reads_audited_reconciles_registry_rows_and_token_reads_with_audit_events() -> None:
    audit = {
        "g1": {"method": "access/grant", "outcome": "success", "timestamp": NOW},
        "t1": {"method": "access/token_create", "outcome": "success", "timestamp": NOW},
        "r1": {"method": "audit/search", "outcome": "success", "timestamp": NOW,
               "token_id": "aaaaaaaaaaaa"},
    }  # fmt: skip
    registry: dict[str, Any] = {
        "grants": [{"principal": "ann", "role": "auditor", "action": "grant", "event_id": "g1"}],
        "tokens": [{"token_id": "aaaaaaaaaaaa", "principal": "ann", "event_id": "t1"}],
    }
    ok = facts(access=AccessFacts(audit_events=audit, **registry))
    result = reads_audited(ok, {})
    assert result.status == "pass" and result.population == 3
    # A read through a token nobody issued through the audited path.
    ghost = {**audit, "r2": {**audit["r1"], "token_id": "bbbbbbbbbbbb"}}
    result = reads_audited(facts(access=AccessFacts(audit_events=ghost, **registry)), {})
    assert [e["token_id"] for e in result.exceptions] == ["bbbbbbbbbbbb"]
    # A grant row whose event says something else (a denied attempt) does not count.
    denied = {**audit, "g1": {**audit["g1"], "outcome": "denied"}}
    result = reads_audited(facts(access=AccessFacts(audit_events=denied, **registry)), {})
    assert (
        result.status == "fail"
        and "expected access/grant/success" in result.exceptions[0]["problem"]
    )
