"""Newline framing for stdio: pure, bounded, and never in the way of the bytes."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_AUDITED_LINE = 128 * 1024 * 1024
"""Lines up to this size are parsed and audited; longer ones are relayed and recorded as
oversized anomalies (their bytes are forwarded in pieces, never held whole)."""


@dataclass(frozen=True)
class Frame:
    """Bytes ready to forward. `complete` frames are whole lines that can be parsed; the others
    are pieces of an oversized line."""

    data: bytes
    complete: bool
    line_size: int = 0  # for the last piece of an oversized line: the whole line's size


class LineFramer:
    def __init__(self, max_line: int = DEFAULT_MAX_AUDITED_LINE) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._oversized = 0  # bytes of the current oversized line already passed on

    def feed(self, chunk: bytes) -> list[Frame]:
        frames: list[Frame] = []
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            piece = chunk[start : end + 1]
            start = end + 1
            if self._oversized:
                self._oversized += len(piece)
                frames.append(Frame(piece, complete=False, line_size=self._oversized))
                self._oversized = 0
            elif self._buffer:
                self._buffer += piece
                frames.append(Frame(bytes(self._buffer), complete=True))
                self._buffer.clear()
            else:
                frames.append(Frame(piece, complete=True))
        rest = chunk[start:]
        if self._oversized:
            self._oversized += len(rest)
            if rest:
                frames.append(Frame(rest, complete=False))
        elif rest:
            self._buffer += rest
            if len(self._buffer) > self.max_line:
                # Too long to audit whole: pass it on and keep only its running size.
                self._oversized = len(self._buffer)
                frames.append(Frame(bytes(self._buffer), complete=False))
                self._buffer.clear()
        return frames

    def finish(self) -> Frame | None:
        """End of input: whatever is left is still forwarded; a final line that lacks only its
        newline is still parsed and audited."""
        if self._buffer:
            frame = Frame(bytes(self._buffer), complete=True)
            self._buffer.clear()
            return frame
        if self._oversized:
            frame = Frame(b"", complete=False, line_size=self._oversized)
            self._oversized = 0
            return frame
        return None
