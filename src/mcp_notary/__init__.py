"""mcp-notary."""
