"""Retention policy, legal holds and the per-event plan: pure functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from factories import event

from mcp_notary.errors import ConfigError
from mcp_notary.ledger.store import EventRow, StreamHead, prepare_row
from mcp_notary.lifecycle.holds import HeldRow, LegalHold, active_holds
from mcp_notary.lifecycle.policy import Periods, RetentionPolicy, parse_days
from mcp_notary.lifecycle.retention import plan_stream, recorded_prunes

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def test_periods_parse_iso_and_days() -> None:
    assert parse_days("P1Y", "x") == 365 and parse_days("P3M", "x") == 90
    assert parse_days(30, "x") == 30 and parse_days("", "x") is None
    with pytest.raises(ConfigError, match="ISO-8601"):
        parse_days("90 days", "[retention].hot")


def test_policy_rules_first_match_wins_and_version_tracks_content() -> None:
    policy = RetentionPolicy.from_mapping(
        {
            "hot": "P90D",
            "total": "P365D",
            "rules": [
                {"tool": "refund", "hot": "P30D", "total": "P6Y"},
                {"server": "billing", "total": "P2Y"},
            ],
        }
    )
    assert policy.periods_for("s", "billing", "refund", "call") == Periods(30, 6 * 365)
    assert policy.periods_for("s", "billing", "other", "call") == Periods(None, 730)
    assert policy.periods_for("s", "web", "other", "call") == Periods(90, 365)
    assert policy.longest_total() == 6 * 365
    assert RetentionPolicy.from_mapping({"hot": "P90D"}).longest_total() is None
    other = RetentionPolicy.from_mapping({"hot": "P91D", "total": "P365D"})
    assert other.version != policy.version
    same = RetentionPolicy.from_mapping({"hot": "P90D", "total": "P365D", "basis": "why"})
    assert same.version == RetentionPolicy.from_mapping({"hot": 90, "total": 365}).version


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"hot": "P400D", "total": "P365D"}, "longer than total"),
        ({"rules": [{"hot": "P1D"}]}, "match on at least one"),
        ({"rules": [{"tool": "x", "keep": "P1D"}]}, "unknown setting"),
        ({"horizon": "P1D"}, "unknown setting"),
        ({"archive": ""}, "archive"),
    ],
)
def test_bad_policies_are_refused_clearly(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RetentionPolicy.from_mapping(table)


def test_holds_match_all_their_criteria() -> None:
    hold = LegalHold("h1", "case", "t", "me", principal="mallory", tool="refund",
                     since="2026-01-01", query="ORD-7")  # fmt: skip
    row = HeldRow("s", 1, "2026-02-01T00:00:00.000000Z", "refund", "mallory", b'{"x":"ord-7"}')
    assert hold.matches(row)
    assert not hold.matches(HeldRow("s", 1, "2025-12-31T00:00:00.000000Z", "refund", "mallory"))
    assert not hold.matches(HeldRow("s", 1, row.timestamp, "refund", "alice", row.body))
    assert not hold.matches(HeldRow("s", 1, row.timestamp, "refund", "mallory", b"{}"))


def test_active_holds_follow_placements_and_releases() -> None:
    def body(details: dict) -> bytes:
        return json.dumps({"timestamp": "t", "details": details}).encode()

    placed = [
        LegalHold("h1", "a", "t1", "me", principal="p").to_details(),
        LegalHold("h2", "b", "t2", "me", tool="x").to_details(),
    ]
    bodies = [body(d) for d in placed] + [body({"action": "released", "hold_id": "h1"}), b"junk"]
    holds = active_holds(bodies)
    assert [(h.hold_id, h.tool) for h in holds] == [("h2", "x")]


def rows(ages_days: list[float], tools: list[str] | None = None) -> list[EventRow]:
    out, head = [], StreamHead()
    for i, age in enumerate(ages_days):
        e = event((tools or ["t"] * len(ages_days))[i], "alice",
                  (NOW - timedelta(days=age)).timestamp())  # fmt: skip
        row = prepare_row(e, "s", head)
        head = StreamHead(row.seq, row.chain_hash)
        out.append(row)
    return out


def test_plan_archives_past_hot_expires_past_total_and_keeps_held() -> None:
    policy = RetentionPolicy.from_mapping({"hot": "P10D", "total": "P100D"})
    stored = rows([200, 150, 50, 40, 30, 5, 1], ["t", "t", "t", "keep", "t", "t", "t"])
    hold = LegalHold("h", "r", "t", "me", tool="keep")
    plan = plan_stream("s", None, stored, policy, [hold], NOW, archiving=True)
    assert plan.expire == [(1, 2)]
    assert plan.archive == [(3, 3), (5, 5)]
    assert plan.spans == [(3, 5)]  # one segment across the held event
    assert (plan.held, plan.kept) == (1, 2)
    assert plan.pruned == [(1, 3), (5, 5)]
    # Nothing past the stream's largest checkpoint is touched.
    unsigned = plan_stream("s", None, stored, policy, [hold], NOW, archiving=True, signed_upto=2)
    assert (unsigned.expire, unsigned.archive, unsigned.kept) == ([(1, 2)], [], 5)
    # Without an archive, bodies stay until their total period ends.
    bare = plan_stream("s", None, stored, policy, [hold], NOW, archiving=False)
    assert bare.archive == [] and bare.expire == [(1, 2)]


def test_rules_match_data_classes_from_the_redaction_manifest() -> None:
    from dataclasses import replace

    from mcp_notary.events.model import SensitiveField

    policy = RetentionPolicy.from_mapping(
        {"total": "P30D", "rules": [{"data_class": "pan", "total": "P400D"}]}
    )
    head, stored = StreamHead(), []
    for i, classes in enumerate([("pan",), (), ("email", "pan"), ("email",)]):
        e = replace(
            event("t", "alice", (NOW - timedelta(days=100 + i)).timestamp()),
            sensitive_fields=tuple(SensitiveField(f"/a/{k}", k, f"r-{k}") for k in classes),
        )
        row = prepare_row(e, "s", head)
        head = StreamHead(row.seq, row.chain_hash)
        stored.append(row)
    plan = plan_stream("s", None, stored, policy, [], NOW, archiving=False)
    assert plan.expire == [(2, 2), (4, 4)]  # kept 400 days: the events that held a card number
    assert plan.kept == 2


def test_plan_never_prunes_lifecycle_records_and_spans_stop_at_gaps() -> None:
    policy = RetentionPolicy.from_mapping({"hot": "P1D"})
    stored = rows([50, 40, 30, 20])
    # A retention record (by its hashed body: the kind column alone decides nothing).
    body = json.loads(stored[1].body)
    record = json.dumps({**body, "kind": "retention"}, separators=(",", ":")).encode()
    kept_kind = EventRow(**{**stored[1].__dict__, "kind": "retention", "body": record})
    gapped = [stored[0], kept_kind, stored[3]]  # seq 3 pruned before
    plan = plan_stream("s", None, gapped, policy, [], NOW, archiving=True)
    assert plan.archive == [(1, 1), (4, 4)] and plan.kept == 1
    assert plan.spans == [(1, 1), (4, 4)]
    # A call whose kind COLUMN says `retention` is pruned like any call.
    forged = EventRow(**{**stored[1].__dict__, "kind": "retention"})
    plan = plan_stream("s", None, [stored[0], forged, stored[3]], policy, [], NOW, archiving=True)
    assert plan.archive == [(1, 2), (4, 4)] and plan.kept == 0


def test_recorded_prunes_reads_retention_records() -> None:
    body = json.dumps({"details": {"streams": [{"stream": "s", "pruned": [[1, 3], [7, 7]]}]}})
    assert recorded_prunes([body.encode(), b"{}"]) == {"s": [(1, 3), (7, 7)]}
