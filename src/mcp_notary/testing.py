"""Helpers for people who embed the audit middleware and want to assert on its events in their
own tests (in the spirit of structlog's `capture_logs`):

    from mcp_notary.testing import capture_events

    with capture_events() as events:
        async with Client(server) as client:
            await client.call_tool("transfer", {"amount": 5})
    assert events[-1]["tool"] == "transfer" and events[-1]["outcome"] == "success"

Each captured event is the redacted event body the ledger would store (without `stream` and
`seq`, which only the ledger assigns), built with the same builder and redactor.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mcp_notary.capture.middleware import TRANSPORT, add_listener, remove_listener
from mcp_notary.capture.pairing import Exchange, SessionFacts
from mcp_notary.events.build import CaptureContext, build_draft
from mcp_notary.identity.principal import Principal
from mcp_notary.redact.api import Redactor

__all__ = ["capture_events"]


@contextmanager
def capture_events(
    redactor: Redactor | None = None, *, server_name: str | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Collect the events every installed audit middleware records while the block runs."""
    if redactor is None:
        from mcp_notary.config import NotaryConfig
        from mcp_notary.recorder import redactor_from_config

        redactor = redactor_from_config(NotaryConfig())
    context = CaptureContext(
        principal=Principal("unknown", "unknown", "none"),
        transport=TRANSPORT,
        server_name=server_name,
    )
    captured: list[dict[str, Any]] = []

    def listen(exchange: Exchange, session: SessionFacts) -> None:
        event = redactor.finalize(build_draft(exchange, session, context))
        body = event.body(stream="captured", seq=len(captured) + 1)
        del body["stream"], body["seq"]
        captured.append(body)

    add_listener(listen)
    try:
        yield captured
    finally:
        remove_listener(listen)
