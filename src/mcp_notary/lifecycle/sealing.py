"""Sealing payloads under keys that can be destroyed (crypto-shredding). Pure: values and keys
in, envelopes out, and back.

The fields that carry what a call said and returned (`arguments`, `response_summary`, the
error's message and data) are replaced, after redaction and before canonicalisation, by an
envelope ``{"$sealed": {"alg", "keys", "nonce", "ct"}}``: AES-256-GCM of the field's canonical
JSON under a key derived (HKDF) from every named key, bound to the event and the field by its
associated data so an envelope cannot be moved to another event. The keys are a data subject's
key (erased on request) and/or the key of the event's day (destroyed when the payload period
ends); destroying any one leaves the envelope unopenable. The chain hashes the envelope.
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
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mcp_notary.errors import ConfigError
from mcp_notary.events.model import AuditEvent, EventDraft

__all__ = [
    "ERASED",
    "PAYLOAD_KEY_PREFIX",
    "SEALED",
    "SubjectRule",
    "has_payload",
    "open_body",
    "payload_key_id",
    "rules_from_config",
    "seal_event",
    "subject_of",
]

SEALED = "$sealed"
ERASED = "$erased"
_ALG = "A256GCM"


def _aad(event_id: str, field: str, key_ids: Sequence[str]) -> bytes:
    return f"mcp-notary/sealed/1\n{event_id}\n{field}\n{','.join(key_ids)}".encode()


def data_key(key_ids: Sequence[str], keys: Sequence[bytes]) -> bytes:
    """The AES-256 key of an envelope sealed under all of `keys` (named `key_ids`)."""
    info = b"mcp-notary/sealed/1 " + ",".join(key_ids).encode()
    return HKDF(SHA256(), 32, salt=None, info=info).derive(b"".join(keys))


def seal_value(
    value: Any, key: bytes, key_ids: Sequence[str], event_id: str, field: str
) -> dict[str, Any]:
    nonce = secrets.token_bytes(12)
    ct = AESGCM(key).encrypt(nonce, rfc8785.dumps(value), _aad(event_id, field, key_ids))
    return {
        SEALED: {
            "alg": _ALG,
            "keys": list(key_ids),
            "nonce": base64.b64encode(nonce).decode(),
            "ct": base64.b64encode(ct).decode(),
        }
    }


def open_value(
    envelope: Mapping[str, Any], keys: Callable[[str], bytes | None], event_id: str, field: str
) -> Any:
    """The sealed value, or ``{"$erased": [key ids]}`` naming the keys that are gone (a key
    that no longer opens it, such as a subject's new key after an erasure, counts as gone)."""
    sealed = envelope[SEALED]
    key_ids = [str(k) for k in sealed.get("keys", [])]
    found = [keys(k) for k in key_ids]
    gone = [k for k, v in zip(key_ids, found, strict=True) if v is None]
    if not gone and key_ids:
        try:
            plain = AESGCM(data_key(key_ids, [v for v in found if v is not None])).decrypt(
                base64.b64decode(sealed["nonce"]),
                base64.b64decode(sealed["ct"]),
                _aad(event_id, field, key_ids),
            )
            return json.loads(plain)
        except (InvalidTag, ValueError):
            gone = key_ids
    return {ERASED: gone}


def seal_event(event: AuditEvent, key_ids: Sequence[str], keys: Sequence[bytes]) -> AuditEvent:
    """`event` with its payload fields sealed under all of `keys` (named `key_ids`)."""
    key = data_key(key_ids, keys)

    def seal(value: Any, field: str) -> Any:
        return None if value is None else seal_value(value, key, key_ids, event.event_id, field)

    error = event.error
    if error is not None:
        error = {
            **error,
            **{k: seal(error.get(k), f"error.{k}") for k in ("message", "data") if k in error},
        }
    details = {**(event.details or {}), "sealed_under": list(key_ids)}
    return replace(
        event,
        arguments=seal(event.arguments, "arguments"),
        response_summary=seal(event.response_summary, "response_summary"),
        error=error,
        details=details,
    )


def has_payload(event: AuditEvent) -> bool:
    error = event.error or {}
    return any(
        v is not None
        for v in (event.arguments, event.response_summary, error.get("message"), error.get("data"))
    )


PAYLOAD_KEY_PREFIX = "payload_"


def payload_key_id(timestamp: str) -> str:
    """The key of one UTC day's payloads: ``payload_2026-11-24``."""
    return f"{PAYLOAD_KEY_PREFIX}{timestamp[:10]}"


def open_body(body: Mapping[str, Any], keys: Callable[[str], bytes | None]) -> dict[str, Any]:
    """A stored event with every sealed field opened (or marked erased)."""
    event_id = str(body.get("event_id", ""))

    def opened(value: Any, field: str) -> Any:
        if isinstance(value, dict) and SEALED in value:
            return open_value(value, keys, event_id, field)
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
