"""mcp-notary: mandatory, redacted, tamper-evident audit logging for MCP servers.

Embedding: `mcp_notary.install(server)` audits an `mcp` 2.x `MCPServer`/`Server` or a FastMCP
server in-process (see docs/middleware.md).
"""

from __future__ import annotations

from typing import Any

__all__ = ["install"]


def install(server: Any, **options: Any) -> Any:
    """Audit every message `server` handles; see `mcp_notary.capture.middleware.install`."""
    # Imported on use, so `import mcp_notary` stays cheap for the CLI and the read side.
    from mcp_notary.capture.middleware import install as _install

    return _install(server, **options)
