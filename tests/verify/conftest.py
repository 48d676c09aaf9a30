"""One real trail for the verifier suites (built once per session, copied per test)."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_notary import Notary
from trail import Trail, build_trail


@pytest.fixture(scope="session")
def trail(notary: Notary, time_cmd: list[str], tmp_path_factory: pytest.TempPathFactory) -> Trail:
    return build_trail(notary, time_cmd, tmp_path_factory.mktemp("trail"), calls=1000)


@pytest.fixture
def copy(trail: Trail, tmp_path: Path) -> Path:
    """A private copy of the trail's store, to attack."""
    return trail.copy(tmp_path / "copy")
