"""Sealing payloads under a data subject's key (crypto-shredding). Pure: values and keys in,
envelopes out, and back.

The fields that carry what a call said and returned (`arguments`, `response_summary`, the
error's message and data) are replaced, after redaction and before canonicalisation, by an
envelope ``{"$sealed": {"alg", "key", "nonce", "ct"}}``: AES-256-GCM of the field's canonical
JSON, bound to the event and the field by its associated data so an envelope cannot be moved
to another event. The chain hashes the envelope; destroying the key leaves it unopenable.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mcp_notary.errors import ConfigError
from mcp_notary.events.model import AuditEvent, EventDraft

__all__ = [
    "ERASED",
    "SEALED",
    "SubjectRule",
    "open_body",
    "rules_from_config",
    "seal_event",
    "subject_of",
]

SEALED = "$sealed"
ERASED = "$erased"
_ALG = "A256GCM"


def _aad(event_id: str, field: str, key_id: str) -> bytes:
    return f"mcp-notary/sealed/1\n{event_id}\n{field}\n{key_id}".encode()


def seal_value(value: Any, key: bytes, key_id: str, event_id: str, field: str) -> dict[str, Any]:
    nonce = secrets.token_bytes(12)
    ct = AESGCM(key).encrypt(nonce, rfc8785.dumps(value), _aad(event_id, field, key_id))
    return {
        SEALED: {
            "alg": _ALG,
            "key": key_id,
            "nonce": base64.b64encode(nonce).decode(),
            "ct": base64.b64encode(ct).decode(),
        }
    }


def open_value(envelope: Mapping[str, Any], key: bytes | None, event_id: str, field: str) -> Any:
    """The sealed value, or ``{"$erased": key_id}`` when the key is gone (or is a newer key
    of the same subject, made after an erasure)."""
    sealed = envelope[SEALED]
    if key is not None:
        try:
            plain = AESGCM(key).decrypt(
                base64.b64decode(sealed["nonce"]),
                base64.b64decode(sealed["ct"]),
                _aad(event_id, field, sealed["key"]),
            )
            return json.loads(plain)
        except (InvalidTag, ValueError):
            pass
    return {ERASED: sealed["key"]}


def seal_event(event: AuditEvent, key_id: str, key: bytes) -> AuditEvent:
    """`event` with its payload fields sealed under the subject key `key_id`."""

    def seal(value: Any, field: str) -> Any:
        return None if value is None else seal_value(value, key, key_id, event.event_id, field)

    error = event.error
    if error is not None:
        error = {
            **error,
            **{k: seal(error.get(k), f"error.{k}") for k in ("message", "data") if k in error},
        }
    details = {**(event.details or {}), "subject_key": key_id}
    return replace(
        event,
        arguments=seal(event.arguments, "arguments"),
        response_summary=seal(event.response_summary, "response_summary"),
        error=error,
        details=details,
    )


def open_body(body: Mapping[str, Any], keys: Callable[[str], bytes | None]) -> dict[str, Any]:
    """A stored event with every sealed field opened (or marked erased)."""
    event_id = str(body.get("event_id", ""))

    def opened(value: Any, field: str) -> Any:
        if isinstance(value, dict) and SEALED in value:
            return open_value(value, keys(value[SEALED]["key"]), event_id, field)
        return value

    out = dict(body)
    for field in ("arguments", "response_summary"):
        out[field] = opened(body.get(field), field)
    error = body.get("error")
    if isinstance(error, dict):
        out["error"] = {k: opened(v, f"error.{k}") for k, v in error.items()}
    return out


@dataclass(frozen=True)
class SubjectRule:
    """Whose personal data a call carries: the value at JSON pointer `argument` of a tool's
    arguments, or (``principal``) the caller. `tool` None: every tool."""

    tool: str | None = None
    argument: str | None = None
    principal: bool = False


def rules_from_config(table: Mapping[str, Any]) -> tuple[SubjectRule, ...]:
    """The `[erasure]` table: ``subjects = [{tool = "...", argument = "/patient_id"},
    {principal = true}]``."""
    unknown = sorted(set(table) - {"subjects"})
    if unknown:
        raise ConfigError(f"[erasure]: unknown setting(s) {', '.join(unknown)}")
    raw = table.get("subjects", [])
    if not isinstance(raw, list):
        raise ConfigError("[erasure].subjects must be an array of tables")
    rules = []
    for i, entry in enumerate(raw):
        where = f"[erasure].subjects[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"tool", "argument", "principal"}:
            raise ConfigError(f"{where}: want keys tool, argument (a JSON pointer), principal")
        argument = entry.get("argument")
        principal = entry.get("principal", False)
        if (argument is None) == (principal is not True):
            raise ConfigError(f"{where}: give exactly one of argument or principal = true")
        if argument is not None and (not isinstance(argument, str) or not argument.startswith("/")):
            raise ConfigError(f"{where}: argument must be a JSON pointer such as /patient_id")
        tool = entry.get("tool")
        if tool is not None and not isinstance(tool, str):
            raise ConfigError(f"{where}: tool must be a string")
        rules.append(SubjectRule(tool, argument, principal is True))
    return tuple(rules)


def _pointer(value: Any, pointer: str) -> Any:
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict):
            value = value.get(token)
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            return None
    return value


def subject_of(draft: EventDraft, rules: Sequence[SubjectRule]) -> str | None:
    """The data subject of a call, from its raw arguments (read before redaction masks them),
    by the first rule that finds one."""
    params = draft.raw_params if isinstance(draft.raw_params, dict) else {}
    arguments = params.get("arguments")
    for rule in rules:
        if rule.tool is not None and rule.tool != draft.tool:
            continue
        if rule.principal:
            if draft.principal.id not in ("", "unknown"):
                return draft.principal.id
            continue
        found = _pointer(arguments, rule.argument or "")
        if isinstance(found, (str, int)) and not isinstance(found, bool) and str(found):
            return str(found)
    return None
