"""Transparency: the official MCP conformance suite (npm `@modelcontextprotocol/conformance`,
server mode) run against the SDK's everything-server fixture once directly and once through
`mcp-notary proxy`, for 2025-11-25 and 2026-07-28. Every check of every scenario must end the
same way both times.

One difference is allowed and named: the proxy trims optional whitespace around header values
(RFC 9110 §5.5 says it is not part of the value, and h11 will not send it), so the check that a
server *accepts* such whitespace can pass through the proxy where the fixture alone fails it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_notary import Notary
from http_events import calls, wait_events
from http_procs import Running, everything_py_argv, free_port, proxy_argv, running

pytestmark = pytest.mark.timeout(240)

TESTS = Path(__file__).resolve().parents[1]
CONFORMANCE_BIN = TESTS / "node" / "node_modules" / ".bin" / "conformance"
# Checks where the proxy may do better than the upstream alone, never worse (see module doc).
NORMALISED_BY_PROXY = {
    ("http-header-validation", "sep-2243-server-accepts-whitespace-header-value")
}


@pytest.fixture(scope="module")
def conformance(node22: Path) -> list[str]:
    if not CONFORMANCE_BIN.exists():
        pytest.skip("conformance suite not installed: run `npm ci --prefix tests/node`")
    return [str(node22), str(CONFORMANCE_BIN.resolve())]


@pytest.fixture(scope="module")
def fixture_server() -> Iterator[Running]:
    port = free_port()
    with running(everything_py_argv(port), port) as server:
        yield server


def run_suite(
    conformance: list[str], url: str, version: str, out: Path
) -> dict[tuple[str, str], str]:
    proc = subprocess.run(
        [*conformance, "server", "--url", url, "--suite", "all", "--spec-version", version,
         "-o", str(out)],
        capture_output=True,
        timeout=180,
        check=False,
    )  # fmt: skip
    results: dict[tuple[str, str], str] = {}
    for checks in out.glob("*/checks.json"):
        # directory: server-<scenario>-<ISO timestamp>
        scenario = checks.parent.name.removeprefix("server-").rsplit("-", 6)[0]
        for check in json.loads(checks.read_text()):
            results[(scenario, check["id"])] = check["status"]
    assert results, f"conformance produced no results:\n{proc.stdout.decode()[-3000:]}"
    return results


@pytest.mark.parametrize("version", ["2025-11-25", "2026-07-28"])
def test_conformance_same_through_proxy(
    version: str,
    conformance: list[str],
    fixture_server: Running,
    notary: Notary,
    tmp_path: Path,
) -> None:
    direct = run_suite(conformance, fixture_server.url, version, tmp_path / "direct")
    store = tmp_path / "audit.db"
    port = free_port()
    with running(proxy_argv(notary.argv, fixture_server.url, port, store), port) as proxy:
        proxied = run_suite(conformance, proxy.url, version, tmp_path / "proxied")
        events = wait_events(notary, store, lambda evs: len(calls(evs, None)) >= 20)

    assert set(proxied) == set(direct), "different scenarios or checks ran"
    scenarios = {scenario for scenario, _ in direct}
    assert len(scenarios) >= 25, sorted(scenarios)
    differences = {
        key: (direct[key], proxied[key])
        for key in direct
        if direct[key] != proxied[key]
        and not (key in NORMALISED_BY_PROXY and proxied[key] == "SUCCESS")
    }
    assert not differences, differences
    # the proxy did audit: tool calls of several kinds, each paired with an outcome
    tool_calls = calls(events)
    assert {e["outcome"] for e in tool_calls} >= {"success", "tool_error"}
    assert all(e["outcome"] is not None for e in calls(events, None))
