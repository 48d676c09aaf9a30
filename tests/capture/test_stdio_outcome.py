"""How `wrap` ends the calls still open when its child is gone: a function of the cause (issue
15, item 9). The real-process side of it is in test_fault_time_order.py."""

from __future__ import annotations

import signal

import pytest

from mcp_notary.capture.stdio import Side, ended_by


@pytest.mark.parametrize(
    ("first_gone", "status", "signalled", "expected"),
    [
        ("client", 0, False, "cancelled"),  # the server exits on stdin EOF, as it should
        ("client", -signal.SIGTERM, True, "cancelled"),  # wrap's shutdown escalation
        ("client", -signal.SIGKILL, False, "transport_error"),  # it was dying already
        ("server", 0, False, "transport_error"),
        ("server", -signal.SIGTERM, True, "transport_error"),  # wrap forwarded a SIGTERM
        (None, 1, False, "transport_error"),
    ],
)
def test_ended_by_is_a_function_of_the_cause(
    first_gone: Side | None, status: int, signalled: bool, expected: str
) -> None:
    assert ended_by(first_gone, status, signalled=signalled) == expected
