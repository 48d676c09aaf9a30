"""Role matrix of the JSON API: each role x each endpoint -> allowed or refused, and every
attempt leaves the right `audit_access` event in the ledger (PCI DSS 10.2.1.3, 10.2.1.4)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from readside_deploy import Deployment

from mcp_notary.query.model import Query
from mcp_notary.verify.proof import ProofBundle, verify_bundle

pytestmark = pytest.mark.timeout(180)

ENDPOINTS = {
    "events": ("/api/events?limit=5", "search"),
    "event": ("/api/events/{alice_event}", "show"),
    "proof": ("/api/events/{alice_event}/proof", "proof"),
    "verify": ("/api/verify", "verify"),
    "stats": ("/api/stats", "stats"),
    "checkpoints": ("/api/checkpoints", "checkpoints"),
}
ALLOWED = {
    "audra": set(ENDPOINTS),
    "sec": set(ENDPOINTS),
    "adam": {"verify", "stats", "checkpoints"},
    "bob": {"events"},  # a viewer: only his own events, so not alice's event nor its proof
    "nobody": set(),
}


def _alice_event(d: Deployment) -> str:
    rows = d.engine.search(Query(principal="alice", tool="get_current_time", limit=1)).rows
    return rows[0].event_id


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("who", [*ALLOWED, "anonymous", "garbage", "revoked"])
def test_role_matrix(deployment: Deployment, who: str, endpoint: str) -> None:
    path, action = ENDPOINTS[endpoint]
    path = path.format(alice_event=_alice_event(deployment))
    headers = {"X-Audit-Purpose": f"matrix {who} {endpoint}"}
    if who in deployment.tokens and who != "revoked":
        headers["Authorization"] = f"Bearer {deployment.tokens[who]}"
    elif who == "garbage":
        headers["Authorization"] = "Bearer mcpn_0123456789ab_" + "x" * 43
    elif who == "revoked":
        headers["Authorization"] = f"Bearer {deployment.tokens['gone']}"
    before = deployment.reader_head()
    response = deployment.client().get(path, headers=headers)

    if who in ("anonymous", "garbage", "revoked"):
        expected = 401
    elif endpoint in ALLOWED[who]:
        expected = 200
    elif who == "bob" and endpoint in ("event", "proof"):
        expected = 404  # not told that someone else's event exists
    else:
        expected = 403
    assert response.status_code == expected, (who, endpoint, response.text[:300])

    recorded = deployment.accesses(before)
    assert len(recorded) == 1, f"{who} {endpoint}: expected one audit_access, got {recorded}"
    event = recorded[0]
    details = event["details"]
    assert details["action"] == action
    assert details["interface"] == "api"
    assert details["decision"] == ("allowed" if expected == 200 else "denied")
    assert event["outcome"] == ("success" if expected == 200 else "denied")
    assert event["method"] == f"audit/{action}"
    if expected == 401:
        assert event["principal"]["type"] == "unauthenticated"
        reason = {"anonymous": "missing", "garbage": "unknown_token", "revoked": "revoked"}[who]
        assert details["basis"] == f"authentication: {reason}"
        if who == "revoked":  # the evidence names whose revoked token was used
            assert event["principal"]["details"]["claimed"] == "gone"
    else:
        assert event["principal"] == {
            "id": who,
            "type": "user",
            "source": "token",
            "details": {"token_id": deployment.token_ids[who]},
        }
        assert details["purpose"] == f"matrix {who} {endpoint}"
    if expected == 200 and endpoint == "events":
        assert details["returned"] == len(response.json()["events"])


def test_viewer_sees_only_own_events(deployment: Deployment) -> None:
    client = deployment.client()
    auth = {"Authorization": f"Bearer {deployment.tokens['bob']}"}
    for params in ("limit=1000", "limit=1000&principal=alice", "limit=1000&q=london"):
        events = client.get(f"/api/events?{params}", headers=auth).json()["events"]
        assert events, params
        assert {e["principal"]["id"] for e in events} == {"bob"}, params
    own = client.get("/api/events?limit=1", headers=auth).json()["events"][0]
    detail = client.get(f"/api/events/{own['event_id']}", headers=auth)
    assert detail.status_code == 200 and detail.json()["event"]["principal"]["id"] == "bob"


def test_auditor_search_page_and_proof(deployment: Deployment) -> None:
    client = deployment.client()
    auth = {"Authorization": f"Bearer {deployment.tokens['audra']}"}
    base = "/api/events?q=tokyo&tool=get_current_time"
    everything = client.get(f"{base}&limit=1000", headers=auth).json()["events"]
    assert len(everything) >= 8
    for event in everything:
        assert "Asia/Tokyo" in json.dumps(event["arguments"])
    paged: list[dict[str, Any]] = []
    url = f"{base}&limit=3"
    while True:
        page = client.get(url, headers=auth).json()
        paged += page["events"]
        if page["next_cursor"] is None:
            break
        url = f"{base}&limit=3&cursor={page['next_cursor']}"
    assert [e["event_id"] for e in paged] == [e["event_id"] for e in everything]
    stamps = [e["timestamp"] for e in paged]
    assert stamps == sorted(stamps, reverse=True)
    first = {"events": everything}

    event_id = first["events"][0]["event_id"]
    proof = client.get(f"/api/events/{event_id}/proof", headers=auth)
    assert proof.status_code == 200
    assert "attachment" in proof.headers["content-disposition"]
    bundle = ProofBundle.from_json(proof.content)
    service = deployment.app.state.service
    result = verify_bundle(bundle, service.settings.trusted_keys, origin_prefix="mcp-notary")
    assert result.event_id == event_id


def test_bad_input_is_400_not_500(deployment: Deployment) -> None:
    client = deployment.client()
    auth = {"Authorization": f"Bearer {deployment.tokens['audra']}"}
    for params in ("limit=0", "since=yesterday", "outcome=great", "cursor=@@@", 'q="', "q=-x"):
        response = client.get(f"/api/events?{params}", headers=auth)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["error"]["code"] == "bad_request"


def test_verify_and_stats_report_the_trail(deployment: Deployment) -> None:
    client = deployment.client()
    auth = {"Authorization": f"Bearer {deployment.tokens['adam']}"}
    report: dict[str, Any] = client.get("/api/verify", headers=auth).json()
    integrity = [f for f in report["findings"] if f["severity"] == "integrity"]
    assert integrity == [] and report["events"] >= 180
    stats = client.get("/api/stats", headers=auth).json()
    tools = {c["key"]: c["count"] for c in stats["by_tool"]}
    assert tools["get_current_time"] > tools["convert_time"] > tools["no_such_tool"] > 0
    principals = {c["key"] for c in stats["by_principal"]}
    assert {"alice", "bob"} <= principals


def test_openapi_document_is_public_and_lists_every_endpoint(deployment: Deployment) -> None:
    document = deployment.client().get("/openapi.json").json()
    assert set(document["paths"]) == {
        "/api/events",
        "/api/events/{event_id}",
        "/api/events/{event_id}/proof",
        "/api/verify",
        "/api/stats",
        "/api/checkpoints",
        "/api/whoami",
    }
