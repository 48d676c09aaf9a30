"""The role model: what each role may do, as a table a reviewer can check against issue 7."""

from __future__ import annotations

import pytest

from mcp_notary.access.registry import AccessState, GrantChange
from mcp_notary.access.roles import ACTIONS, ROLES, decide

# role -> actions it may take (everything else is refused)
EXPECTED = {
    "auditor": {
        "search", "show", "proof", "export", "report", "sql", "verify", "stats", "checkpoints",
        "alerts", "console_view", "unseal",
    },
    "security": {
        "search", "show", "proof", "export", "report", "sql", "verify", "stats", "checkpoints",
        "alerts", "console_view", "unseal", "legal_hold",
    },
    "admin": {
        "verify", "stats", "checkpoints", "alerts", "console_view", "grant", "revoke",
        "token_create", "token_revoke", "access_list", "retention", "erase",
    },
    "viewer": {"search", "show", "proof", "console_view"},
}  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ACTIONS)
def test_role_matrix(role: str, action: str) -> None:
    decision = decide(frozenset({role}), action)  # type: ignore[arg-type]
    assert decision.allowed == (action in EXPECTED[role]), (role, action, decision)


def test_viewer_reads_are_own_only_and_auditor_reads_are_not() -> None:
    assert decide(frozenset({"viewer"}), "search").own_only
    assert decide(frozenset({"viewer"}), "show").own_only
    assert not decide(frozenset({"auditor"}), "search").own_only
    # a viewer who is also an auditor reads everything
    assert not decide(frozenset({"viewer", "auditor"}), "search").own_only


def test_admin_cannot_read_payload_tiers_unless_also_auditor() -> None:
    for action in ("search", "show", "export", "sql", "proof"):
        assert not decide(frozenset({"admin"}), action).allowed  # type: ignore[arg-type]
        assert decide(frozenset({"admin", "auditor"}), action).allowed  # type: ignore[arg-type]


def test_no_role_and_unknown_roles_grant_nothing() -> None:
    for action in ACTIONS:
        assert not decide(frozenset(), action).allowed
        assert not decide(frozenset({"root"}), action).allowed  # type: ignore[arg-type]


def _change(principal: str, role: str, action: str) -> GrantChange:
    return GrantChange(principal, role, action, "2026-01-01T00:00:00.000000Z", "admin", "e")  # type: ignore[arg-type]


def test_replay_applies_grants_and_revocations_in_order() -> None:
    state = AccessState.replay(
        [
            _change("alice", "auditor", "grant"),
            _change("alice", "admin", "grant"),
            _change("alice", "auditor", "revoke"),
            _change("bob", "viewer", "grant"),
            _change("bob", "viewer", "revoke"),
            _change("bob", "viewer", "grant"),
            _change("carol", "wizard", "grant"),  # unknown role: ignored
        ]
    )
    assert state.roles_of("alice") == {"admin"}
    assert state.roles_of("bob") == {"viewer"}
    assert state.roles_of("carol") == frozenset()
    assert state.has_admin and state.has_grants
