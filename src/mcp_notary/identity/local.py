"""Principals of local (stdio) connections: the OS user that launched `wrap`, or the one a
launcher names with `--principal`."""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path

from mcp_notary.events.model import Principal


def _process_command(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part) or None


def os_principal() -> Principal:
    """The OS account running this process, with the parent process (the MCP client) as
    context. An identity as strong as the host's own accounts."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    parent = os.getppid()
    details: dict[str, object] = {"uid": os.getuid(), "host": socket.gethostname(), "ppid": parent}
    command = _process_command(parent)
    if command:
        details["parent_command"] = command[:200]
    return Principal(id=user, type="user", source="os", details=details)


def configured_principal(principal_id: str) -> Principal:
    """A principal named by the launcher (`--principal`): it knows the human; we do not."""
    return Principal(id=principal_id, type="user", source="config", details={"os_user": _user()})


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
