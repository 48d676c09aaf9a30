"""Read-only SQL for power users, against the embedded store.

Three independent locks, so that no statement can change the file whatever its text:
1. SQLite opens the file read-only (`mode=ro`) with `query_only` on;
2. an authorizer allows only SELECT, reads of the audit tables, and functions: PRAGMA,
   ATTACH, writes, and reads of the access tables (token hashes) are refused;
3. one statement per call (Python's sqlite3 refuses more, and so do we, before running).
A progress handler ends a statement that runs past its deadline.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_notary.errors import StoreError
from mcp_notary.query.model import QueryError
from mcp_notary.query.sqlite import readonly_connection

__all__ = ["READABLE_TABLES", "SqlResult", "run_readonly_sql"]

# Everything an auditor may read: the events, their streams, checkpoints and the store's
# version, and the search index (so MATCH works). Access records are not on the list.
READABLE_TABLES = frozenset(
    {
        "events",
        "streams",
        "checkpoints",
        "meta",
        "events_fts",
        "events_fts_data",
        "events_fts_idx",
        "events_fts_docsize",
        "events_fts_config",
        "events_fts_state",
        "sqlite_master",
        "sqlite_schema",
        "json_each",
        "json_tree",
        "pragma_table_info",
    }
)
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
MAX_ROWS = 10_000


@dataclass(frozen=True)
class SqlResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool  # more rows matched than `limit`


def _authorizer(
    action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None
) -> int:
    if action in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_READ:
        return sqlite3.SQLITE_OK if arg1 in READABLE_TABLES else sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and arg1 == "data_version" and arg2 is None:
        return sqlite3.SQLITE_OK  # FTS5 asks it to tell whether its cached config is stale
    if action == sqlite3.SQLITE_UPDATE and arg1 in ("sqlite_master", "sqlite_schema"):
        # FTS5 declares its schema through this path when it connects; IGNORE turns any such
        # write into a no-op (and the connection is read-only besides).
        return sqlite3.SQLITE_IGNORE
    return sqlite3.SQLITE_DENY


def _single_statement(sql: str) -> str:
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise QueryError("sql: empty statement")
    if not sqlite3.complete_statement(text + ";"):
        raise QueryError("sql: incomplete statement")
    # Anything after a `;` outside quotes is a second statement.
    quote: str | None = None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"`[":
            quote = "]" if ch == "[" else ch
        elif ch == ";":
            raise QueryError("sql: one statement at a time")
    return text


def _cell(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else value


def run_readonly_sql(
    path: Path,
    sql: str,
    *,
    params: Sequence[Any] = (),
    limit: int = 1000,
    deadline_s: float = 30.0,
) -> SqlResult:
    """Run one SELECT; BLOBs come back as hex. Raises `QueryError` for a refused or invalid
    statement, `StoreError` if the store cannot be read."""
    if not 1 <= limit <= MAX_ROWS:
        raise QueryError(f"limit: must be between 1 and {MAX_ROWS}")
    statement = _single_statement(sql)
    db = readonly_connection(path)
    deadline = time.monotonic() + deadline_s
    try:
        db.set_authorizer(_authorizer)
        db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            cursor = db.execute(statement, params)
            rows = cursor.fetchmany(limit + 1)
        except sqlite3.DatabaseError as exc:
            message = str(exc)
            if "interrupted" in message:
                raise QueryError(f"sql: took longer than {deadline_s:g} s") from exc
            if "not authorized" in message or "prohibited" in message:
                raise QueryError(
                    "sql: refused: only SELECT over events, streams, checkpoints and meta"
                ) from exc
            raise QueryError(f"sql: {message}") from exc
        except sqlite3.Warning as exc:  # "You can only execute one statement at a time."
            raise QueryError(f"sql: {exc}") from exc
        columns = [d[0] for d in cursor.description or ()]
        return SqlResult(
            columns,
            [tuple(_cell(v) for v in row) for row in rows[:limit]],
            truncated=len(rows) > limit,
        )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the audit store: {exc}") from exc
    finally:
        db.close()
