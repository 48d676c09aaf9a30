"""One typed configuration, loaded from mcp-notary.toml; flags override it."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_notary.errors import ConfigError


@dataclass(frozen=True)
class NotaryConfig:
    store: str | None = None
    durability: str = "batched"
    redaction: dict[str, Any] = field(default_factory=dict)
    # Sections written by `mcp-notary init --template` (compliance/templates). Kept as tables:
    # [compliance] names the templates `report` uses; [capture], [retention] and [access]
    # record what they require; [retention] is applied by `mcp-notary retention apply`.
    compliance: dict[str, Any] = field(default_factory=dict)
    capture: dict[str, Any] = field(default_factory=dict)
    retention: dict[str, Any] = field(default_factory=dict)
    access: dict[str, Any] = field(default_factory=dict)
    # [erasure] names whose personal data each call carries (crypto-shredding).
    erasure: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None) -> NotaryConfig:
        """Read `path` (TOML). No path means defaults."""
        if path is None:
            return cls()
        try:
            raw = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config {path} is not valid TOML: {exc}") from exc
        tables = ("redaction", "compliance", "capture", "retention", "access", "erasure")
        known = {"store", "durability", *tables}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"config {path}: unknown setting(s) {', '.join(unknown)}")
        durability = raw.get("durability", "batched")
        if durability not in ("batched", "strict"):
            raise ConfigError(f"config {path}: durability must be 'batched' or 'strict'")
        for name in tables:
            if not isinstance(raw.get(name, {}), dict):
                raise ConfigError(f"config {path}: [{name}] must be a table")
        store = raw.get("store")
        if store is not None and not isinstance(store, str):
            raise ConfigError(f"config {path}: store must be a string")
        return cls(
            store=store, durability=durability, **{name: raw.get(name, {}) for name in tables}
        )
