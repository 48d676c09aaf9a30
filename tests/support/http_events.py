"""Reading what a running `mcp-notary proxy` recorded: the events arrive through group commits,
so tests wait for them (bounded) instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from e2e_notary import Notary

Event = dict[str, Any]


def wait_events(
    notary: Notary,
    store: Path,
    until: Callable[[list[Event]], bool],
    timeout: float = 15.0,
) -> list[Event]:
    """Events of the store (audit-of-audit reads left out) once `until(events)` holds."""
    deadline = time.monotonic() + timeout
    events: list[Event] = []
    while time.monotonic() < deadline:
        if store.exists():
            events = [e for e in notary.events(store) if e["kind"] != "audit_access"]
            if until(events):
                return events
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s; last events: {summary(events)}")


def calls(events: list[Event], method: str | None = "tools/call") -> list[Event]:
    return [e for e in events if e["kind"] == "call" and (method is None or e["method"] == method)]


def http(event: Event) -> dict[str, Any]:
    return dict((event.get("details") or {}).get("http") or {})


def summary(events: list[Event]) -> list[tuple[Any, ...]]:
    return [(e["seq"], e["kind"], e["method"], e["tool"], e["outcome"]) for e in events]


def store_bytes(store: Path) -> bytes:
    """Every byte the store keeps on disk (database, WAL, journal)."""
    data = b""
    for path in store.parent.glob(store.name + "*"):
        data += path.read_bytes()
    return data
