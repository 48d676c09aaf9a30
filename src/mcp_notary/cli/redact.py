"""`mcp-notary redact`: show what the redaction policy does to a payload, before it is deployed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from mcp_notary.config import NotaryConfig
from mcp_notary.errors import ConfigError
from mcp_notary.redact.policy import PolicyRedactor, RedactionPolicy
from mcp_notary.redact.tokens import load_or_create_key


def _tools_from_schema(path: Path, tool: str | None) -> list[dict[str, Any]]:
    """A tools/list result, a list of tools, or one tool's inputSchema (named by --tool)."""
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read schema {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"schema {path} is not JSON: {exc}") from exc
    if isinstance(doc, dict) and isinstance(doc.get("result"), dict):
        doc = doc["result"]  # a whole JSON-RPC response
    if isinstance(doc, dict) and isinstance(doc.get("tools"), list):
        return [t for t in doc["tools"] if isinstance(t, dict)]
    if isinstance(doc, list):
        return [t for t in doc if isinstance(t, dict)]
    if isinstance(doc, dict):
        if tool is None:
            raise ConfigError("--schema with a single inputSchema needs --tool NAME")
        return [{"name": tool, "inputSchema": doc}]
    raise ConfigError(f"schema {path}: expected an inputSchema or a tools/list result")


@click.command("redact")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="mcp-notary.toml")
@click.option("--server", help="Server name, for per-server settings in [redaction.servers].")
@click.option("--tool", help="Tool name: the input is that tool's arguments.")
@click.option(
    "--schema",
    "schema_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON: a tool's inputSchema (with --tool), or a tools/list result.",
)
@click.option(
    "--key-file",
    envvar="MCP_NOTARY_REDACTION_KEY_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Redaction key (0600; created on first use). Use the proxy's key to get its tokens. "
    "[env MCP_NOTARY_REDACTION_KEY_FILE; default: redaction.key in the per-user data directory]",
)
@click.option(
    "--at",
    "pointer",
    default="/params/arguments",
    show_default=True,
    help="Where in an MCP message the input sits, for field rules: /params/arguments, "
    "/result/structuredContent, /params ...",
)
def redact_command(
    config_path: str | None,
    server: str | None,
    tool: str | None,
    schema_path: Path | None,
    key_file: Path | None,
    pointer: str,
) -> None:
    """Redact a JSON document or plain text read from stdin; print it and the manifest.

    The output is one JSON object: `redacted` (the input as it would be stored), `manifest`
    (what was redacted, where, by which rule; never the value) and `key_id` (which key made
    the tokens).
    """
    config = NotaryConfig.load(config_path)
    policy = RedactionPolicy.from_mapping(config.redaction)
    key = load_or_create_key(key_file or policy.key_file)
    redactor = PolicyRedactor(policy, key)
    if schema_path is not None:
        tools = _tools_from_schema(schema_path, tool)
        redactor.observe_tools(server, tools)
        if tool is None and len(tools) == 1 and isinstance(tools[0].get("name"), str):
            tool = tools[0]["name"]
    text = sys.stdin.read()
    try:
        payload: Any = json.loads(text)
    except ValueError:
        payload = text.removesuffix("\n")  # plain text
    result = redactor.redact_payload(payload, server=server, tool=tool, at=pointer)
    out = {
        "redacted": result.value,
        "manifest": [f.to_dict() for f in result.fields],
        "key_id": redactor.key_id,
    }
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))
