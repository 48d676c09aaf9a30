"""The operator's redaction settings: the `[redaction]` table of mcp-notary.toml, validated.

Pure data. Field rules are JSON Pointers into the MCP message: `/params/...` for the request
(`/params/arguments/...` for tool and prompt arguments), `/result/...` for the result,
`/error/data/...` for error data; `*` matches any one member or index. The format is
documented in docs/redaction.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mcp_notary.errors import ConfigError
from mcp_notary.redact.pointer import LEVEL_GLOBAL, LEVEL_SCOPE, LEVEL_SERVER, parse
from mcp_notary.redact.rules import DEFAULT_RULES

Verbosity = Literal["summary", "full", "digest"]
VERBOSITIES: tuple[str, ...] = ("summary", "full", "digest")
FIELD_OPS: tuple[str, ...] = ("sensitive", "allow", "drop", "hash")
_POINTER_ROOTS = ("params", "result", "error")
_SCOPE_KEYS = frozenset(("verbosity", "summary_chars", "argument_chars", *FIELD_OPS))
_SERVER_KEYS = _SCOPE_KEYS | {"tools", "prompts"}
_TOP_KEYS = _SCOPE_KEYS | {"servers", "key_file", "disable_rules"}

DEFAULT_SUMMARY_CHARS = 200
DEFAULT_ARGUMENT_CHARS = 4096


@dataclass(frozen=True)
class Scope:
    """Settings at one level (everything, one server, one tool or prompt). None = inherit."""

    verbosity: Verbosity | None = None
    summary_chars: int | None = None
    argument_chars: int | None = None
    fields: Mapping[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerPolicy:
    scope: Scope = Scope()
    tools: Mapping[str, Scope] = field(default_factory=dict)
    prompts: Mapping[str, Scope] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolved:
    """The effective settings for one (server, tool/prompt)."""

    verbosity: Verbosity
    summary_chars: int
    argument_chars: int
    layers: tuple[tuple[int, str, Scope], ...]  # (level, label, scope), broadest first


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"[{where}] {message}")


def _scope(where: str, data: Any, allowed: frozenset[str]) -> Scope:
    if not isinstance(data, Mapping):
        raise _fail(where, f"must be a table, got {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _fail(
            where, f"unknown setting(s) {', '.join(unknown)}; expected {', '.join(sorted(allowed))}"
        )
    verbosity = data.get("verbosity")
    if verbosity is not None and verbosity not in VERBOSITIES:
        raise _fail(where, f"verbosity must be one of {', '.join(VERBOSITIES)}, got {verbosity!r}")
    sizes: dict[str, int | None] = {}
    for name in ("summary_chars", "argument_chars"):
        value = data.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise _fail(where, f"{name} must be a positive integer, got {value!r}")
        sizes[name] = value
    fields: dict[str, tuple[tuple[str, ...], ...]] = {}
    for op in FIELD_OPS:
        pointers = data.get(op, [])
        if not isinstance(pointers, list) or not all(isinstance(p, str) for p in pointers):
            raise _fail(where, f"{op} must be a list of JSON Pointers (strings)")
        parsed = []
        for pointer in pointers:
            try:
                segments = parse(pointer)
            except ConfigError as exc:
                raise _fail(where, f"{op}: {exc}") from None
            if not segments or segments[0] not in _POINTER_ROOTS:
                raise _fail(
                    where,
                    f"{op}: pointer {pointer!r} must start with /params, /result or /error "
                    "(e.g. /params/arguments/api_key)",
                )
            parsed.append(segments)
        fields[op] = tuple(parsed)
    return Scope(verbosity, sizes["summary_chars"], sizes["argument_chars"], fields)


def _named_scopes(where: str, data: Any) -> dict[str, Scope]:
    if not isinstance(data, Mapping):
        raise _fail(where, "must be a table of names")
    return {str(name): _scope(f"{where}.{name}", body, _SCOPE_KEYS) for name, body in data.items()}


@dataclass(frozen=True)
class RedactionPolicy:
    """Operator redaction settings. Pure data; build with `from_mapping`."""

    defaults: Scope = Scope("summary", DEFAULT_SUMMARY_CHARS, DEFAULT_ARGUMENT_CHARS)
    servers: Mapping[str, ServerPolicy] = field(default_factory=dict)
    key_file: Path | None = None
    disabled_rules: frozenset[str] = frozenset()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> RedactionPolicy:
        """Validate the `[redaction]` table; ConfigError names the offending setting."""
        data = data or {}
        top = _scope("redaction", data, _TOP_KEYS)
        defaults = Scope(
            top.verbosity or "summary",
            top.summary_chars or DEFAULT_SUMMARY_CHARS,
            top.argument_chars or DEFAULT_ARGUMENT_CHARS,
            top.fields,
        )
        key_file = data.get("key_file")
        if key_file is not None and not isinstance(key_file, str):
            raise _fail("redaction", "key_file must be a path (string)")
        disabled = data.get("disable_rules", [])
        known = {r.id for r in DEFAULT_RULES if not r.skip}
        if not isinstance(disabled, list) or not all(isinstance(r, str) for r in disabled):
            raise _fail("redaction", "disable_rules must be a list of rule ids")
        unknown = sorted(set(disabled) - known)
        if unknown:
            raise _fail("redaction", f"disable_rules: unknown rule id(s) {', '.join(unknown)}")
        servers_data = data.get("servers", {})
        if not isinstance(servers_data, Mapping):
            raise _fail("redaction.servers", "must be a table of server names")
        servers: dict[str, ServerPolicy] = {}
        for name, body in servers_data.items():
            where = f"redaction.servers.{name}"
            scope = _scope(where, body, _SERVER_KEYS)
            servers[str(name)] = ServerPolicy(
                scope,
                _named_scopes(f"{where}.tools", body.get("tools", {})),
                _named_scopes(f"{where}.prompts", body.get("prompts", {})),
            )
        return cls(
            defaults,
            servers,
            Path(key_file).expanduser() if key_file else None,
            frozenset(disabled),
        )

    def resolve(
        self, server: str | None, tool: str | None = None, prompt: str | None = None
    ) -> Resolved:
        """Effective settings: the most specific level that sets a value wins."""
        layers: list[tuple[int, str, Scope]] = [(LEVEL_GLOBAL, "global", self.defaults)]
        sp = self.servers.get(server) if server is not None else None
        if sp is not None:
            layers.append((LEVEL_SERVER, "server", sp.scope))
            if tool is not None and tool in sp.tools:
                layers.append((LEVEL_SCOPE, "tool", sp.tools[tool]))
            if prompt is not None and prompt in sp.prompts:
                layers.append((LEVEL_SCOPE, "prompt", sp.prompts[prompt]))

        def pick(attr: str) -> Any:
            for _level, _label, scope in reversed(layers):
                value = getattr(scope, attr)
                if value is not None:
                    return value
            return None

        return Resolved(
            pick("verbosity"), pick("summary_chars"), pick("argument_chars"), tuple(layers)
        )
