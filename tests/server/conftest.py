"""The server tests share one deployment: a real trail, roles, tokens, the app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_notary import Notary
from readside_deploy import Deployment, deploy


@pytest.fixture(scope="session")
def deployment(
    notary: Notary, time_cmd: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    with deploy(notary, time_cmd, tmp_path_factory.mktemp("serve") / "audit.db") as deployed:
        yield deployed
