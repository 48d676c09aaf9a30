"""A tiny mounted filesystem that a test can fill up (needs root: a 2 MiB tmpfs, else a 4 MiB
ext4 loop file; the test is skipped if neither is allowed)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _run(*argv: str) -> bool:
    return subprocess.run(argv, capture_output=True, timeout=60).returncode == 0


@contextlib.contextmanager
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A mounted, tiny filesystem; always unmounted afterwards."""
    mountpoint = tmp_path / "fs"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mounted = _run("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint))
    if not mounted:
        image = tmp_path / "fs.img"
        mounted = (
            _run("truncate", "-s", "4M", str(image))
            and _run("mkfs.ext4", "-q", str(image))
            and _run("mount", "-o", "loop", str(image), str(mountpoint))
        )
    if not mounted:
        pytest.skip("this sandbox allows neither a tmpfs nor a loop mount")
    try:
        yield mountpoint
    finally:
        if not _run("umount", str(mountpoint)):
            _run("umount", "-l", str(mountpoint))


def fill(directory: Path) -> Path:
    """Write a filler file until the filesystem refuses (ENOSPC); return it."""
    filler = directory / "filler"
    chunk = b"\0" * 4096
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
        # Take the last partial block too.
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0") == 1:
                pass
    finally:
        os.close(fd)
    return filler
