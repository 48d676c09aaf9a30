"""One PostgreSQL connection for the read side (query engine, access records), beside the
store's own: guarded by a lock, reopened after a break, with driver errors translated.

A read-only session sets `default_transaction_read_only`, so no statement it runs can write;
a deadline becomes the session's `statement_timeout`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from mcp_notary.errors import StoreError
from mcp_notary.ledger.stores.postgres import (
    check_version,
    close_quietly,
    connect,
    redact_url,
    split_options,
)

__all__ = ["PgSession", "QueryCanceled"]

QueryCanceled = pg_errors.QueryCanceled


class PgSession:
    def __init__(
        self, url: str, *, readonly: bool, statement_timeout_ms: int | None = None
    ) -> None:
        self.url, _ = split_options(url)  # the spool options are the store's, not libpq's
        self.name = redact_url(self.url)
        self.readonly = readonly
        self._timeout_ms = statement_timeout_ms
        self._lock = threading.Lock()
        self._db: psycopg.Connection[Any] | None = None
        try:
            self._check_version()
        except StoreError:
            self.close()
            raise

    def _check_version(self) -> None:
        with self._lock:
            try:
                check_version(self._connection(), self.name)
            except psycopg.Error as exc:
                raise StoreError(f"cannot open audit store {self.name}: {exc}") from exc

    def _connection(self) -> psycopg.Connection[Any]:
        if self._db is not None and not self._db.closed and not self._db.broken:
            return self._db
        self._drop()
        settings = {"statement_timeout": self._timeout_ms} if self._timeout_ms is not None else None
        self._db = connect(self.url, readonly=self.readonly, settings=settings)
        return self._db

    def _drop(self) -> None:
        close_quietly(self._db)
        self._db = None

    def fetch(self, query: str, params: Sequence[Any] = (), *, what: str = "query") -> list[Any]:
        """Rows of one statement. `QueryCanceled` (the deadline) passes through untranslated;
        every other driver error becomes `StoreError`."""
        with self._lock:
            try:
                cur = self._connection().execute(query.encode(), params)
                return cur.fetchall() if cur.description is not None else []
            except QueryCanceled:
                raise
            except psycopg.Error as exc:
                if self._db is None or self._db.broken or self._db.closed:
                    self._drop()
                raise StoreError(f"audit store {what} failed ({self.name}): {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._drop()
