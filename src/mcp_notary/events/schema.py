"""The published JSON Schema of AuditEvent v1 (shipped in the package)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def event_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) every stored event body conforms to."""
    text = resources.files("mcp_notary.events").joinpath("schema/audit-event-v1.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema
