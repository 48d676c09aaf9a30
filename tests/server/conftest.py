"""The server tests share one deployment per backend (SQLite, PostgreSQL): a real trail, roles,
tokens, the app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_notary import Notary
from pgtest import pg_schema
from readside_deploy import Deployment, deploy


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def deployment(
    request: pytest.FixtureRequest,
    notary: Notary,
    time_cmd: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    if request.param == "postgres":
        with pg_schema("serve") as url, deploy(notary, time_cmd, url) as deployed:
            yield deployed
        return
    store = str(tmp_path_factory.mktemp("serve") / "audit.db")
    with deploy(notary, time_cmd, store) as deployed:
        yield deployed
