from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mcp_notary.capture.framing import LineFramer


def test_lines_split_across_chunks_are_reassembled() -> None:
    f = LineFramer()
    assert f.feed(b'{"a":') == []
    frames = f.feed(b'1}\n{"b":2}\n{"c"')
    assert [fr.data for fr in frames] == [b'{"a":1}\n', b'{"b":2}\n']
    assert all(fr.complete for fr in frames)
    tail = f.finish()
    assert tail is not None and tail.data == b'{"c"' and tail.complete


def test_oversized_line_is_passed_on_in_pieces_and_sized() -> None:
    f = LineFramer(max_line=10)
    frames = f.feed(b"x" * 25) + f.feed(b"y" * 5 + b"\nok\n")
    assert b"".join(fr.data for fr in frames) == b"x" * 25 + b"y" * 5 + b"\nok\n"
    assert not any(fr.complete for fr in frames[:-1])
    assert frames[-2].line_size == 31
    assert frames[-1].complete and frames[-1].data == b"ok\n"


@given(st.lists(st.binary(max_size=50), max_size=20), st.integers(min_value=1, max_value=64))
def test_forwarded_bytes_equal_input_bytes(chunks: list[bytes], max_line: int) -> None:
    f = LineFramer(max_line=max_line)
    out = b"".join(fr.data for chunk in chunks for fr in f.feed(chunk))
    tail = f.finish()
    out += tail.data if tail else b""
    assert out == b"".join(chunks)
