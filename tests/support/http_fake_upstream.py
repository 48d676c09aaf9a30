"""A deliberately misbehaving upstream on loopback, for failures no real MCP server produces on
demand: a stream reset mid-response (TCP RST), and a stream held open so a test can see whether
the proxy hangs up when its client does. Raw sockets, one thread per connection."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class FakeUpstream:
    port: int = 0
    peer_closed: threading.Event = field(default_factory=threading.Event)
    requests: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        body += conn.recv(65536)
    return body


def _sse(obj: object) -> bytes:
    return b"event: message\r\ndata: " + json.dumps(obj).encode() + b"\r\n\r\n"


def _serve(fake: FakeUpstream, conn: socket.socket) -> None:
    with conn:
        body = _read_request(conn)
        fake.requests.append(body)
        message = json.loads(body)
        request_id = message.get("id")
        name = message.get("params", {}).get("name")
        conn.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n"
        )
        token = message.get("params", {}).get("_meta", {}).get("progressToken", "p")
        progress = {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": token, "progress": 1, "total": 2},
        }
        conn.sendall(b": keep-alive\r\n\r\nid: ev-1\r\nretry: 250\r\n" + _sse(progress))
        if name == "reset":
            # SO_LINGER 0: close() sends RST instead of FIN, an abrupt upstream failure.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if name == "hold":
            conn.settimeout(20)
            try:
                while conn.recv(1024):
                    pass
            except OSError:
                pass
            fake.peer_closed.set()
            return
        answer = {"jsonrpc": "2.0", "id": request_id, "result": {"content": [], "isError": False}}
        conn.sendall(_sse(answer))


@contextmanager
def fake_upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    fake.port = listener.getsockname()[1]
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_serve, args=(fake, conn), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        stop.set()
        listener.close()
