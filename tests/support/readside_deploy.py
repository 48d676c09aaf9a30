"""A deployment of the read side for tests: a real trail (wrap around mcp-server-time, two
principals), roles and tokens made through access control, and the server application."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e_notary import Notary
from readside_trail import run_trail
from starlette.testclient import TestClient

from mcp_notary.access.control import Caller
from mcp_notary.access.readside import ReadSide, open_read_side
from mcp_notary.events.model import Principal
from mcp_notary.ledger.keys import load_trusted_keys
from mcp_notary.query.engine import QueryEngine
from mcp_notary.server import ReadService, ServerSettings, create_app

ROLE_OF = {"audra": "auditor", "sec": "security", "adam": "admin", "bob": "viewer"}


@dataclass
class Deployment:
    store: str  # a SQLite file or a postgresql:// URL
    side: ReadSide
    engine: QueryEngine
    app: Any
    tokens: dict[str, str] = field(default_factory=dict)  # principal -> token value
    token_ids: dict[str, str] = field(default_factory=dict)

    def accesses(self, since_seq: int) -> list[dict[str, Any]]:
        """audit_access events the server recorded after `since_seq` of its reader stream."""
        stream = self.side.auditor.stream
        return [
            json.loads(r.body)
            for r in self.side.store.scan(stream, from_seq=since_seq + 1)
            if r.kind == "audit_access"
        ]

    def reader_head(self) -> int:
        return self.side.store.head(self.side.auditor.stream).seq

    def client(self) -> TestClient:
        return TestClient(self.app, base_url="http://testserver")


def signing_key(notary: Notary) -> Path:
    return notary.home / ".local" / "share" / "mcp-notary" / "checkpoint.key"


@contextmanager
def deploy(notary: Notary, time_cmd: list[str], store: str) -> Iterator[Deployment]:
    """Produce the trail, grant roles, issue tokens, build the app; close it all on exit."""
    run_trail(notary, time_cmd, store, 120, principal="alice")  # type: ignore[arg-type]
    run_trail(notary, time_cmd, store, 60, principal="bob")  # type: ignore[arg-type]
    key = signing_key(notary)
    side = open_read_side(
        store,
        process_principal=Principal("svc-notary", "service", "config"),
        interface="api",
        label="test serve",
        signing_key=key,
    )
    owner = side.control.local_caller(Principal("root-owner", "user", "os"))
    assert owner.local_owner and owner.bootstrap
    deployment = Deployment(store, side, side.query_engine(), None)
    # The owner makes the first admin; from then on the admin manages access.
    side.control.grant(owner, "adam", "admin", "cli", "bootstrap")
    assert not side.control.local_caller(Principal("root-owner", "user", "os")).bootstrap
    admin = Caller(Principal("adam", "user", "token"), frozenset({"admin"}), "token")
    adam_token, adam_record = side.control.create_token(admin, "adam", "t", None, "cli")
    for principal, role in ROLE_OF.items():
        if principal != "adam":
            side.control.grant(admin, principal, role, "cli", "setup")
    deployment.tokens["adam"], deployment.token_ids["adam"] = adam_token.value, adam_record.token_id
    for principal in ("audra", "sec", "bob", "nobody", "gone"):
        issued, record = side.control.create_token(admin, principal, "t", None, "cli")
        deployment.tokens[principal] = issued.value
        deployment.token_ids[principal] = record.token_id
    side.control.grant(admin, "gone", "auditor", "cli", None)
    side.control.revoke_token(admin, deployment.token_ids["gone"], "cli")
    deployment.engine.ensure_index()
    vkey = key.with_suffix(".vkey")
    settings = ServerSettings(
        trusted_keys=tuple(load_trusted_keys(vkey)), trusted_key_sources=(str(vkey),)
    )
    deployment.app = create_app(ReadService(side, deployment.engine, settings))
    try:
        yield deployment
    finally:
        deployment.engine.close()
        side.close()


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Run `app` under uvicorn on a free loopback port in a thread; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
