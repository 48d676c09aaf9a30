"""Principals of local (stdio) connections: the OS user that launched `wrap`, or the one a
launcher names with `--principal`."""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path
from typing import Any

from mcp_notary.identity.principal import Principal


def _process_command(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part) or None


def os_principal() -> Principal:
    """The OS account running this process: an identity as strong as the host's accounts."""
    return Principal(id=_user(), type="user", source="os")


def configured_principal(principal_id: str) -> Principal:
    """A principal named by the launcher (`--principal`): it knows the human; we do not."""
    return Principal(id=principal_id, type="user", source="config")


def launch_facts() -> dict[str, Any]:
    """Who and what started this process, recorded once per stream (in its `started` event)
    rather than in every event: OS user and uid, host, and the parent process (the MCP client)."""
    parent = os.getppid()
    facts: dict[str, Any] = {
        "os_user": _user(),
        "uid": os.getuid(),
        "host": socket.gethostname(),
        "ppid": parent,
    }
    command = _process_command(parent)
    if command:
        # Whole: redaction cuts it to size after scanning it, never before (a token cut in
        # half is no longer one a rule recognises).
        facts["parent_command"] = command
    return facts


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
