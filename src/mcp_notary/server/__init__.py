"""The HTTP read API and web console (`mcp-notary serve`)."""

from mcp_notary.server.app import create_app
from mcp_notary.server.service import ReadService, ServerSettings

__all__ = ["ReadService", "ServerSettings", "create_app"]
