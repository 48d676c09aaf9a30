"""`PolicyRedactor`: the `Redactor` (redact/api.py) that applies a `RedactionPolicy`.

It joins the pieces: the operator's settings (settings.py), the tools' schemas (schema.py),
the walk over payloads (walker.py), the detectors and the response summaries (summary.py).
`RedactionPolicy` is re-exported here, next to the redactor it configures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_notary.events.model import AuditEvent, ClientInfo, EventDraft, ServerInfo
from mcp_notary.redact.detectors import Detectors, default_detectors
from mcp_notary.redact.keynames import sensitive_key_kind
from mcp_notary.redact.pointer import LEVEL_SCHEMA, Action, Nodes, PathTrie, descend, parse
from mcp_notary.redact.schema import sensitive_paths
from mcp_notary.redact.settings import RedactionPolicy, Resolved
from mcp_notary.redact.summary import bounded, summarize
from mcp_notary.redact.tokens import RedactionKey, load_or_create_key
from mcp_notary.redact.walker import DETAILS, Mode, Scrubber, canonical, limited

__all__ = ["PolicyRedactor", "Redaction", "RedactionPolicy"]

ERROR_MESSAGE_CHARS = 1024


@dataclass(frozen=True)
class Redaction:
    """A redacted payload and its manifest (what `redact_payload` returns)."""

    value: Any
    fields: tuple[Any, ...]


class PolicyRedactor:
    """The `Redactor` (redact/api.py): schema-declared fields, operator overlays, detectors,
    keyed tokens. `finalize` does no I/O; only `from_config` reads the key file."""

    def __init__(
        self, policy: RedactionPolicy, key: RedactionKey, *, detectors: Detectors | None = None
    ) -> None:
        self.policy = policy
        self._key = key
        if detectors is None:
            detectors = (
                Detectors(disabled=policy.disabled_rules)
                if policy.disabled_rules
                else default_detectors()
            )
        self._detectors = detectors
        self._schemas: dict[tuple[str | None, str], tuple[list[Any], list[Any]]] = {}
        self._tries: dict[tuple[str | None, str | None, str | None], tuple[Resolved, Nodes]] = {}
        self._peer_cache: dict[
            Any, tuple[ClientInfo | None, ServerInfo | None, tuple[Any, ...]]
        ] = {}

    @classmethod
    def from_config(
        cls, policy: RedactionPolicy, *, key_file: str | Path | None = None
    ) -> PolicyRedactor:
        """Load (or create) the key named by `key_file`, the policy, or the default location."""
        return cls(policy, load_or_create_key(key_file or policy.key_file))

    @property
    def key_id(self) -> str:
        return self._key.key_id

    def use_key(self, key: RedactionKey) -> None:
        """Switch to a rotated key; tokens made from now on use it."""
        self._key = key

    # -- schemas -------------------------------------------------------------------------------

    def observe_tools(self, server: str | None, tools: list[dict[str, Any]]) -> None:
        """Remember each tool's schema-declared sensitive fields (tools/list may be paginated,
        so tools are merged, not replaced)."""
        for tool in tools if isinstance(tools, list) else []:
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                continue
            self._schemas[(server, tool["name"])] = (
                sensitive_paths(tool.get("inputSchema")),
                sensitive_paths(tool.get("outputSchema")),
            )
        self._tries.clear()

    def _settings(
        self, server: str | None, tool: str | None, prompt: str | None
    ) -> tuple[Resolved, Nodes]:
        cache_key = (server, tool, prompt)
        cached = self._tries.get(cache_key)
        if cached is not None:
            return cached
        resolved = self.policy.resolve(server, tool, prompt)
        root = PathTrie()
        empty = True
        if tool is not None:
            inputs, outputs = self._schemas.get((server, tool), ([], []))
            for path, rule in inputs:
                root.add(("params", "arguments", *path), Action("sensitive", rule, LEVEL_SCHEMA))
                empty = False
            for path, rule in outputs:
                root.add(
                    ("result", "structuredContent", *path), Action("sensitive", rule, LEVEL_SCHEMA)
                )
                empty = False
        for level, label, scope in resolved.layers:
            for op, pointers in scope.fields.items():
                kind = {"drop": "dropped", "hash": "hash"}.get(op, "sensitive")
                for segments in pointers:
                    root.add(segments, Action(op, f"overlay.{label}.{op}", level, kind))  # type: ignore[arg-type]
                    empty = False
        settings = (resolved, () if empty else (root,))
        if len(self._tries) > 4096:
            self._tries.clear()
        self._tries[cache_key] = settings
        return settings

    # -- finalize ------------------------------------------------------------------------------

    def finalize(self, draft: EventDraft) -> AuditEvent:
        server = draft.server.name if draft.server is not None else None
        prompt = draft.target if draft.method == "prompts/get" else None
        resolved, nodes = self._settings(server, draft.tool, prompt)
        scrub = Scrubber(self._detectors, self._key)

        arguments = self._arguments(scrub, draft, resolved, nodes)
        summary = summarize(
            scrub,
            draft.method,
            draft.raw_result,
            verbosity=resolved.verbosity,
            chars=resolved.summary_chars,
            nodes=descend(nodes, "result"),
            extra_nodes=_elicitation_nodes(draft),
            requested=draft.raw_params.get("requestedSchema")
            if draft.method == "elicitation/create" and isinstance(draft.raw_params, dict)
            else None,
        )
        error: dict[str, Any] | None = None
        if (
            draft.error_code is not None
            or draft.raw_error_message is not None
            or draft.raw_error_data is not None
        ):
            error = {"code": draft.error_code, "message": None}
            if draft.raw_error_message is not None:
                scrub.later(
                    error,
                    "message",
                    draft.raw_error_message,
                    "/error/message",
                    (),
                    limited(ERROR_MESSAGE_CHARS),
                )
            if draft.raw_error_data is not None:
                error["data"] = scrub.value(
                    draft.raw_error_data,
                    "/error/data",
                    descend(nodes, "error", "data"),
                    bounded(resolved.summary_chars),
                )
        # Everything else is queued too and scanned in the one flush below. Tool and method
        # names and JSON-RPC ids are chosen by whoever sent the message: scanned like the rest.
        loose: dict[str, Any] = {}
        if draft.target is not None:
            scrub.later(loose, "target", draft.target, "/target")
        jsonrpc_id = draft.jsonrpc_id
        if isinstance(jsonrpc_id, str):
            scrub.later(loose, "jsonrpc_id", jsonrpc_id, "/jsonrpc_id")
        elif isinstance(jsonrpc_id, int) and not isinstance(jsonrpc_id, bool):
            jsonrpc_id = scrub.number(jsonrpc_id, "/jsonrpc_id")
        # Names recur across events: scanned now, the clean ones remembered.
        tool = scrub.name(draft.tool, "/tool") if draft.tool is not None else None
        method = scrub.name(draft.method, "/method") if draft.method is not None else None
        details = draft.details
        if details:
            details = scrub.value(details, "/details", (), DETAILS)
        client, server_info = self._peers(scrub, draft.client, draft.server)
        scrub.flush()  # nothing queued may reach the event unscanned
        return AuditEvent(
            event_id=draft.event_id,
            timestamp=draft.timestamp,
            kind=draft.kind,
            principal=draft.principal,
            method=method,
            tool=tool,
            target=loose.get("target"),
            arguments=arguments,
            outcome=draft.outcome,
            response_summary=summary,
            sensitive_fields=scrub.fields,
            client=client,
            server=server_info,
            transport=draft.transport,
            direction=draft.direction,
            protocol_version=draft.protocol_version,
            jsonrpc_id=loose.get("jsonrpc_id", jsonrpc_id),
            duration_ms=draft.duration_ms,
            error=error,
            trace_id=draft.trace_id,
            parent_event_id=draft.parent_event_id,
            details=details,
        )

    def _peers(
        self, scrub: Scrubber, client: ClientInfo | None, server: ServerInfo | None
    ) -> tuple[ClientInfo | None, ServerInfo | None]:
        """Client info and server launch command, redacted. They are the same in every event of
        a connection, so the result is remembered (per key: tokens depend on it)."""
        command = tuple(server.command) if server is not None and server.command else None
        if client is None and command is None:
            return client, server
        cache_key = (
            self._key.key_id,
            (client.name, client.version) if client is not None else None,
            (server.name, server.version) if server is not None else None,
            command,
        )
        cached = self._peer_cache.get(cache_key)
        if cached is None:
            sub = scrub.child()
            loose: dict[str, Any] = {}
            if client is not None:
                for name in ("name", "version"):
                    value = getattr(client, name)
                    if isinstance(value, str):
                        sub.later(loose, name, value, f"/client/{name}")
            redacted = _argv(sub, list(command)) if command is not None else None
            sub.flush()
            if client is not None:
                client = ClientInfo(
                    loose.get("name", client.name), loose.get("version", client.version)
                )
            if server is not None and redacted is not None:
                server = ServerInfo(server.name, server.version, redacted)
            cached = (client, server, sub.fields)
            if len(self._peer_cache) >= 256:
                self._peer_cache.clear()
            self._peer_cache[cache_key] = cached
        for f in cached[2]:
            scrub.record(f.pointer, f.kind, f.rule, f.rule_version)
        return cached[0], cached[1]

    def _arguments(
        self, scrub: Scrubber, draft: EventDraft, resolved: Resolved, nodes: Nodes
    ) -> Any:
        params = draft.raw_params
        if params is None:
            return None
        if draft.method in ("tools/call", "prompts/get"):
            if not isinstance(params, dict) or params.get("arguments") is None:
                return None
            payload = params["arguments"]
            payload_nodes = descend(nodes, "params", "arguments")
        else:
            payload = params
            payload_nodes = descend(nodes, "params")
        if resolved.verbosity == "digest":
            if isinstance(payload, dict):
                payload = {k: v for k, v in payload.items() if k != "_meta"}
            data = canonical(payload).encode("utf-8", "surrogatepass")
            scrub.record("/arguments", "digest", "policy.verbosity.digest")
            return {"bytes": len(data), "digest": scrub.digest(data)}
        limit = resolved.argument_chars if resolved.verbosity == "summary" else None
        return scrub.value(payload, "/arguments", payload_nodes, limited(limit))

    # -- direct use (CLI, tests) ---------------------------------------------------------------

    def redact_payload(
        self,
        payload: Any,
        *,
        server: str | None = None,
        tool: str | None = None,
        at: str = "/params/arguments",
    ) -> Redaction:
        """Redact one JSON value (or text) as if found at pointer `at` of a message of `tool`
        on `server`: field rules for that place apply, then key names and detectors. Manifest
        pointers are rooted at `at`."""
        _resolved, nodes = self._settings(server, tool, None)
        scrub = Scrubber(self._detectors, self._key)
        value = scrub.value(payload, at, descend(nodes, *parse(at)), Mode())
        scrub.flush()
        return Redaction(value, scrub.fields)


def _elicitation_nodes(draft: EventDraft) -> Nodes:
    """Field rules for an elicitation answer, from the schema the request asked with."""
    if draft.method != "elicitation/create" or not isinstance(draft.raw_params, dict):
        return ()
    paths = sensitive_paths(draft.raw_params.get("requestedSchema"))
    if not paths:
        return ()
    root = PathTrie()
    for path, rule in paths:
        root.add(("content", *path), Action("sensitive", rule, LEVEL_SCHEMA))
    return (root,)


def _argv(scrub: Scrubber, argv: list[str]) -> list[str]:
    """A launch command: values after flags that name secrets (`--token X`) become tokens, and
    every other argument is queued for the detectors (`API_KEY=...`, URLs with passwords)."""
    out: list[str] = list(argv)
    secret_next = False
    for i, arg in enumerate(argv):
        pointer = f"/server/command/{i}"
        if not isinstance(arg, str):
            secret_next = False
            continue
        if secret_next:
            kind = sensitive_key_kind(argv[i - 1].lstrip("-")) or "secret"
            out[i] = scrub.token(arg, kind, f"key.{kind}", pointer)
            secret_next = False
            continue
        secret_next = (
            arg.startswith("-")
            and "=" not in arg
            and sensitive_key_kind(arg.lstrip("-")) is not None
        )
        scrub.later(out, i, arg, pointer)
    return out
