"""Identifiers and timestamps shared by every stage (a leaf module: imports nothing of ours)."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime


def utc_timestamp(epoch_seconds: float | None = None) -> str:
    """RFC 3339, UTC, microseconds, `Z` suffix."""
    moment = datetime.fromtimestamp(time.time() if epoch_seconds is None else epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_event_id(epoch_seconds: float | None = None) -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so ids sort roughly by creation time."""
    millis = int((time.time() if epoch_seconds is None else epoch_seconds) * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return str(uuid.UUID(int=value))
