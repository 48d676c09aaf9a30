"""Compliance templates as data: each ``*.toml`` here is one template. Loading, validation,
combination and the generated ``mcp-notary.toml`` live in this module."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from mcp_notary.errors import ConfigError
from mcp_notary.lifecycle.policy import days_text, parse_days
from mcp_notary.redact.settings import RedactionPolicy

__all__ = [
    "CheckSpec",
    "Retention",
    "Template",
    "combine",
    "load_template",
    "parse_days",
    "render_config",
    "template_names",
]

_TOP = frozenset({"template", "capture", "redaction", "retention", "access", "checks"})
_VERBOSITY_ORDER = ("full", "summary", "digest")  # later is stricter


@dataclass(frozen=True)
class CheckSpec:
    """One clause mapped to one automated check: ``check`` names a function in the registry,
    ``params`` are its parameters, ``query`` the text of the decision (shown in the report)."""

    clause: str
    title: str
    check: str
    params: Mapping[str, Any] = field(default_factory=dict)
    query: str = ""


@dataclass(frozen=True)
class Retention:
    hot_days: int | None = None
    total_days: int | None = None
    payload_days: int | None = None
    basis: str = ""


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    framework_version: str
    capture: Mapping[str, Any]
    redaction: Mapping[str, Any]
    retention: Retention
    access: Mapping[str, Any]
    checks: tuple[CheckSpec, ...]

    @property
    def review_cadence_days(self) -> int | None:
        return parse_days(self.access.get("review_cadence"), f"{self.name} [access]")


def template_names() -> list[str]:
    """Names of the templates shipped in the package."""
    folder = resources.files(__name__)
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def _table(raw: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: [{name}] must be a table")
    return value


def parse_template(raw: Mapping[str, Any], where: str) -> Template:
    """Validate one template's data (pure)."""
    from mcp_notary.compliance.checks import CHECKS

    unknown = sorted(set(raw) - _TOP)
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)}")
    meta = _table(raw, "template", where)
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: [template] name is required")
    redaction = _table(raw, "redaction", where)
    RedactionPolicy.from_mapping(redaction)  # the template's redaction must be a valid overlay
    ret = _table(raw, "retention", where)
    retention = Retention(
        parse_days(ret.get("hot"), f"{where} [retention] hot"),
        parse_days(ret.get("total"), f"{where} [retention] total"),
        parse_days(ret.get("payload"), f"{where} [retention] payload"),
        str(ret.get("basis", "")),
    )
    checks_raw = raw.get("checks", [])
    if not isinstance(checks_raw, list) or not checks_raw:
        raise ConfigError(f"{where}: at least one [[checks]] entry is required")
    checks: list[CheckSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(checks_raw):
        at = f"{where} [[checks]] #{i + 1}"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{at}: must be a table")
        clause, check = item.get("clause"), item.get("check")
        if not isinstance(clause, str) or not clause:
            raise ConfigError(f"{at}: clause is required")
        if clause in seen:
            raise ConfigError(f"{at}: clause {clause!r} is listed twice")
        seen.add(clause)
        if check not in CHECKS:
            raise ConfigError(f"{at}: unknown check {check!r}; known: {', '.join(sorted(CHECKS))}")
        params = item.get("params", {})
        if not isinstance(params, Mapping):
            raise ConfigError(f"{at}: params must be a table")
        checks.append(
            CheckSpec(
                clause,
                str(item.get("title", "")),
                check,
                dict(params),
                str(item.get("query", "")).strip(),
            )
        )
    access = _table(raw, "access", where)
    parse_days(access.get("review_cadence"), f"{where} [access] review_cadence")
    return Template(
        name=name,
        title=str(meta.get("title", name)),
        framework_version=str(meta.get("version", "")),
        capture=dict(_table(raw, "capture", where)),
        redaction=dict(redaction),
        retention=retention,
        access=dict(access),
        checks=tuple(checks),
    )


def load_template(name: str) -> Template:
    """A shipped template by name (``pci-dss``, ``hipaa``, ...). ConfigError if unknown."""
    names = template_names()
    if name not in names:
        raise ConfigError(f"unknown compliance template {name!r}; choose from {', '.join(names)}")
    text = resources.files(__name__).joinpath(f"{name}.toml").read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # a packaging bug, not a user error
        raise ConfigError(f"template {name} is not valid TOML: {exc}") from exc
    return parse_template(raw, f"template {name}")


def load_templates(names: Sequence[str]) -> list[Template]:
    """Templates named in a comma-separated list or a sequence, deduplicated, in order."""
    wanted: list[str] = []
    for item in names:
        for part in item.split(","):
            part = part.strip()
            if part and part not in wanted:
                wanted.append(part)
    if not wanted:
        raise ConfigError("name at least one compliance template")
    return [load_template(n) for n in wanted]


def _longest(values: Sequence[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _shortest(values: Sequence[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _union(lists: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for items in lists:
        for item in items or []:
            if item not in out:
                out.append(item)
    return out


@dataclass(frozen=True)
class Combined:
    """Several templates merged: the strictest of each setting."""

    templates: tuple[Template, ...]
    capture: dict[str, Any]
    redaction: dict[str, Any]
    retention: Retention
    access: dict[str, Any]


def combine(templates: Sequence[Template]) -> Combined:
    """Merge templates (pure): longest hot and total retention, shortest payload TTL, union of
    mandatory capture fields, sensitive pointers and required roles, the strictest verbosity
    and durability, the shortest review cadence. A detector rule stays disabled only if every
    template disables it: one template's business data is another's identifier."""
    if not templates:
        raise ConfigError("name at least one compliance template")
    caps = [t.capture for t in templates]
    capture: dict[str, Any] = {
        "mandatory": _union([c.get("mandatory", []) for c in caps]),
        "durability": "strict" if any(c.get("durability") == "strict" for c in caps) else "batched",
    }
    reds = [t.redaction for t in templates]
    redaction: dict[str, Any] = {}
    verbosities = [r["verbosity"] for r in reds if "verbosity" in r]
    if verbosities:
        redaction["verbosity"] = max(verbosities, key=_VERBOSITY_ORDER.index)
    for op in ("sensitive", "hash", "drop"):
        merged = _union([r.get(op, []) for r in reds])
        if merged:
            redaction[op] = merged
    disabled = [set(r.get("disable_rules", [])) for r in reds]
    both = set.intersection(*disabled) if disabled else set()
    if both:
        redaction["disable_rules"] = sorted(both)
    retention = Retention(
        _longest([t.retention.hot_days for t in templates]),
        _longest([t.retention.total_days for t in templates]),
        _shortest([t.retention.payload_days for t in templates]),
        "; ".join(f"{t.name}: {t.retention.basis}" for t in templates if t.retention.basis),
    )
    cadences = [t.review_cadence_days for t in templates]
    access: dict[str, Any] = {
        "required_roles": _union([t.access.get("required_roles", []) for t in templates]),
        "separate_roles": _union([t.access.get("separate_roles", []) for t in templates]),
    }
    cadence = _shortest(cadences)
    if cadence is not None:
        access["review_cadence"] = days_text(cadence)
    return Combined(tuple(templates), capture, redaction, retention, access)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        if not value:
            return "[]"
        if all(not isinstance(v, list) for v in value) and len(value) <= 3:
            return "[" + ", ".join(_toml_value(v) for v in value) + "]"
        return "[\n" + "".join(f"  {_toml_value(v)},\n" for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def render_config(combined: Combined, *, store: str | None = None) -> str:
    """A commented mcp-notary.toml for the combined templates. `NotaryConfig.load` reads it."""
    names = [t.name for t in combined.templates]
    lines = [
        f"# mcp-notary configuration from compliance template(s): {', '.join(names)}",
        "# Generated by `mcp-notary init`. Settings combine the templates: longest retention,",
        "# shortest payload TTL, union of mandatory fields and sensitive fields, strictest",
        "# verbosity. Review every value against your own assessment; a template is a start,",
        "# not a certification.",
        "#",
    ]
    for t in combined.templates:
        lines.append(f"#   {t.name}: {t.title}")
    lines.append("")
    if store:
        lines += [
            "# The audit store (a SQLite file path or sqlite:///path).",
            f"store = {_toml_value(store)}",
            "",
        ]
    durability = combined.capture["durability"]
    lines += [
        "# strict: a request is forwarded only once its record is durable (no unaudited call).",
        f"durability = {_toml_value(durability)}",
        "",
        "[compliance]",
        "# Templates `mcp-notary report` uses when --template is not given.",
        f"templates = {_toml_value(names)}",
        "",
        "[capture]",
        "# Fields every call event must carry; `mcp-notary report` checks completeness.",
        f"mandatory = {_toml_value(combined.capture['mandatory'])}",
        "",
        "[redaction]",
        "# The [redaction] table of docs/redaction.md. Detectors (secrets, PAN as BIN + last",
        "# four, SSN, e-mail, phone, IBAN, ...) always run; these pointers add fields that no",
        "# detector can recognise by shape.",
    ]
    for key in ("verbosity", "sensitive", "hash", "drop", "disable_rules"):
        if key in combined.redaction:
            lines.append(f"{key} = {_toml_value(combined.redaction[key])}")
    r = combined.retention
    lines += [
        "",
        "[retention]",
        "# Applied by `mcp-notary retention apply` (or `proxy --retention-every HOURS`): bodies",
        "# leave the store after `hot` (to the archive, if one is set), everything after",
        "# `total`; payloads are sealed under day keys destroyed after `payload`. Legal holds",
        "# (`mcp-notary hold place`) keep what they match. See docs/lifecycle.md.",
    ]
    if r.basis:
        lines.append(f"# Basis: {r.basis}")
    lines += [
        f"hot = {_toml_value(days_text(r.hot_days))}      # searchable",
        f"total = {_toml_value(days_text(r.total_days))}    # longest of the templates",
        f"payload = {_toml_value(days_text(r.payload_days))}  # shortest payload TTL ('' = none)",
        '# archive = "/srv/mcp-notary-archive"  # or "s3://bucket/prefix?lock=compliance"',
        "",
        "[access]",
        "# Roles someone must hold, pairs of roles nobody may hold together (segregation of",
        "# duties), and how often grants are reviewed (`mcp-notary access list --json`).",
        f"required_roles = {_toml_value(combined.access['required_roles'])}",
        f"separate_roles = {_toml_value(combined.access['separate_roles'])}",
    ]
    if "review_cadence" in combined.access:
        lines.append(f"review_cadence = {_toml_value(combined.access['review_cadence'])}")
    return "\n".join(lines) + "\n"
