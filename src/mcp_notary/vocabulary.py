"""The closed vocabularies of the event schema (what kinds of event, which outcomes, which way a
message went). A leaf module: capture paths name an outcome without importing later stages."""

from __future__ import annotations

from typing import Literal

Direction = Literal["client_to_server", "server_to_client"]

Kind = Literal[
    "call",  # a completed (or abandoned) request/response exchange
    "call_started",  # strict durability: the request was committed before it was forwarded
    "notification",  # a JSON-RPC notification in either direction
    "anomaly",  # bytes that were relayed but could not be audited as a message
    "auth",  # an authentication decision the proxy made itself (e.g. a refused bearer token)
    "lifecycle",  # proxy start/stop, unclean-shutdown records, store outages
    "audit_access",  # a read of the audit log (audit of audits)
    "integrity_alert",  # verification found a break
    "key_rotation",  # a redaction or signing key changed
    "retention",  # a retention run archived or pruned events (ranges, counts, policy version)
    "legal_hold",  # a legal hold was placed or released
    "erasure",  # a data subject's key was destroyed (crypto-shredding)
]

Outcome = Literal[
    "success",
    "tool_error",
    "protocol_error",
    "denied",
    "cancelled",
    "input_required",
    "task",
    "transport_error",
]
