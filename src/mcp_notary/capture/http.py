"""The HTTP reverse proxy: an ASGI app in front of a Streamable HTTP MCP server (both protocol
eras) or a legacy HTTP+SSE server.

Every request goes upstream with its original body bytes, method, path and headers (hop-by-hop
headers aside); every response comes back with its status, headers and body bytes, SSE streams
chunk by chunk as they arrive, so `id:`, `retry:` and comment lines pass untouched. The audit
works on parsed copies, after the bytes are on their way (batched durability). Memory stays
bounded: bodies are held only up to `max_audited_body`, beyond which they stream through and are
recorded as oversized. A client that goes away closes the upstream request too (in 2026-07-28,
closing a request's stream is its cancellation).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx2

from mcp_notary.capture.http_audit import (
    Conversation,
    HttpAuditor,
    HttpFacts,
    HttpSink,
    digest,
)
from mcp_notary.capture.pairing import EndedBy, Exchange, WireMessage, parse_line
from mcp_notary.capture.sse import DEFAULT_MAX_EVENT, SSEParser
from mcp_notary.identity.bearer import AuthDecision, BearerAuthenticator
from mcp_notary.identity.principal import Principal
from mcp_notary.vocabulary import Kind, Outcome

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_MAX_AUDITED_BODY = 4 * 1024 * 1024  # the SDK's own default request limit
DEFAULT_BODY_TIMEOUT_S = 30.0
UPSTREAM_UNAVAILABLE_CODE = -32000

# RFC 9110 §7.6.1 hop-by-hop fields, plus what the proxy must recompute for its own hop.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Dropped from requests: the client library recomputes the length, and asking for an identity
# encoding keeps response bodies readable by the audit.
_REQUEST_DROP = _HOP_BY_HOP | {b"content-length", b"accept-encoding"}
_WELL_KNOWN = "/.well-known/"


@dataclass(frozen=True)
class ProxySettings:
    """How the proxy reaches its upstream. `upstream_authorization` replaces the client's
    `Authorization` (deployment with a separate upstream credential); it never prints."""

    upstream: str
    max_audited_body: int = DEFAULT_MAX_AUDITED_BODY
    max_audited_event: int = DEFAULT_MAX_EVENT
    body_timeout: float = DEFAULT_BODY_TIMEOUT_S
    connect_timeout: float = 10.0
    preserve_host: bool = True
    upstream_authorization: str | None = field(default=None, repr=False)


@dataclass
class _Request:
    """One HTTP request in flight, with everything the audit needs about it."""

    scope: Scope
    headers: dict[bytes, bytes]
    body: bytes
    facts: HttpFacts
    principal: Principal
    conversation: Conversation
    messages: list[WireMessage] = field(default_factory=list)
    client_gone: bool = False
    streamed: _Streamed | None = None  # a body too large to audit, counted as it passes


class AuditingProxy:
    """ASGI application. Run it with uvicorn (see `serve`)."""

    def __init__(
        self,
        settings: ProxySettings,
        sink: HttpSink,
        *,
        authenticator: BearerAuthenticator | None = None,
        http: httpx2.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.authenticator = authenticator
        self.auditor = HttpAuditor(sink)
        self.sink = sink
        upstream = urlsplit(settings.upstream)
        self._origin = f"{upstream.scheme}://{upstream.netloc}"
        self._http = http
        self._own_http = http is None
        self._endpoints: dict[str, Conversation] = {}  # legacy HTTP+SSE POST endpoints

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._handle(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        if self._http is None:
            self._http = httpx2.AsyncClient(
                timeout=httpx2.Timeout(
                    connect=self.settings.connect_timeout, read=None, write=60.0, pool=60.0
                ),
                limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=200),
                follow_redirects=False,
                trust_env=False,
            )

    async def shutdown(self) -> None:
        self.auditor.close_all("transport_error")
        for conversation in self._endpoints.values():
            self.auditor.close(conversation, "transport_error", None)
        self._endpoints.clear()
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- one request -----------------------------------------------------------------------

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._http is None:
            await self.startup()
        headers = _header_map(scope["headers"])
        facts = _facts(scope, headers)
        decision = await self._authenticate(scope, headers)
        body, body_rest = await self._read_body(receive, send, facts)
        if body is None:
            return  # the client was too slow or went away; already answered and recorded
        principal = decision.principal if decision else UNCHECKED
        if decision is not None and not decision.allowed:
            messages = _parse_request(scope, body, body_rest is not None)
            await self._refuse(scope, headers, facts, messages, decision, send)
            return
        conversation = self._conversation_for(scope, headers)
        request = _Request(scope, headers, body, facts, principal, conversation)
        version = headers.get(b"mcp-protocol-version")
        session = request.conversation.pairer.session
        if version is not None and session.protocol_version is None:
            # The negotiated version, for messages without `_meta` (notifications, responses).
            session.protocol_version = version.decode("latin-1")[:32]
        if body_rest is None:
            request.messages = _parse_request(scope, body, oversized=False)
        else:
            request.streamed = _Streamed(body, body_rest)
        pending = self.auditor.feed(request.conversation, request.messages, principal, facts)
        await self._forward(request, decision, pending, receive, send)
        if request.streamed is not None:
            # Recorded once it has passed, so the anomaly carries its real size.
            oversized = WireMessage(
                "client_to_server", time.time(), request.streamed.size, problem="oversized"
            )
            done = self.auditor.feed(request.conversation, [oversized], principal, facts)
            self.auditor.record(request.conversation, done, principal, facts)

    async def _authenticate(self, scope: Scope, headers: dict[bytes, bytes]) -> AuthDecision | None:
        if self.authenticator is None or scope["path"].startswith(_WELL_KNOWN):
            return None  # RFC 9728 metadata must be readable before a client has a token
        value = headers.get(b"authorization")
        return await self.authenticator.decide(value.decode("latin-1") if value else None)

    async def _read_body(
        self, receive: Receive, send: Send, facts: HttpFacts
    ) -> tuple[bytes | None, AsyncIterator[bytes] | None]:
        """The body, whole when it fits the audit limit; otherwise the part read so far and an
        iterator over the rest, so a large body streams through in bounded memory."""
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        facts.error = "client_disconnected"
                        return None, None
                    chunk = message.get("body", b"")
                    chunks.append(chunk)
                    size += len(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks), None
                    if size > self.settings.max_audited_body:
                        return b"".join(chunks), _rest_of_body(receive)
        except TimeoutError:
            facts.error = "client_body_timeout"
            facts.status = 408
            await _plain(send, 408, b"request body not received in time\n")
            self._record_http_event("anomaly", facts, UNCHECKED, details={"problem": "slow_body"})
            return None, None

    def _conversation_for(self, scope: Scope, headers: dict[bytes, bytes]) -> Conversation:
        session = headers.get(b"mcp-session-id")
        if session is not None:
            return self.auditor.conversation(session.decode("latin-1"))
        endpoint = self._endpoints.get(_path_qs(scope))
        if endpoint is not None:
            return endpoint
        return self.auditor.conversation(None)

    # -- refusals --------------------------------------------------------------------------

    async def _refuse(
        self,
        scope: Scope,
        headers: dict[bytes, bytes],
        facts: HttpFacts,
        messages: list[WireMessage],
        decision: AuthDecision,
        send: Send,
    ) -> None:
        assert self.authenticator is not None
        facts.status = 401
        challenge = self.authenticator.challenge(decision, _metadata_url(scope, headers))
        body = json.dumps({"error": "invalid_token", "error_description": decision.message})
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", challenge.encode("latin-1", "replace")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})
        first = next((m.obj for m in messages if m.obj is not None), None) or {}
        self._record_http_event(
            "auth", facts, decision.principal, first, "denied", {"reason": decision.reason}
        )

    def _record_http_event(
        self,
        kind: Kind,
        facts: HttpFacts,
        principal: Principal,
        message: dict[str, Any] | None = None,
        outcome: Outcome | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """An event the proxy itself caused (a refusal, a timed-out body): metadata only, the
        body of a refused request is never stored."""
        obj = message or {}
        params = obj.get("params") if isinstance(obj.get("params"), dict) else {}
        assert isinstance(params, dict)
        method = obj.get("method") if isinstance(obj.get("method"), str) else None
        request_id = obj.get("id")
        self.sink.record_event(
            kind,
            {**facts.details(), **(details or {})},
            principal=principal,
            method=method,
            outcome=outcome,
            tool=params.get("name") if method == "tools/call" else None,
            jsonrpc_id=request_id if isinstance(request_id, str | int) else None,
            direction="client_to_server",
        )

    # -- forwarding ------------------------------------------------------------------------

    def _upstream_headers(
        self, request: _Request, decision: AuthDecision | None
    ) -> list[tuple[bytes, bytes]]:
        out = []
        for name, value in request.scope["headers"]:
            lower = name.lower()
            if lower in _REQUEST_DROP or (lower == b"host" and not self.settings.preserve_host):
                continue
            if lower == b"authorization" and (
                self.settings.upstream_authorization is not None
                or (decision is not None and not decision.token_valid)
            ):
                # Never pass on a token that was not minted for this resource.
                continue
            # RFC 9110 §5.5: OWS around a value is not part of it (and h11 will not send it).
            out.append((name, value.strip(b" \t")))
        if self.settings.upstream_authorization is not None:
            out.append((b"authorization", self.settings.upstream_authorization.encode()))
        return out

    async def _forward(
        self,
        request: _Request,
        decision: AuthDecision | None,
        pending: list[Exchange],
        receive: Receive,
        send: Send,
    ) -> None:
        assert self._http is not None
        scope = request.scope
        url = self._origin + _path_qs(scope)
        content: bytes | AsyncIterator[bytes] = (
            request.streamed.stream() if request.streamed is not None else request.body
        )
        upstream_request = self._http.build_request(
            scope["method"],
            url,
            headers=self._upstream_headers(request, decision),
            content=content,
        )
        try:
            response = await self._http.send(upstream_request, stream=True)
        except httpx2.HTTPError as exc:
            await self._upstream_failed(request, pending, send, exc)
            return
        try:
            await self._relay(request, response, pending, receive, send)
        finally:
            await response.aclose()

    async def _upstream_failed(
        self, request: _Request, pending: list[Exchange], send: Send, exc: Exception
    ) -> None:
        # A request HTTP itself cannot carry (bad header bytes) is the client's fault: 400.
        invalid = isinstance(exc, httpx2.LocalProtocolError)
        request.facts.status = 400 if invalid else 502
        request.facts.error = f"upstream: {type(exc).__name__}"
        ids = [
            m.obj["id"] for m in request.messages if m.obj and "method" in m.obj and "id" in m.obj
        ]
        reason = "invalid HTTP request" if invalid else "upstream unavailable"
        error = {"code": UPSTREAM_UNAVAILABLE_CODE, "message": f"mcp-notary: {reason}"}
        if len(ids) == 1:
            payload: Any = {"jsonrpc": "2.0", "id": ids[0], "error": error}
        else:
            payload = {"jsonrpc": "2.0", "id": None, "error": error}
        await _json(send, request.facts.status, payload)
        conversation = request.conversation
        self.auditor.record(conversation, pending, request.principal, request.facts)
        self.auditor.end_requests(conversation, request.messages, "transport_error", request.facts)
        if conversation.key is None:
            self.auditor.close(conversation, "transport_error", request.facts)

    async def _relay(
        self,
        request: _Request,
        response: httpx2.Response,
        pending: list[Exchange],
        receive: Receive,
        send: Send,
    ) -> None:
        facts = request.facts
        facts.status = response.status_code
        self._learn_session(request, response)
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP]
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        conversation = request.conversation
        self.auditor.record(conversation, pending, request.principal, facts)
        content_type = response.headers.get("content-type", "")
        reader = _BodyReader(self, request, content_type, self.settings)
        failure: str | None = None
        broke: _UpstreamBroke | None = None
        pump = asyncio.ensure_future(self._pump(response, reader, send))
        watch = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
            if not pump.done():
                request.client_gone = True
                facts.error = "client_disconnected"
                pump.cancel()
            try:
                failure = await pump
            except asyncio.CancelledError:
                reader.finish()
            except _UpstreamBroke as exc:
                broke = exc
                failure = f"upstream_reset: {exc}"
        finally:
            watch.cancel()
        self._finish(request, response.status_code, failure, reader)
        if broke is not None:
            # The upstream broke mid-body: end the client's response the same abrupt way
            # (the ASGI server drops the connection), rather than pretending it completed.
            raise broke

    async def _pump(self, response: httpx2.Response, reader: _BodyReader, send: Send) -> str | None:
        """Forward the body as it arrives; return why it stopped early, if it did.

        Auditing a chunk waits until the next one is forwarded, the body ends, or
        `AUDIT_LAG_S` passes, whichever is first: a response usually ends right after its
        last event, so the client gets the end of its stream before the audit work runs."""
        # GET streams are not lagged: a legacy SSE stream's `endpoint` event must be known
        # before the client can POST to it (it is, as the loop runs nothing in between).
        lagging = _Lagging(reader, 0.0 if reader.request.scope["method"] == "GET" else AUDIT_LAG_S)
        try:
            async for chunk in response.aiter_raw():
                try:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                finally:
                    lagging.push(chunk)  # audited even if the client left during the write
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx2.HTTPError as exc:
            raise _UpstreamBroke(type(exc).__name__) from exc
        except OSError:  # the client's socket failed while we wrote to it
            return "client_write_failed"
        finally:
            lagging.flush()
            reader.finish()
        return None

    def _learn_session(self, request: _Request, response: httpx2.Response) -> None:
        session = response.headers.get("mcp-session-id")
        conversation = request.conversation
        if session and conversation.key is None and not self.auditor.known(session):
            self.auditor.bind(session, conversation)
            request.facts.session = digest(session)

    def _finish(
        self, request: _Request, status: int, failure: str | None, reader: _BodyReader
    ) -> None:
        conversation = request.conversation
        facts = request.facts
        if failure:
            facts.error = facts.error or failure
        ended_by: EndedBy = "cancelled" if request.client_gone else "transport_error"
        outcome: Outcome | None = "denied" if status in (401, 403) else None
        method = request.scope["method"]
        if method == "DELETE" and conversation.key is not None and 200 <= status < 300:
            self.auditor.end_session(conversation.key, "cancelled", facts)
        elif (
            status == 404
            and conversation.key is not None
            and request.headers.get(b"mcp-session-id")
        ):
            self.auditor.end_session(conversation.key, "transport_error", facts)
        elif not 200 <= status < 300:
            # Refused at the HTTP level (400, 401, 413...): those requests get no answer.
            self.auditor.end_requests(conversation, request.messages, ended_by, facts, outcome)
        # Otherwise a session's requests stay open when their POST stream ends: in the legacy
        # era the server may close a stream and answer on a resumed one (SEP-1699), and a
        # client disconnect is not a cancellation. They close with the session.
        if reader.endpoint_key is not None:
            self._endpoints.pop(reader.endpoint_key, None)
            self.auditor.close(conversation, ended_by, facts)
        elif conversation.key is None:
            if status == 202 and conversation.pairer.open_requests():
                facts.error = facts.error or "answered_on_a_stream_the_proxy_did_not_see"
            self.auditor.close(conversation, ended_by, facts)

    # -- used by the body reader -----------------------------------------------------------

    def register_endpoint(self, key: str, conversation: Conversation) -> None:
        self._endpoints[key] = conversation


class _UpstreamBroke(Exception):
    pass


AUDIT_LAG_S = 0.02


class _Lagging:
    """Chunks forwarded but not yet audited (see `_pump`)."""

    def __init__(self, reader: _BodyReader, lag: float) -> None:
        self.reader = reader
        self.lag = lag
        self._chunks: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None

    def push(self, chunk: bytes) -> None:
        self.flush()
        if not self.lag:
            self.reader.feed(chunk)
            return
        self._chunks.append(chunk)
        self.reader.request.conversation.lagging.add(self)
        self._timer = asyncio.get_running_loop().call_later(self.lag, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.reader.request.conversation.lagging.discard(self)
        chunks, self._chunks = self._chunks, []
        for chunk in chunks:
            self.reader.feed(chunk)


class _BodyReader:
    """Parses copies of a response body: SSE event by event, JSON once complete."""

    def __init__(
        self, proxy: AuditingProxy, request: _Request, content_type: str, settings: ProxySettings
    ) -> None:
        self.proxy = proxy
        self.request = request
        self.sse = (
            SSEParser(settings.max_audited_event) if "text/event-stream" in content_type else None
        )
        self.json = "json" in content_type
        self.limit = settings.max_audited_body
        self._chunks: list[bytes] = []
        self._size = 0
        self.endpoint_key: str | None = None

    def feed(self, chunk: bytes) -> None:
        if self.sse is not None:
            for event in self.sse.feed(chunk):
                now = time.time()
                if event.event == "endpoint" and event.data is not None:
                    self._endpoint(event.data)
                elif event.event != "message":
                    continue
                elif event.data is None:
                    self._audit(
                        [WireMessage("server_to_client", now, event.size, problem="oversized")]
                    )
                elif event.data.strip():
                    self._audit(parse_line(event.data, "server_to_client", now))
        elif self.json:
            self._size += len(chunk)
            if self._size <= self.limit:
                self._chunks.append(chunk)
            else:
                self._chunks.clear()

    def finish(self) -> None:
        if self.json and self._size:
            now = time.time()
            if self._size > self.limit:
                self._audit([WireMessage("server_to_client", now, self._size, problem="oversized")])
            else:
                self._audit(parse_line(b"".join(self._chunks), "server_to_client", now))
            self._chunks.clear()
            self._size = 0

    def _audit(self, messages: list[WireMessage]) -> None:
        request = self.request
        done = self.proxy.auditor.feed(
            request.conversation, messages, request.principal, request.facts
        )
        self.proxy.auditor.record(request.conversation, done, request.principal, request.facts)

    def _endpoint(self, data: bytes) -> None:
        # Legacy HTTP+SSE: the stream names the URI the client will POST to; those POSTs
        # belong to this stream's conversation.
        target = urlsplit(data.decode("utf-8", "replace").strip())
        key = target.path + (f"?{target.query}" if target.query else "")
        self.endpoint_key = key
        self.request.conversation.key = "endpoint:" + key  # not a session: never evicted
        self.proxy.register_endpoint(key, self.request.conversation)


# -- helpers ----------------------------------------------------------------------------------


def _parse_request(scope: Scope, body: bytes, oversized: bool) -> list[WireMessage]:
    if scope["method"] != "POST":
        return []
    now = time.time()
    if oversized:
        return [WireMessage("client_to_server", now, len(body), problem="oversized")]
    if not body.strip():
        return []
    return parse_line(body, "client_to_server", now)


def _header_map(raw: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in raw}


def _path_qs(scope: Scope) -> str:
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string") or b""
    return path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


def _facts(scope: Scope, headers: dict[bytes, bytes]) -> HttpFacts:
    client = scope.get("client")
    auth = headers.get(b"authorization")
    session = headers.get(b"mcp-session-id")
    name = headers.get(b"mcp-name")
    return HttpFacts(
        method=scope["method"],
        path=scope["path"],
        peer=f"{client[0]}:{client[1]}" if client else None,
        mcp_method=_text(headers.get(b"mcp-method")),
        mcp_name=_text(name),
        session=digest(session.decode("latin-1")) if session else None,
        param_headers=tuple(
            sorted(k.decode("latin-1") for k in headers if k.startswith(b"mcp-param-"))
        ),
        authorization=(
            "absent" if auth is None else "bearer" if auth[:7].lower() == b"bearer " else "other"
        ),
        cookies=b"cookie" in headers,
        query_keys=tuple(
            sorted({k for k, _ in parse_qsl(scope.get("query_string", b"").decode("latin-1"))})
        ),
    )


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1")[:256] if value is not None else None


UNCHECKED = Principal("unknown", "unknown", "none")
"""The principal when no token validation is configured: we do not know who it is, and say so."""


def _metadata_url(scope: Scope, headers: dict[bytes, bytes]) -> str:
    host = headers.get(b"host", b"localhost").decode("latin-1")
    path = scope["path"] if scope["path"] != "/" else ""
    return f"{scope.get('scheme', 'http')}://{host}/.well-known/oauth-protected-resource{path}"


async def _rest_of_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise httpx2.ReadError("client disconnected while sending the body")
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


class _Streamed:
    """A request body streamed upstream in bounded memory; `size` counts what went through."""

    def __init__(self, first: bytes, rest: AsyncIterator[bytes]) -> None:
        self.size = len(first)
        self._first = first
        self._rest = rest

    async def stream(self) -> AsyncIterator[bytes]:
        first, self._first = self._first, b""
        yield first
        async for chunk in self._rest:
            self.size += len(chunk)
            yield chunk


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, payload: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})
