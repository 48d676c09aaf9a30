"""An incremental, bounded Server-Sent Events parser (WHATWG HTML, "event stream
interpretation"). Pure: it reads copies of the bytes the proxy has already forwarded, so it
never delays or changes a stream; it only says which events went past.

Memory is bounded: an event whose data grows past `max_event` is no longer kept, only counted,
and comes out as `oversized` so it can be audited as an anomaly.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_EVENT = 16 * 1024 * 1024


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event. `data` is the joined `data:` lines (None when oversized)."""

    event: str
    data: bytes | None
    size: int
    event_id: str | None = None

    @property
    def oversized(self) -> bool:
        return self.data is None


class SSEParser:
    def __init__(self, max_event: int = DEFAULT_MAX_EVENT) -> None:
        self.max_event = max_event
        self._line = bytearray()  # the current, incomplete line
        self._line_dropped = 0  # bytes of the current line not kept (it is too long)
        self._skip_lf = False  # a CR ended the previous chunk: a following LF belongs to it
        self._data: list[bytes] = []
        self._size = 0  # bytes of `data` seen in the current event, kept or not
        self._has_data = False
        self._oversized = False
        self._event = ""
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Account for the next bytes of the stream; return the events they completed."""
        out: list[SSEEvent] = []
        start = 0
        if self._skip_lf and chunk[:1] == b"\n":
            start = 1
        self._skip_lf = False
        length = len(chunk)
        while start < length:
            cr = chunk.find(b"\r", start)
            lf = chunk.find(b"\n", start)
            if cr < 0 and lf < 0:
                self._append(chunk[start:])
                break
            end = lf if cr < 0 else cr if lf < 0 else min(cr, lf)
            self._append(chunk[start:end])
            line = bytes(self._line)
            dropped = self._line_dropped
            self._line.clear()
            self._line_dropped = 0
            if chunk[end : end + 1] == b"\r":
                if end + 1 == length:
                    self._skip_lf = True
                    start = end + 1
                elif chunk[end + 1 : end + 2] == b"\n":
                    start = end + 2
                else:
                    start = end + 1
            else:
                start = end + 1
            event = self._line_done(line, dropped)
            if event is not None:
                out.append(event)
        return out

    def _append(self, piece: bytes) -> None:
        room = self.max_event + 16 - len(self._line)
        if len(piece) > room:
            self._line += piece[: max(room, 0)]
            self._line_dropped += len(piece) - max(room, 0)
        else:
            self._line += piece

    def _line_done(self, line: bytes, dropped: int) -> SSEEvent | None:
        if not line and not dropped:
            return self._dispatch()
        if line.startswith(b":"):
            return None  # a comment (keep-alive); forwarded, never audited
        name, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._size += len(value) + dropped + (1 if self._has_data else 0)
            self._has_data = True
            if dropped or self._oversized or self._size > self.max_event:
                self._oversized = True
                self._data.clear()
            else:
                self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            self._id = value.decode("utf-8", "replace")
        return None  # `retry:` and unknown fields only matter to the client

    def _dispatch(self) -> SSEEvent | None:
        if not self._has_data:
            self._event = ""
            return None
        data = None if self._oversized else b"\n".join(self._data)
        event = SSEEvent(self._event or "message", data, self._size, self._id)
        self._data = []
        self._size = 0
        self._has_data = False
        self._oversized = False
        self._event = ""
        self._id = None  # audit the event's own id, not the stream's last one
        return event
