"""Automated compliance checks. Pure: each takes the `Facts` gathered by
:mod:`mcp_notary.compliance.evidence` and its parameters from a template, and returns a
`CheckResult` (pass, fail or not applicable) with the population it looked at, the exceptions
that decided a failure, and a sample an assessor can trace back to stored events.

The registry `CHECKS` maps the check ids that templates name to these functions.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

__all__ = [
    "CHECKS",
    "AccessFacts",
    "CheckResult",
    "EventFact",
    "Facts",
    "Status",
    "StreamFact",
]

Status = Literal["pass", "fail", "not_applicable"]
SAMPLE = 10  # population items shown per check
MAX_EXCEPTIONS = 50  # failing items listed per check (the count is always complete)

# Lifecycle phases that record a failure of the audit pipeline itself (PCI DSS 10.7.2).
FAILURE_PHASES = frozenset(
    {
        "ended_uncleanly",
        "previous_run_unclean",
        "store_recovered",
        "spawn_failed",
        "response_withheld",
    }
)
# Verifier findings that are evidence of tampering or loss; the others say evidence is missing.
COVERAGE_KINDS = frozenset({"uncovered", "not_anchored", "no_trusted_key"})
# Stored events whose payload fields the redactor is responsible for (read-side events carry
# the reader's own query, which is not captured traffic).
PAYLOAD_KINDS = ("call", "call_started", "notification")
PAYLOAD_FIELDS = ("arguments", "response_summary", "error", "target", "client", "details")


@dataclass(frozen=True)
class EventFact:
    """One stored event of the period: its position and its parsed (redacted) body."""

    stream: str
    seq: int
    event_id: str
    timestamp: str
    kind: str
    body: Mapping[str, Any]

    def ref(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "stream": self.stream,
            "seq": self.seq,
            "timestamp": self.timestamp,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class StreamFact:
    """A stream as a whole: its first stored seq, last event, and whether it is a reader's."""

    stream: str
    first_seq: int
    last_seq: int
    last_timestamp: str
    last_kind: str
    last_phase: str | None
    reader: bool  # holds only `audit_access` events (reader streams have no lifecycle)


@dataclass(frozen=True)
class AccessFacts:
    """The access registry (insert-only records) and the `audit_access` events, for
    reconciling one with the other."""

    grants: Sequence[Mapping[str, Any]] = ()  # GrantChange as dicts, oldest first
    tokens: Sequence[Mapping[str, Any]] = ()  # TokenRecord as dicts, without secret hashes
    revocations: Sequence[Mapping[str, Any]] = ()
    roles_at_end: Mapping[str, Sequence[str]] = field(default_factory=dict)
    audit_events: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """event_id -> {kind, method, outcome, principal, token_id, timestamp} of every
    `audit_access` event in the store."""


@dataclass(frozen=True)
class LifecycleFacts:
    """What retention, legal holds and erasure did, and what the store still holds that they
    govern."""

    runs: Sequence[Mapping[str, Any]] = ()  # every `retention` run, oldest first
    holds: Sequence[Mapping[str, Any]] = ()  # holds in force at the end of the period
    hold_events: Sequence[Mapping[str, Any]] = ()  # placements and releases in the period
    erasures: Sequence[Mapping[str, Any]] = ()  # `erasure` events in the period
    archived_oldest: str | None = None
    """The oldest event still in an archived segment (per the runs' records)."""
    prunable_times: Sequence[str] = ()
    """Sorted times of stored events retention governs (not a lifecycle record, not held)."""
    clear_payload_times: Sequence[str] = ()
    """Sorted times of stored events with a payload field in the clear (not sealed)."""
    payload_keys: Sequence[str] = ()  # day keys still present (`payload_YYYY-MM-DD`)
    archive: str | None = None
    """The archive read for the facts below (None: no archive given)."""
    archive_error: str | None = None
    """Why the archive could not be read, if it could not."""
    archived_times: Sequence[str] = ()
    """Sorted times of the events the archive still holds."""
    archived_ends: Sequence[str] = ()
    """Sorted ends of the own total periods of the events the archive still holds (those
    kept forever left out)."""


@dataclass(frozen=True)
class Facts:
    """Everything the checks decide on. Built by the evidence reader; plain data."""

    period_from: str
    period_to: str
    generated_at: str
    events: Sequence[EventFact]
    streams: Sequence[StreamFact]
    oldest_timestamp: str | None
    verification: Mapping[str, Any]  # TrailReport.to_dict()
    checkpoints: Sequence[Mapping[str, Any]]  # in the period
    anchors_given: int
    access: AccessFacts
    report_stream: str | None = None  # the generating reader's own stream (still open)
    secret_scan: Callable[[str], list[tuple[str, str]]] | None = None
    """(rule id, kind) of every detection in a text: the redactor's detectors."""
    lifecycle: LifecycleFacts = field(default_factory=LifecycleFacts)


