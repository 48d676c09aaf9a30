"""Who may read the audit trail: roles, API tokens, and the audit of every read."""

from mcp_notary.access.audit import AccessRecord, ReadAuditor
from mcp_notary.access.control import AccessControl, AccessDenied, AuthenticationFailed, Caller
from mcp_notary.access.registry import AccessState, AccessStore
from mcp_notary.access.roles import ROLES, Action, Decision, Role, decide

__all__ = [
    "ROLES",
    "AccessControl",
    "AccessDenied",
    "AccessRecord",
    "AccessState",
    "AccessStore",
    "Action",
    "AuthenticationFailed",
    "Caller",
    "Decision",
    "ReadAuditor",
    "Role",
    "decide",
]
