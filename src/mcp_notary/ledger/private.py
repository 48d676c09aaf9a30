"""Files and directories only their owner can open: the store and its WAL, the spool, the
signing key, export cursors and reports all hold (or lead to) the trail, and the roles and the
read audit mean nothing if any local account can copy the file.

The mode is set when a file or directory is created, never afterwards, so there is no window
in which it follows the umask (022 makes a plain `open` 0644 and `mkdir` 0755). An existing
file is not changed behind its owner's back: `exposure` tells the caller, who warns or refuses.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from pathlib import Path

__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "exposure",
    "make_private_dir",
    "open_private",
    "replace_private",
]

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private_dir(path: Path) -> None:
    """Create `path` and each missing parent with mode 0700 (`Path.mkdir(parents=True)` gives
    the parents the umask's mode). A directory that exists is left as it is."""
    missing: list[Path] = []
    at = path
    while not at.exists() and at != at.parent:
        missing.append(at)
        at = at.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.mkdir(directory, PRIVATE_DIR)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a directory")


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_APPEND) -> int:
    """A descriptor for `path`, created 0600 if it does not exist (an existing file keeps
    its mode). `flags` are `os.open`'s; `O_CREAT` is added."""
    return os.open(path, flags | os.O_CREAT, PRIVATE_FILE)


def replace_private(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically, as a file that is 0600 from its creation: a new
    temporary file beside it (never an existing one), fsync'd, then renamed over `path`."""
    make_private_dir(path.parent)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def exposure(*paths: Path) -> list[tuple[Path, int]]:
    """Each existing regular file among `paths` that group or others may access, with its mode
    (permission bits). Empty on systems without POSIX modes."""
    if os.name != "posix":
        return []
    found: list[tuple[Path, int]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
            found.append((path, stat.S_IMODE(st.st_mode)))
    return found
