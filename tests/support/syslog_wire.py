"""The RFC 5424 shape mcp-notary's syslog export must have (used by the export tests)."""

from __future__ import annotations

import re

SYSLOG = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) mcp-notary - (?P<msgid>\S+) "
    rb"(?P<sd>\[mcpNotary@32473 (?:\w+=\"(?:[^\"\\\]]|\\.)*\" ?)+\]) \xef\xbb\xbf(?P<msg>.*)$",
    re.S,
)
