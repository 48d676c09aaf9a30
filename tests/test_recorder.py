"""The recorder's promise that nothing unscanned is stored: payload-free events go through the
redactor too, and an event whose redaction fails keeps no string that came from outside."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path
from typing import Any

from mcp_notary.config import NotaryConfig
from mcp_notary.events.build import CaptureContext
from mcp_notary.events.model import AuditEvent, EventDraft, Principal
from mcp_notary.ledger.stores.sqlite import SQLiteStore
from mcp_notary.recorder import AuditRecorder, redactor_from_config
from mcp_notary.redact.policy import PolicyRedactor


def token() -> str:
    return "ghp_" + "".join(random.choices(string.ascii_letters + string.digits, k=36))


class BrokenRedactor:
    """A redactor that fails on every event, as a bug in a rule or a schema walk would."""

    def observe_tools(self, server: str | None, tools: list[dict[str, Any]]) -> None:
        return None

    def finalize(self, draft: EventDraft) -> AuditEvent:
        raise RuntimeError("redaction bug")


def recorded(tmp_path: Path, redactor: Any, secret: str) -> list[dict[str, Any]]:
    store = SQLiteStore(tmp_path / "audit.db")
    recorder = AuditRecorder(
        store,
        redactor,
        CaptureContext(principal=Principal("t", "user", "config"), transport="stdio"),
    )
    recorder.start()
    recorder.record_event(
        "auth",
        {"claims": {"note": secret}, "header": f"Authorization: Bearer {secret}"},
        tool=secret,
        method=f"x/{secret}",
        jsonrpc_id=secret,
    ).result(5)
    recorder.close("test")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("audit.db*"))
    assert secret.encode() not in raw
    bodies = [json.loads(r.body) for r in store.scan(recorder.stream)]
    store.close()
    return [b for b in bodies if b["kind"] == "auth"]


def test_payload_free_events_are_redacted(tmp_path: Path) -> None:
    secret = token()
    redactor: PolicyRedactor = redactor_from_config(NotaryConfig())
    (event,) = recorded(tmp_path, redactor, secret)
    assert {f["pointer"] for f in event["sensitive_fields"]} >= {"/tool", "/jsonrpc_id"}


def test_a_failed_redaction_stores_no_outside_string(tmp_path: Path) -> None:
    secret = token()
    (event,) = recorded(tmp_path, BrokenRedactor(), secret)
    assert event["details"] == {"redaction_failed": "RuntimeError"}
    assert (event["tool"], event["method"], event["jsonrpc_id"]) == (None, None, None)
