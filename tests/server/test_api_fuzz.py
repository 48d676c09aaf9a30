"""Schemathesis fuzzes the API against its own OpenAPI document: no 500s, responses as
documented, and no way past authentication."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from readside_deploy import Deployment, serve_in_thread
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from mcp_notary.server.openapi import openapi_document

pytestmark = pytest.mark.timeout(300)

# The document is static, so the schema is loaded at collection (schemathesis's lazy fixture
# loader does not work with pytest 9); the app it calls is the module's deployment.
schema = schemathesis.openapi.from_dict(openapi_document())
_current: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _serve(deployment: Deployment) -> Iterator[None]:
    _current["deployment"] = deployment
    with serve_in_thread(deployment.app) as base_url:
        _current["base_url"] = base_url
        yield
    _current.clear()


# Left out: `ignored_auth` (the matrix and the test below cover authentication) and
# `positive_data_acceptance`: the document cannot say that a cursor must be one this server
# issued or that a search needs a word, so a schema-valid request may rightly get a 400.
EXCLUDED = [ignored_auth, positive_data_acceptance]
FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


@schema.parametrize()
@FUZZ
def test_fuzz_as_auditor(case: Any) -> None:
    """With a valid auditor token: every response documented, none a server error."""
    deployment: Deployment = _current["deployment"]
    headers = {"Authorization": f"Bearer {deployment.tokens['audra']}"}
    response = case.call_and_validate(
        base_url=_current["base_url"], headers=headers, excluded_checks=EXCLUDED
    )
    assert response.status_code < 500 or response.status_code == 503


@schema.parametrize()
@FUZZ
def test_fuzz_without_credentials(case: Any) -> None:
    """Without a token (or with a forged one) every API call is refused with 401."""
    deployment: Deployment = _current["deployment"]
    forged = "Bearer mcpn_" + "0" * 12 + "_" + "A" * 43
    for headers in ({}, {"Authorization": forged}, {"Authorization": "Basic YWRtaW46YWRtaW4="}):
        response = case.call(base_url=_current["base_url"], headers=headers)
        if case.method.upper() != "GET":  # the coverage phase also tries other methods
            assert response.status_code == 405, (case.method, case.path, response.text[:200])
            continue
        assert response.status_code == 401, (case.path, headers, response.text[:200])
        assert response.json()["error"]["code"] == "unauthorized"
        assert "www-authenticate" in {k.lower() for k in response.headers}
    assert deployment.tokens  # the deployment was live for the whole run