@dataclass
class CheckResult:
    status: Status
    summary: str
    population: int = 0
    exception_count: int = 0
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _result(
    population: Sequence[Any],
    exceptions: list[dict[str, Any]],
    ok: str,
    bad: str,
    sample: list[dict[str, Any]],
    **details: Any,
) -> CheckResult:
    failed = bool(exceptions)
    return CheckResult(
        "fail" if failed else "pass",
        bad.format(n=len(exceptions), total=len(population))
        if failed
        else ok.format(total=len(population)),
        len(population),
        len(exceptions),
        exceptions[:MAX_EXCEPTIONS],
        sample[:SAMPLE],
        dict(details),
    )


def _get(body: Mapping[str, Any], path: str) -> Any:
    value: Any = body
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _present(body: Mapping[str, Any], name: str) -> bool:
    if "|" in name:  # alternatives: `server.name|server.command` (stateless peers send no name)
        return any(_present(body, part) for part in name.split("|"))
    if name == "principal":
        principal = body.get("principal") or {}
        # An id with no known kind of caller is not user identification (PCI DSS 10.2.2).
        return bool(principal.get("id")) and principal.get("type") not in (None, "unknown")
    if name == "tool":
        return body.get("method") != "tools/call" or bool(body.get("tool"))
    value = _get(body, name)
    return value is not None and value != ""


