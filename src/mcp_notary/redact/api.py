"""The contract between the capture/event stages and redaction.

Everything that reaches the ledger passes through `Redactor.finalize`, which turns an
`EventDraft` (raw payloads) into an `AuditEvent` (redacted arguments, a short redacted
response summary, the manifest of what was removed).
"""

from __future__ import annotations

from typing import Any, Protocol

from mcp_notary.events.model import AuditEvent, EventDraft


class Redactor(Protocol):
    def observe_tools(self, server: str | None, tools: list[dict[str, Any]]) -> None:
        """Remember tool definitions (from a `tools/list` result) so that schema-declared
        sensitive properties are masked in later calls of those tools."""

    def finalize(self, draft: EventDraft) -> AuditEvent:
        """Redact the draft's raw payloads and build the stored event. Pure apart from the
        remembered tool schemas: no I/O."""
