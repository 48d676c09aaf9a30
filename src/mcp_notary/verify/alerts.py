"""Where integrity alerts go: stderr, a webhook (JSON POST), syslog, the ledger itself.

This is the verifier's one module with I/O (the findings it sends are computed elsewhere,
purely). A sink that fails reports its own failure on stderr and never stops the others: a
break is never silent as long as one sink works, and stderr always does.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TextIO

from mcp_notary.ids import utc_timestamp
from mcp_notary.verify.chain import Finding

__all__ = [
    "AlertSink",
    "Alerter",
    "CallbackSink",
    "StderrSink",
    "SyslogSink",
    "WebhookSink",
    "alert_payload",
]


def alert_payload(finding: Finding, *, store: str, detector: str) -> dict[str, Any]:
    """The JSON document every sink sends."""
    return {
        "type": "mcp-notary.integrity_alert",
        "time": utc_timestamp(),
        "host": socket.gethostname(),
        "detector": detector,
        "store": store,
        "severity": finding.severity,
        "summary": finding.describe(),
        "finding": finding.to_dict(),
    }


class AlertSink(Protocol):
    name: str

    def send(self, payload: dict[str, Any]) -> None: ...


class StderrSink:
    name = "stderr"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def send(self, payload: dict[str, Any]) -> None:
        out = self._stream or sys.stderr
        print(f"mcp-notary: INTEGRITY ALERT: {payload['summary']}", file=out, flush=True)


class WebhookSink:
    """POSTs the payload as JSON (httpx; a transport can be injected for tests)."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, transport: Any = None) -> None:
        import httpx

        self.name = f"webhook {url}"
        self.url = url
        self._client = httpx.Client(timeout=timeout_s, transport=transport)

    def send(self, payload: dict[str, Any]) -> None:
        response = self._client.post(self.url, json=payload)
        response.raise_for_status()

    def close(self) -> None:
        self._client.close()


class SyslogSink:
    """One ``LOG_AUTH``/CRITICAL line per alert, to ``/dev/log`` (or a given address)."""

    name = "syslog"

    def __init__(self, address: str | tuple[str, int] | None = None) -> None:
        if address is None:
            address = "/dev/log" if os.path.exists("/dev/log") else ("localhost", 514)
        self._handler = logging.handlers.SysLogHandler(
            address=address, facility=logging.handlers.SysLogHandler.LOG_AUTH
        )
        self._logger = logging.getLogger(f"mcp-notary.alerts.{id(self)}")
        self._logger.propagate = False
        self._logger.addHandler(self._handler)
        self._logger.setLevel(logging.CRITICAL)

    def send(self, payload: dict[str, Any]) -> None:
        self._logger.critical(
            "mcp-notary: integrity alert: %s %s",
            payload["summary"],
            json.dumps(payload["finding"], separators=(",", ":")),
        )

    def close(self) -> None:
        self._logger.removeHandler(self._handler)
        self._handler.close()


class CallbackSink:
    """Hands the finding to a function (the watcher records an ``integrity_alert`` event)."""

    def __init__(self, name: str, callback: Callable[[dict[str, Any]], None]) -> None:
        self.name = name
        self._callback = callback

    def send(self, payload: dict[str, Any]) -> None:
        self._callback(payload)


class Alerter:
    """Sends each finding to every sink; a failing sink is reported, never fatal."""

    def __init__(self, sinks: Sequence[AlertSink], *, store: str, detector: str) -> None:
        self.sinks = list(sinks)
        self.store = store
        self.detector = detector
        self.sent = 0

    def alert(self, finding: Finding) -> None:
        payload = alert_payload(finding, store=self.store, detector=self.detector)
        for sink in self.sinks:
            try:
                sink.send(payload)
            except Exception as exc:
                print(f"mcp-notary: alert sink {sink.name} failed: {exc}", file=sys.stderr)
        self.sent += 1
