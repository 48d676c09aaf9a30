"""`mcp-notary redact`."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mcp_notary.cli.redact import redact_command


def run(tmp_path: Path, stdin: str, *args: str) -> dict[str, object]:
    result = CliRunner().invoke(
        redact_command, ["--key-file", str(tmp_path / "k"), *args], input=stdin
    )
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def test_plain_text(tmp_path: Path) -> None:
    out = run(tmp_path, "password=hunter2xyz and mail bob@example.com\n")
    assert "hunter2xyz" not in str(out["redacted"]) and "bob@example.com" not in str(
        out["redacted"]
    )
    assert [m["rule"] for m in out["manifest"]] == ["secret.assignment", "pii.email"]  # type: ignore[index]
    assert out["key_id"]
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600


def test_json_with_schema_and_config(tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps(
            {
                "tools": [
                    {
                        "name": "login",
                        "inputSchema": {
                            "type": "object",
                            "properties": {"code": {"writeOnly": True}},
                        },
                    }
                ]
            }
        )
    )
    config = tmp_path / "mcp-notary.toml"
    config.write_text('[redaction.servers.gh.tools.login]\ndrop = ["/params/arguments/debug"]\n')
    out = run(
        tmp_path,
        json.dumps({"code": "abc", "debug": "x", "ok": 1}),
        "--schema",
        str(schema),
        "--server",
        "gh",
        "--config",
        str(config),
    )
    redacted = out["redacted"]
    assert isinstance(redacted, dict)
    assert (
        redacted["code"].startswith("[REDACTED:sensitive:")
        and "debug" not in redacted
        and redacted["ok"] == 1
    )


def test_single_input_schema_needs_a_tool_name(tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"pin": {"format": "password"}}}))
    result = CliRunner().invoke(
        redact_command, ["--key-file", str(tmp_path / "k"), "--schema", str(schema)], input="{}"
    )
    assert result.exit_code != 0 and "--tool" in str(result.exception)
    out = run(tmp_path, '{"pin": "1234"}', "--schema", str(schema), "--tool", "t")
    assert out["redacted"] == {"pin": out["redacted"]["pin"]} and "1234" not in json.dumps(out)  # type: ignore[index]


def test_same_key_same_tokens(tmp_path: Path) -> None:
    a = run(tmp_path, "bob@example.com")
    b = run(tmp_path, "bob@example.com")
    assert a["redacted"] == b["redacted"]
