"""The principal: who made a call, and how we know. A leaf module, so that every capture path
can attach an identity without importing the later event stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Principal:
    """Who made the call. `source` says how we know: only `token`, `os` and `config` are
    identities; `client_info` is self-reported and display-only."""

    id: str
    type: Literal["user", "service", "unauthenticated", "unknown"]
    source: Literal["token", "os", "config", "client_info", "none"]
    details: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "type": self.type, "source": self.source}
        if self.details:
            body["details"] = self.details
        return body