def field_completeness(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """Every event of `kinds` carries every field in `fields` (``principal``: an id of a known
    kind of caller; ``tool``: present on ``tools/call``; other names: dotted paths; ``a|b``:
    either)."""
    kinds = tuple(params.get("kinds", ("call",)))
    fields = tuple(params.get("fields", ("principal", "timestamp", "outcome", "method", "tool")))
    population = [e for e in facts.events if e.kind in kinds]
    exceptions = []
    for event in population:
        missing = [f for f in fields if not _present(event.body, f)]
        if missing:
            exceptions.append(
                {**event.ref(), "missing": missing, "principal": event.body.get("principal")}
            )
    return _result(
        population,
        exceptions,
        "all {total} event(s) carry every mandatory field",
        "{n} of {total} event(s) lack a mandatory field",
        [e.ref() for e in population],
        kinds=list(kinds),
        fields=list(fields),
        completeness=(
            f"{100 * (len(population) - len(exceptions)) / len(population):.2f}%"
            if population
            else "n/a"
        ),
    )


def reads_audited(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """Access to the trail is itself in the trail (PCI DSS 10.2.1.3, 10.2.1.5).

    Reads leave no trace but their `audit_access` event, so the check reconciles the records
    that exist independently of those events: every grant, revocation, API token and token
    revocation in the access registry names the `audit_access` event that announced it (the
    read side writes that event first), which must exist with the matching method and a
    `success` outcome; and every allowed read through an API token must name a token the
    registry holds. A token row without its event is a credential to read the trail that was
    issued around the audited path; reads by it would be attributed to nothing."""
    a = facts.access
    population: list[dict[str, Any]] = []
    exceptions: list[dict[str, Any]] = []
    expected = [
        *(("access_grants", g, f"access/{g.get('action')}") for g in a.grants),
        *(("access_tokens", t, "access/token_create") for t in a.tokens),
        *(("access_token_revocations", r, "access/token_revoke") for r in a.revocations),
    ]
    for table, record, method in expected:
        item = {
            "record": table,
            "event_id": record.get("event_id"),
            "principal": record.get("principal"),
            "token_id": record.get("token_id"),
            "at": record.get("at") or record.get("created_at"),
        }
        population.append(item)
        event = a.audit_events.get(str(record.get("event_id")))
        if event is None:
            exceptions.append({**item, "problem": "no audit_access event with this id"})
        elif event.get("method") != method or event.get("outcome") != "success":
            exceptions.append(
                {
                    **item,
                    "problem": f"event is {event.get('method')}/{event.get('outcome')}, "
                    f"expected {method}/success",
                }
            )
    known_tokens = {str(t.get("token_id")) for t in a.tokens}
    reads = [
        (eid, e)
        for eid, e in a.audit_events.items()
        if e.get("token_id")
        and e.get("outcome") == "success"
        and str(e.get("method", "")).startswith("audit/")
        and facts.period_from <= str(e.get("timestamp")) < facts.period_to
    ]
    for eid, event in reads:
        item = {
            "record": "audit_access",
            "event_id": eid,
            "token_id": event.get("token_id"),
            "at": event.get("timestamp"),
        }
        population.append(item)
        if event.get("token_id") not in known_tokens:
            exceptions.append({**item, "problem": "read through a token the registry lacks"})
    in_period = sum(
        1
        for e in a.audit_events.values()
        if facts.period_from <= str(e.get("timestamp")) < facts.period_to
    )
    return _result(
        population,
        exceptions,
        "all {total} access record(s) and token reads reconcile with audit_access events",
        "{n} of {total} access record(s) or token reads have no matching audit_access event",
        population,
        audit_access_events_in_period=in_period,
    )


def chain_verified(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """The verifier recomputed every stream from its stored bytes with no integrity finding
    (PCI DSS 10.3.2, HIPAA 164.312(c)). Missing evidence is the coverage check's concern."""
    v = facts.verification
    findings = [f for f in v.get("findings", []) if f.get("severity") == "integrity"]
    streams = v.get("stream_reports", [])
    return _result(
        streams,
        [dict(f) for f in findings],
        "hash chains, leaf hashes and {total} stream(s) verified against their signed "
        "checkpoints: intact",
        "{n} integrity finding(s) in {total} stream(s)",
        [dict(s) for s in streams],
        verdict=v.get("result"),
        events=v.get("events"),
        checkpoints_checked=v.get("checkpoints_checked"),
    )


def checkpoint_coverage(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """Every stored event is covered by a signed checkpoint from a trusted key, and (with
    ``require_anchor``) every stored checkpoint has a copy in an anchor the writer cannot
    rewrite (PCI DSS 10.3.3). The generating reader's own stream is still open while the
    report runs, so its last events are not yet covered and are left out."""
    require_anchor = bool(params.get("require_anchor", False))
    v = facts.verification
    kinds = set(COVERAGE_KINDS)
    if not require_anchor:
        kinds.discard("not_anchored")
    findings = [
        dict(f)
        for f in v.get("findings", [])
        if f.get("kind") in kinds and f.get("stream") != facts.report_stream
    ]
    if require_anchor and facts.anchors_given == 0:
        findings.append(
            {
                "kind": "not_anchored",
                "stream": "*",
                "detail": "no anchor was given to the report (--anchor)",
            }
        )
    return _result(
        facts.checkpoints,
        findings,
        "{total} signed checkpoint(s) in the period; every stored event is covered",
        "{n} coverage gap(s); {total} signed checkpoint(s) in the period",
        [dict(c) for c in facts.checkpoints],
        require_anchor=require_anchor,
        anchors_given=facts.anchors_given,
    )


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def retention_oldest_event(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """The oldest retrievable event is at least ``days`` (less ``slack_days``, default 1) old
    at the end of the period (PCI DSS 10.5.1: 365), counting archived segments. A trail younger
    than that cannot show it yet: if every stream still starts at seq 1 (nothing deleted), the
    result is not applicable, not a failure."""
    days = int(params.get("days", 365))
    # Retention runs periodically: a trail kept for exactly `days` has its oldest event up to
    # one run interval (and one event gap) younger than that.
    slack = float(params.get("slack_days", 1))
    archived = facts.lifecycle.archived_oldest
    stored = facts.oldest_timestamp
    oldest = min(t for t in (stored, archived) if t) if (stored or archived) else None
    end = _parse(facts.period_to)
    details: dict[str, Any] = {
        "days": days,
        "oldest": oldest,
        "oldest_in_store": stored,
        "oldest_in_archive": archived,
        "as_of": facts.period_to,
    }
    if oldest is None:
        return CheckResult("not_applicable", "the store holds no events", details=details)
    age = end - _parse(oldest)
    details["oldest_age_days"] = round(age / timedelta(days=1), 2)
    if age >= timedelta(days=days - slack):
        return CheckResult(
            "pass",
            f"oldest retrievable event is {age.days} day(s) old (>= {days})",
            population=1,
            details=details,
        )
    cut = [s for s in facts.streams if s.first_seq != 1]
    if not cut:
        return CheckResult(
            "not_applicable",
            f"the trail began {age.days} day(s) before the period end, less than {days}; "
            "every stream is complete from seq 1, so nothing was lost",
            population=len(facts.streams),
            details=details,
        )
    return CheckResult(
        "fail",
        f"oldest retrievable event is {age.days} day(s) old (< {days}) and "
        f"{len(cut)} stream(s) no longer start at seq 1",
        population=len(facts.streams),
        exception_count=len(cut),
        exceptions=[{"stream": s.stream, "first_seq": s.first_seq} for s in cut][:MAX_EXCEPTIONS],
        details=details,
    )


def pipeline_failures_alerted(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """Failures of the audit pipeline were detected and recorded (PCI DSS 10.7.2): every
    capture stream ends cleanly (``stopped``) or was closed by a later process that noticed
    the crash (``ended_uncleanly``, with a ``previous_run_unclean`` alert in the noticing
    stream); streams silent for longer than ``grace_minutes`` without either are undetected
    failures. Failure records and integrity alerts in the period are listed as evidence."""
    grace = timedelta(minutes=int(params.get("grace_minutes", 60)))
    now = _parse(facts.generated_at)
    failures = [
        e
        for e in facts.events
        if e.kind == "integrity_alert"
        or (e.kind == "lifecycle" and (e.body.get("details") or {}).get("phase") in FAILURE_PHASES)
    ]
    noticed = {
        str(_get(e.body, "details.stream"))
        for e in facts.events
        if e.kind == "lifecycle" and _get(e.body, "details.phase") == "previous_run_unclean"
    }
    exceptions = []
    for s in facts.streams:
        if s.reader or s.stream == facts.report_stream:
            continue
        if s.last_phase in ("stopped", "ended_uncleanly"):
            continue
        if now - _parse(s.last_timestamp) > grace:
            exceptions.append(
                {
                    "stream": s.stream,
                    "last_seq": s.last_seq,
                    "last_event": s.last_timestamp,
                    "problem": "stream stopped without a stop record and no process "
                    "noticed (no ended_uncleanly)",
                }
            )
    return _result(
        failures,
        exceptions,
        "{total} pipeline failure record(s) or alert(s) in the period; no undetected failure",
        "{n} undetected pipeline failure(s); {total} recorded failure(s) or alert(s)",
        [{**e.ref(), "phase": (e.body.get("details") or {}).get("phase")} for e in failures],
        grace_minutes=int(grace / timedelta(minutes=1)),
        crash_notices=sorted(noticed - {"None"}),
    )


def access_review(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """The access-review export: who held which role at the end of the period. Fails when a
    role the template requires is held by nobody, or one principal holds two roles the
    template keeps apart (segregation of duties: PCI DSS 10.3.1, SOC 2 CC6.3)."""
    required = list(params.get("required_roles", []))
    separate = [list(p) for p in params.get("separate_roles", [])]
    roles = {p: set(r) for p, r in facts.access.roles_at_end.items()}
    population = [{"principal": p, "roles": sorted(r)} for p, r in sorted(roles.items())]
    exceptions: list[dict[str, Any]] = []
    for role in required:
        if not any(role in r for r in roles.values()):
            exceptions.append({"role": role, "problem": "required role held by nobody"})
    for pair in separate:
        for principal, held in sorted(roles.items()):
            if set(pair) <= held:
                exceptions.append(
                    {
                        "principal": principal,
                        "roles": pair,
                        "problem": "holds roles that must be separate",
                    }
                )
    return _result(
        population,
        exceptions,
        "{total} principal(s) hold roles; required roles held and duties separated",
        "{n} access-review exception(s) among {total} principal(s)",
        population,
        required_roles=required,
        separate_roles=separate,
        changes_in_period=sum(
            1
            for g in facts.access.grants
            if facts.period_from <= str(g.get("at")) < facts.period_to
        ),
    )


def _strings(value: Any, pointer: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(pointer, value)]
    if isinstance(value, Mapping):
        out = []
        for k, v in value.items():
            out += _strings(v, f"{pointer}/{k}")
        return out
    if isinstance(value, list):
        out = []
        for i, v in enumerate(value):
            out += _strings(v, f"{pointer}/{i}")
        return out
    return []


def redaction_in_force(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """No stored payload field holds anything the redactor's detectors recognise (a raw card
    number, secret or identifier stored = fail; PCI DSS 3.4.1/3.5.1, GDPR 5(1)(c)). Markers
    left by redaction are not detections. ``kinds`` limits the detector kinds that count."""
    if facts.secret_scan is None:
        return CheckResult("not_applicable", "no detectors were available to the report")
    wanted = set(params.get("kinds", []))
    population = [e for e in facts.events if e.kind in PAYLOAD_KINDS]
    exceptions = []
    for event in population:
        for name in PAYLOAD_FIELDS:
            for pointer, text in _strings(event.body.get(name), f"/{name}"):
                hits = [
                    (rule, kind)
                    for rule, kind in facts.secret_scan(text)
                    if not wanted or kind in wanted
                ]
                if hits:
                    # Never the value: where, and which rule recognised it.
                    exceptions.append(
                        {**event.ref(), "pointer": pointer, "rules": sorted({r for r, _ in hits})}
                    )
    return _result(
        population,
        exceptions,
        "no detector recognises anything in the stored payloads of {total} event(s)",
        "{n} stored field(s) hold values the detectors recognise, in {total} event(s)",
        [e.ref() for e in population],
        kinds=sorted(wanted) or "all",
    )


def retention_enforced(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """Storage limitation (GDPR Art. 5(1)(e)): at the end of the period (less ``slack_days``,
    default 1) the store holds no event past ``total_days`` that retention governs (legal
    holds and lifecycle records excepted), and, with ``payload_days``, no payload older than
    that in the clear and no day key older than that left to open one. The archive, when the
    report reads one, holds no event whose own total period has ended, nor any older than
    ``total_days``."""
    life = facts.lifecycle
    # As for the oldest event: retention runs periodically, so allow one run interval.
    end = _parse(facts.period_to) - timedelta(days=float(params.get("slack_days", 1)))
    exceptions: list[dict[str, Any]] = []
    details: dict[str, Any] = {"as_of": facts.period_to, "retention_runs": len(life.runs)}
    total = params.get("total_days")
    if total is not None:
        cut = (end - timedelta(days=int(total))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        past = bisect.bisect_left(list(life.prunable_times), cut)
        details["events_past_total"] = past
        if past:
            exceptions.append({"problem": f"stored events older than {total} days", "count": past})
    if life.archive is not None:
        details["archive"] = life.archive
        if life.archive_error is not None:
            exceptions.append({"problem": f"archive unreadable: {life.archive_error}", "count": 1})
        ended = bisect.bisect_left(list(life.archived_ends), end.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        details["archived_events"] = len(life.archived_times)
        details["archived_past_period"] = ended
        if ended:
            exceptions.append(
                {"problem": "archived events past their own total period", "count": ended}
            )
        if total is not None:
            old = bisect.bisect_left(list(life.archived_times), cut)
            details["archived_past_total"] = old
            if old:
                exceptions.append(
                    {"problem": f"archived events older than {total} days", "count": old}
                )
    payload = params.get("payload_days")
    if payload is not None:
        cut = (end - timedelta(days=int(payload))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        clear = bisect.bisect_left(list(life.clear_payload_times), cut)
        keys = [k for k in life.payload_keys if k.rsplit("_", 1)[-1] < cut[:10]]
        details |= {"clear_payloads_past_period": clear, "payload_keys_past_period": keys}
        if clear:
            exceptions.append(
                {"problem": f"payloads older than {payload} days stored in the clear",
                 "count": clear}
            )  # fmt: skip
        if keys:
            exceptions.append(
                {"problem": f"day keys older than {payload} days not destroyed",
                 "count": len(keys), "keys": keys[:MAX_EXCEPTIONS]}
            )  # fmt: skip
    count = sum(int(e["count"]) for e in exceptions)
    population = len(life.prunable_times)
    if exceptions:
        return CheckResult(
            "fail",
            "; ".join(f"{e['count']} {e['problem']}" for e in exceptions),
            population=population,
            exception_count=count,
            exceptions=exceptions,
            details=details,
        )
    return CheckResult(
        "pass",
        f"nothing stored past its period ({population} governed event(s), "
        f"{len(life.runs)} retention run(s))",
        population=population,
        details=details,
    )


def manual(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """A clause with no automated check yet: reported as not applicable, with the reason."""
    return CheckResult("not_applicable", str(params.get("reason", "requires a manual review")))


CHECKS: dict[str, Callable[[Facts, Mapping[str, Any]], CheckResult]] = {
    "field_completeness": field_completeness,
    "reads_audited": reads_audited,
    "chain_verified": chain_verified,
    "checkpoint_coverage": checkpoint_coverage,
    "retention_oldest_event": retention_oldest_event,
    "retention_enforced": retention_enforced,
    "pipeline_failures_alerted": pipeline_failures_alerted,
    "access_review": access_review,
    "redaction_in_force": redaction_in_force,
    "manual": manual,
}
