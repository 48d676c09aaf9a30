"""A test OAuth authorization server on loopback: keys generated in the test, RFC 8414
metadata, a JWKS endpoint and an RFC 7662 introspection endpoint. Tokens are minted with PyJWT;
nothing here is hand-written crypto."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

INTROSPECTION_CLIENT = ("notary-rs", "rs-secret")


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Issuer:
    url: str = ""
    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    opaque: dict[str, dict[str, Any]] = field(default_factory=dict)
    jwks_fetches: int = 0
    introspections: int = 0

    def add_key(self, kid: str | None = None) -> str:
        kid = kid or uuid.uuid4().hex[:8]
        self.keys[kid] = new_key()
        return kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def claims(self, audience: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {
            "iss": self.url,
            "sub": "alice",
            "aud": audience,
            "client_id": "inspector",
            "scope": "mcp:tools mcp:read",
            "iat": now,
            "exp": now + 300,
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def mint(
        self,
        claims: dict[str, Any],
        *,
        kid: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        alg: str = "RS256",
    ) -> str:
        kid = kid or next(iter(self.keys))
        signer = key or self.keys[kid]
        return jwt.encode(claims, signer, algorithm=alg, headers={"kid": kid, "typ": "at+jwt"})

    def add_opaque(self, token: str, body: dict[str, Any]) -> None:
        self.opaque[token] = body


def _handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/.well-known/oauth-authorization-server":
                self._json(
                    200,
                    {
                        "issuer": issuer.url,
                        "jwks_uri": issuer.url + "/jwks",
                        "introspection_endpoint": issuer.url + "/introspect",
                    },
                )
            elif self.path == "/jwks":
                issuer.jwks_fetches += 1
                self._json(200, issuer.jwks())
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            expected = base64.b64encode(":".join(INTROSPECTION_CLIENT).encode()).decode()
            if (
                self.path != "/introspect"
                or self.headers.get("authorization") != f"Basic {expected}"
            ):
                self._json(401, {"error": "invalid_client"})
                return
            issuer.introspections += 1
            token = form.get("token", [""])[0]
            self._json(200, issuer.opaque.get(token, {"active": False}))

    return Handler


@contextmanager
def running_issuer() -> Iterator[Issuer]:
    issuer = Issuer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(issuer))
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    issuer.add_key("k1")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
