"""Roles, permissions and the decision of what a set of roles may do. Pure: no I/O.

PCI DSS 10.3.1 asks that audit logs be readable only for job need, so the roles are narrow and
an administrator is not an auditor: `admin` configures and manages access but cannot read
payload tiers (events, exports, SQL) unless also granted `auditor`. Nobody, whatever the role,
can modify or delete events: there is no such action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ACTIONS",
    "ROLES",
    "ROLE_PERMISSIONS",
    "Action",
    "Decision",
    "Permission",
    "Role",
    "decide",
    "permissions_of",
]

Role = Literal["auditor", "security", "admin", "viewer"]
ROLES: tuple[Role, ...] = ("auditor", "security", "admin", "viewer")

Permission = Literal[
    "events.read",  # every event, payload tiers included
    "events.read_own",  # only events whose principal is the reader
    "events.export",
    "reports.run",
    "sql.run",  # raw read-only SQL: cannot be row-filtered, so never for viewers
    "integrity.read",  # verification, checkpoints, proofs metadata: no payload
    "stats.read",  # counts per tool, principal, outcome: metadata, no payload
    "alerts.read",
    "legal_hold.manage",
    "access.manage",  # grants, revocations, tokens of others
    "config.manage",  # capture, retention and keys
]

_AUDITOR: frozenset[Permission] = frozenset(
    {
        "events.read",
        "events.read_own",
        "events.export",
        "reports.run",
        "sql.run",
        "integrity.read",
        "stats.read",
    }
)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    "viewer": frozenset({"events.read_own"}),
    "auditor": _AUDITOR,
    "security": _AUDITOR | {"alerts.read", "legal_hold.manage"},
    "admin": frozenset({"integrity.read", "stats.read", "access.manage", "config.manage"}),
}

Action = Literal[
    # reads of the audit log (each one leaves an `audit_access` event)
    "search",
    "show",
    "proof",
    "export",
    "report",
    "sql",
    "verify",
    "stats",
    "checkpoints",
    "alerts",
    "console_view",
    # changes to who may read (also `audit_access` events: PCI DSS 10.2.1.5)
    "grant",
    "revoke",
    "token_create",
    "token_revoke",
    "access_list",
    # lifecycle of the trail (recorded as `retention`, `legal_hold`, `erasure` events too)
    "retention",
    "legal_hold",
    "erase",
    "unseal",  # open payloads sealed under a data subject's key
]
ACTIONS: tuple[Action, ...] = Action.__args__  # type: ignore[attr-defined]

# Which permission an action needs; a tuple means "the first one held decides the scope".
_NEEDS: dict[Action, tuple[Permission, ...]] = {
    "search": ("events.read", "events.read_own"),
    "show": ("events.read", "events.read_own"),
    "proof": ("events.read", "events.read_own"),
    "export": ("events.export",),
    "report": ("reports.run",),
    "sql": ("sql.run",),
    "verify": ("integrity.read",),
    "stats": ("stats.read",),
    "checkpoints": ("integrity.read",),
    "alerts": ("alerts.read", "integrity.read"),
    "console_view": ("events.read", "events.read_own", "integrity.read", "stats.read"),
    "grant": ("access.manage",),
    "revoke": ("access.manage",),
    "token_create": ("access.manage",),
    "token_revoke": ("access.manage",),
    "access_list": ("access.manage",),
    "retention": ("config.manage",),
    "legal_hold": ("legal_hold.manage",),
    "erase": ("config.manage",),
    "unseal": ("events.read",),
}


@dataclass(frozen=True)
class Decision:
    """Whether an action is allowed, and on what: `own_only` restricts a read to the reader's
    own events (the viewer role). `basis` says why, for the audit record."""

    allowed: bool
    basis: str
    own_only: bool = False
    permission: Permission | None = None


def permissions_of(roles: frozenset[Role] | set[Role]) -> frozenset[Permission]:
    granted: frozenset[Permission] = frozenset()
    for role in roles:
        granted |= ROLE_PERMISSIONS[role]
    return granted


def decide(roles: frozenset[Role] | set[Role], action: Action) -> Decision:
    """What `roles` may do about `action`. Unknown roles grant nothing."""
    held = permissions_of({r for r in roles if r in ROLE_PERMISSIONS})
    for permission in _NEEDS[action]:
        if permission in held:
            return Decision(
                True,
                f"role grants {permission}",
                own_only=permission == "events.read_own",
                permission=permission,
            )
    if not roles:
        return Decision(False, "no role granted")
    return Decision(False, f"roles {', '.join(sorted(roles))} do not allow {action}")
