"""The web console in a real browser: Debian's Chromium driven by Playwright (no browser
download). Log in with a token, filter, search, open an event, download its proof, and check
that a viewer cannot see anyone else's events. Screenshots land in /tmp for a person to see."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from readside_deploy import Deployment, serve_in_thread

from mcp_notary.query.model import Query
from mcp_notary.verify.proof import ProofBundle, verify_bundle

pytestmark = pytest.mark.timeout(240)

CHROMIUM = Path(os.environ.get("MCP_NOTARY_CHROMIUM", "/usr/bin/chromium"))
SHOTS = Path(os.environ.get("MCP_NOTARY_SCREENSHOTS", "/tmp"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        reason = "Debian's chromium is not installed: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def base_url(deployment: Deployment) -> Iterator[str]:
    with serve_in_thread(deployment.app) as url:
        yield url


def _login(browser: Any, base_url: str, token: str, purpose: str) -> Any:
    page = browser.new_page(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    page.goto(f"{base_url}/console/events")
    assert "/console/login" in page.url  # no session: sent to the login page
    page.fill("input[name=token]", token)
    page.fill("input[name=purpose]", purpose)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/events")
    return page


def _console_reads(deployment: Deployment, since_seq: int) -> list[dict[str, Any]]:
    return [e for e in deployment.accesses(since_seq) if e["details"]["interface"] == "console"]


def test_auditor_filters_searches_and_opens_an_event(
    browser: Any, base_url: str, deployment: Deployment
) -> None:
    before = deployment.reader_head()
    page = _login(browser, base_url, deployment.tokens["audra"], "INC-2041 quarterly review")
    assert page.inner_text("[data-testid=principal]") == "audra"
    rows = page.locator("[data-testid=event-row]")
    assert rows.count() == 50
    page.screenshot(path=str(SHOTS / "mcp-notary-console-events.png"))

    # Filter: selects submit on change; text filters with the form.
    page.select_option("select[name=outcome]", "tool_error")
    page.wait_for_url("**outcome=tool_error**")
    outcomes = page.locator("[data-testid=event-row] .badge").all_inner_texts()
    assert outcomes and set(outcomes) == {"tool_error"}

    # Search: words and a filter together, empty fields left out of the URL.
    page.goto(f"{base_url}/console/events")
    page.fill("input[name=q]", "tokyo")
    page.fill("input[name=tool]", "convert_time")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**q=tokyo**")
    assert "since=" not in page.url
    found = page.locator("[data-testid=event-row]")
    expected = deployment.engine.search(Query(text="tokyo", tool="convert_time", limit=50)).rows
    assert found.count() == len(expected) > 0
    assert all("convert_time" in t for t in found.locator(".title").all_inner_texts())
    page.screenshot(path=str(SHOTS / "mcp-notary-console-search.png"))

    # Open the first result: the detail page, its manifest, its proof.
    found.first.click()
    page.wait_for_url("**/console/events/*")
    event_id = page.url.rsplit("/", 1)[-1]
    assert event_id == expected[0].event_id
    assert page.inner_text("[data-testid=event-title]") == "convert_time"
    assert "Asia/Tokyo" in page.inner_text("[data-testid=arguments]")
    assert "covered" in page.inner_text("[data-testid=coverage]")
    assert page.locator("[data-testid=manifest]").is_visible()
    page.screenshot(path=str(SHOTS / "mcp-notary-console-event.png"), full_page=True)
    with page.expect_download() as download:
        page.click("[data-testid=proof-download]")
    bundle = ProofBundle.from_json(Path(download.value.path()).read_bytes())
    keys = deployment.app.state.service.settings.trusted_keys
    assert verify_bundle(bundle, keys, origin_prefix="mcp-notary").event_id == event_id

    # Integrity and activity pages render (and verification runs from the page).
    page.goto(f"{base_url}/console/integrity")
    page.click("[data-testid=verify-now]")
    page.wait_for_function(
        "document.querySelector('[data-testid=verify-result]').innerText.includes('events in')"
    )
    page.screenshot(path=str(SHOTS / "mcp-notary-console-integrity.png"), full_page=True)
    page.goto(f"{base_url}/console/activity?range=all")
    assert page.locator("[data-testid=tool-chart] rect.bar").count() >= 3
    page.screenshot(path=str(SHOTS / "mcp-notary-console-activity.png"), full_page=True)
    assert page.errors == []  # no script errors, no CSP violations

    reads = _console_reads(deployment, before)
    assert {r["principal"]["id"] for r in reads} == {"audra"}
    assert {r["details"]["purpose"] for r in reads} == {"INC-2041 quarterly review"}
    pages = [(r["details"]["action"], r["details"]["query"].get("page")) for r in reads]
    for expected_view in [("console_view", "login"), ("search", "events"), ("show", "event"),
                          ("checkpoints", "integrity"), ("stats", None)]:  # fmt: skip
        assert expected_view in pages, (expected_view, pages)
    searches = [r for r in reads if r["details"]["query"].get("text") == "tokyo"]
    assert searches and searches[0]["details"]["returned"] == len(expected)
    proofs = [e for e in deployment.accesses(before) if e["details"]["action"] == "proof"]
    assert proofs and proofs[-1]["details"]["returned"] == 1


def test_viewer_cannot_see_others_events(
    browser: Any, base_url: str, deployment: Deployment
) -> None:
    before = deployment.reader_head()
    page = _login(browser, base_url, deployment.tokens["bob"], "my own calls")
    assert page.locator("[data-testid=own-only]").is_visible()
    assert page.locator("input[name=principal]").count() == 0
    shown = page.locator("[data-testid=event-row] td:nth-child(3)").all_inner_texts()
    assert shown and set(shown) == {"bob"}
    # Asking for alice's events by URL still shows only bob's.
    page.goto(f"{base_url}/console/events?principal=alice&limit=250")
    shown = page.locator("[data-testid=event-row] td:nth-child(3)").all_inner_texts()
    assert shown and set(shown) == {"bob"}
    # Alice's event by id: a 404 page, and her event's content never reaches the browser.
    alice = deployment.engine.search(Query(principal="alice", tool="convert_time", limit=1)).rows
    response = page.goto(f"{base_url}/console/events/{alice[0].event_id}")
    assert response is not None and response.status == 404
    body = json.loads(alice[0].body)
    assert json.dumps(body["arguments"]) not in page.content()
    proof = page.request.get(f"{base_url}/api/events/{alice[0].event_id}/proof")
    assert proof.status == 404
    # No link to pages a viewer may not use, and they refuse if typed.
    assert page.locator("nav.nav a", has_text="Integrity").count() == 0
    assert page.goto(f"{base_url}/console/integrity").status == 403
    page.screenshot(path=str(SHOTS / "mcp-notary-console-viewer.png"))

    denied = [e for e in _console_reads(deployment, before) if e["details"]["decision"] == "denied"]
    assert {(d["details"]["action"], d["details"]["basis"]) for d in denied} >= {
        ("show", "not the reader's own event"),
        ("checkpoints", "roles viewer do not allow checkpoints"),
    }
    assert all(d["principal"]["id"] == "bob" for d in denied)


def test_login_refuses_a_bad_token_and_records_it(
    browser: Any, base_url: str, deployment: Deployment
) -> None:
    before = deployment.reader_head()
    page = browser.new_page()
    page.goto(f"{base_url}/console/login")
    page.fill("input[name=token]", "mcpn_000000000000_" + "B" * 43)
    page.click("button[type=submit]")
    assert "not valid" in page.inner_text("[role=alert]")
    recorded = _console_reads(deployment, before)
    assert [(r["details"]["decision"], r["principal"]["type"]) for r in recorded] == [
        ("denied", "unauthenticated")
    ]
