"""mcp-notary: mandatory, redacted, tamper-evident audit logging for MCP servers.

Embedding: `mcp_notary.install(server)` audits an `mcp` 2.x `MCPServer`/`Server` or a FastMCP
server in-process (see docs/middleware.md).
"""

from __future__ import annotations

from typing import Any

__all__ = ["install"]


def install(
    server: Any,
    *,
    store: str | None = None,
    recorder: Any = None,
    server_name: str | None = None,
    config_path: str | None = None,
) -> Any:
    """Audit every message `server` handles. `server` is an `mcp` 2.x `MCPServer` or low-level
    `Server`, or a `fastmcp.FastMCP`. Events go to `recorder` if given (anything with the
    `AuditRecorder.record` signature), else to a new `AuditRecorder` on `store` (default: the
    configured store), started now and closed at interpreter exit. Returns the middleware."""
    # Imported on use, so `import mcp_notary` stays cheap for the CLI and the read side.
    from mcp_notary.capture.middleware import attach
    from mcp_notary.recorder import recorder_for_server

    sink = recorder or recorder_for_server(server, store, server_name, config_path)
    return attach(server, sink)
