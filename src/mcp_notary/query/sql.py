"""Read-only SQL for power users, against either store: one statement, rows and no writes.

SQLite: three independent locks, so that no statement can change the file whatever its text:
1. SQLite opens the file read-only (`mode=ro`) with `query_only` on;
2. an authorizer allows only SELECT, reads of the audit tables, and the functions on
   `SQLITE_FUNCTIONS`: PRAGMA, ATTACH, writes, reads of the access tables (token hashes) and
   functions such as `fts3_tokenizer` (which hands out a native pointer) are refused;
3. one statement per call (Python's sqlite3 refuses more, and so do we, before running).
A progress handler ends a statement that runs past its deadline (30 s); it runs between VM
steps, so one function call that takes long (`randomblob(1000000000)`) is bounded instead by
SQLite's own limits, lowered on the connection: no string or BLOB over `MAX_VALUE_BYTES`.
The rows returned are bounded too, by count and by `MAX_RESULT_BYTES`.

PostgreSQL: a session of its own, and the server's own parser and planner:
1. the session has `default_transaction_read_only` on, and the statement runs in one
   transaction that is rolled back;
2. the statement is planned first (`EXPLAIN`, sent as a prepared statement, which the server
   refuses to hold more than one statement): a plan that writes, or that reads a relation
   other than `events` (and its partitions), `pruned_events`, `streams`, `checkpoints` and
   `schema_migrations`, is refused;
3. it then runs as a cursor (`DECLARE ... CURSOR FOR`, which takes only a SELECT or VALUES,
   without data-modifying WITH), and at most `limit` + 1 rows are fetched from it.
Before any of that, the server parses the statement (a Parse message: nothing is planned or
run) with `debug_print_parse` on, and the parse tree it sends back names every function and
operator by oid: a statement that is not one SELECT, or calls a function not on
`pg_parse.PG_FUNCTIONS` (`pg_read_file`, `lo_import`, `set_config`, `dblink`, `query_to_xml`,
`repeat`...) or an operator outside `pg_catalog`, is refused before it is planned (planning
would already run immutable functions on constants). The session's `statement_timeout` is
the interactive reads' (10 s), and the rows returned are bounded like SQLite's.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_notary.errors import ConfigError, StoreError
from mcp_notary.query.model import QueryError, SqlRefused
from mcp_notary.query.sqlite import readonly_connection

__all__ = [
    "MAX_RESULT_BYTES",
    "MAX_VALUE_BYTES",
    "PG_READABLE_TABLES",
    "READABLE_TABLES",
    "SQLITE_FUNCTIONS",
    "SqlRefused",
    "SqlResult",
    "run_readonly_sql",
]

# Everything an auditor may read: the events, what retention kept of deleted ones, their
# streams, checkpoints and the store's version, and the search index (so MATCH works).
# Access records (token hashes) and subject keys are not on the list.
READABLE_TABLES = frozenset(
    {
        "events",
        "pruned_events",
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
# The same on PostgreSQL, in the store's schema; the partitions of `events` as well.
PG_READABLE_TABLES = ("events", "pruned_events", "streams", "checkpoints", "schema_migrations")
# The SQL functions a statement may call on SQLite: the core scalar, aggregate, window, date,
# math and JSON functions, and FTS5's (MATCH, ranking, snippets). Not on it: fts3_tokenizer
# (returns and accepts native pointers), fts5 (pointer passing), load_extension, sqlite_log,
# the compile-option probes, and the FTS3/4 and R*Tree helpers the store does not use.
_SQLITE_FUNCTIONS_TEXT = """
    -> ->> abs acos acosh asin asinh atan atan2 atanh avg bm25 ceil ceiling changes char
    coalesce concat concat_ws count cos cosh cume_dist current_date current_time
    current_timestamp date datetime degrees dense_rank exp first_value floor format glob
    group_concat hex highlight ifnull iif instr json json_array json_array_length json_each
    json_extract json_group_array json_group_object json_insert json_object json_patch
    json_pretty json_quote json_remove json_replace json_set json_tree json_type json_valid
    jsonb jsonb_array jsonb_extract jsonb_group_array jsonb_group_object jsonb_insert
    jsonb_object jsonb_patch jsonb_remove jsonb_replace jsonb_set julianday lag last_value
    lead length like likelihood likely ln log log10 log2 lower ltrim match max min mod
    nth_value ntile nullif octet_length percent_rank pi pow power printf quote radians
    random randomblob rank replace round row_number rtrim sign sin sinh snippet soundex
    sqlite_source_id sqlite_version sqrt strftime string_agg substr substring subtype sum
    tan tanh time timediff total total_changes trim trunc typeof unhex unicode unixepoch
    unlikely upper zeroblob
    """
SQLITE_FUNCTIONS = frozenset(_SQLITE_FUNCTIONS_TEXT.split())
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE}
MAX_ROWS = 10_000
SQLITE_DEADLINE_S = 30.0
# No string or BLOB, stored or computed, above this (a body above it, from a line of over
# 64 MiB, is read with `show`), and no result above MAX_RESULT_BYTES: memory stays bounded.
MAX_VALUE_BYTES = 64 * 1024 * 1024
MAX_RESULT_BYTES = 256 * 1024 * 1024
_SQLITE_LIMITS = {
    sqlite3.SQLITE_LIMIT_LENGTH: MAX_VALUE_BYTES,
    sqlite3.SQLITE_LIMIT_SQL_LENGTH: 1024 * 1024,
    sqlite3.SQLITE_LIMIT_ATTACHED: 0,
    sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH: 10_000,
    sqlite3.SQLITE_LIMIT_WORKER_THREADS: 0,
}
_SQLITE_REFUSED = (
    "sql: refused: only SELECT over events, pruned_events, streams, checkpoints and meta"
)
_PG_REFUSED = (
    "sql: refused: only SELECT over events, pruned_events, streams, checkpoints and "
    "schema_migrations"
)
_TOO_BIG = f"sql: refused: a string or BLOB would exceed {MAX_VALUE_BYTES // 2**20} MiB"
_Rows = tuple[list[str], list[tuple[Any, ...]]]  # column names, rows


@dataclass(frozen=True)
class SqlResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool  # more rows matched than `limit`


def run_readonly_sql(
    store: Path | str,
    sql: str,
    *,
    params: Sequence[Any] = (),
    limit: int = 1000,
    deadline_s: float | None = None,
) -> SqlResult:
    """Run one SELECT over `store` (a SQLite file, or a store URL: SQLite or PostgreSQL);
    BLOBs (bytea) come back as hex. `params` use the driver's placeholder (`?` on SQLite, `%s`
    on PostgreSQL). `deadline_s` defaults to 30 s on SQLite and to the interactive reads' 10 s
    on PostgreSQL. Raises `QueryError` for a refused or invalid statement, `StoreError` if the
    store cannot be read."""
    if not 1 <= limit <= MAX_ROWS:
        raise QueryError(f"limit: must be between 1 and {MAX_ROWS}")
    from mcp_notary.ledger.stores import sqlite_path

    path = store if isinstance(store, Path) else sqlite_path(store)
    if path is not None:
        deadline = SQLITE_DEADLINE_S if deadline_s is None else deadline_s
        statement = _single_statement(sql)
        columns, rows = _sqlite_rows(path.expanduser(), statement, params, limit + 1, deadline)
    elif isinstance(store, str) and store.split("://", 1)[0] in ("postgresql", "postgres"):
        statement = _trimmed(sql)  # one statement: the server checks (a prepared statement)
        columns, rows = _postgres_rows(store, statement, params, limit + 1, deadline_s)
    else:
        raise ConfigError(f"sql: no reader for store URL {str(store).split('://', 1)[0]!r}")
    return SqlResult(
        columns, [tuple(_cell(v) for v in row) for row in rows[:limit]], len(rows) > limit
    )


def _cell(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else value


def _bounded_rows(fetchone: Any, fetch: int) -> list[tuple[Any, ...]]:
    """Up to `fetch` rows, one at a time, refused once they hold more than MAX_RESULT_BYTES."""
    rows: list[tuple[Any, ...]] = []
    size = 0
    while len(rows) < fetch:
        row = fetchone()
        if row is None:
            break
        size += sum(len(v) if isinstance(v, str | bytes | memoryview) else 8 for v in row)
        if size > MAX_RESULT_BYTES:
            raise SqlRefused(
                f"sql: refused: the result would exceed {MAX_RESULT_BYTES // 2**20} MiB "
                "(select fewer rows or columns)"
            )
        rows.append(row)
    return rows


def _trimmed(sql: str) -> str:
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise QueryError("sql: empty statement")
    return text


# -- SQLite ----------------------------------------------------------------------------------------


def _authorizer(
    action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None
) -> int:
    if action in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_OK if arg2 in SQLITE_FUNCTIONS else sqlite3.SQLITE_DENY
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
    text = _trimmed(sql)
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
            raise SqlRefused("sql: one statement at a time")
    return text


def _sqlite_rows(
    path: Path, statement: str, params: Sequence[Any], fetch: int, deadline_s: float
) -> _Rows:
    db = readonly_connection(path)
    deadline = time.monotonic() + deadline_s
    try:
        for limit, value in _SQLITE_LIMITS.items():
            db.setlimit(limit, value)
        refused: list[str] = []  # the function the authorizer refused, to say which

        def authorize(
            action: int, arg1: str | None, arg2: str | None, db_name: str | None, t: str | None
        ) -> int:
            verdict = _authorizer(action, arg1, arg2, db_name, t)
            if verdict == sqlite3.SQLITE_DENY and action == sqlite3.SQLITE_FUNCTION:
                refused.append(str(arg2))
            return verdict

        db.set_authorizer(authorize)
        db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            cursor = db.execute(statement, params)
            rows = _bounded_rows(cursor.fetchone, fetch)
        except sqlite3.DataError as exc:  # "string or blob too big"
            raise SqlRefused(_TOO_BIG) from exc
        except sqlite3.DatabaseError as exc:
            message = str(exc)
            if "interrupted" in message:
                raise SqlRefused(f"sql: took longer than {deadline_s:g} s") from exc
            if refused:
                raise SqlRefused(
                    f"sql: refused: {refused[0]}() is not an allowed function"
                ) from exc
            if any(word in message for word in ("not authorized", "authorization", "prohibited")):
                raise SqlRefused(_SQLITE_REFUSED) from exc
            if "too big" in message or "too long" in message or "too many" in message:
                raise SqlRefused(f"sql: refused: {message}") from exc
            raise QueryError(f"sql: {message}") from exc
        except sqlite3.Warning as exc:  # "You can only execute one statement at a time."
            raise SqlRefused(f"sql: {exc}") from exc
        return [d[0] for d in cursor.description or ()], rows
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the audit store: {exc}") from exc
    finally:
        db.close()


# -- PostgreSQL ------------------------------------------------------------------------------------

# The relations a statement may read: the store's tables (in the schema `search_path` finds
# them in) and every partition of `events`, as (schema, name) like a plan names them.
_PG_READABLE_SQL = """
SELECT n.nspname, c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.oid IN (SELECT relid::oid FROM pg_partition_tree(to_regclass('events')))
   OR c.oid IN (SELECT to_regclass(t)::oid FROM unnest(%s::text[]) AS t)
"""


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


def _postgres_rows(
    url: str, statement: str, params: Sequence[Any], fetch: int, deadline_s: float | None
) -> _Rows:
    # Imported here so the embedded store works without the PostgreSQL driver loaded.
    import psycopg
    from psycopg.types.string import TextLoader

    from mcp_notary.ledger.stores.postgres import (
        check_version,
        close_quietly,
        connect,
        redact_url,
        split_options,
    )
    from mcp_notary.query.pg_parse import check_parse_tree
    from mcp_notary.query.postgres import DEFAULT_DEADLINE_S

    deadline = DEFAULT_DEADLINE_S if deadline_s is None else deadline_s
    libpq_url, _ = split_options(url)  # the spool options are the store's, not libpq's
    name = redact_url(libpq_url)
    timeout = {"statement_timeout": max(int(deadline * 1000), 1)}
    db: psycopg.Connection[Any] | None = None
    try:
        db = connect(libpq_url, readonly=True, settings=timeout)
        check_version(db, name)
    except psycopg.Error as exc:
        close_quietly(db)
        raise StoreError(f"cannot open audit store {name}: {exc}") from exc
    except StoreError:
        close_quietly(db)
        raise
    args = tuple(params) or None  # without parameters, `%` in the text is not a placeholder
    try:
        with db.transaction(force_rollback=True):
            check_parse_tree(db, statement, args, _PG_REFUSED)  # before planning runs anything
            explain = db.execute(
                f"EXPLAIN (VERBOSE, FORMAT JSON)\n{statement}".encode(), args, prepare=True
            )
            row = explain.fetchone()
            plan: list[dict[str, Any]] = row[0] if row else []
            readable = {
                (schema, table)
                for schema, table in db.execute(_PG_READABLE_SQL, (list(PG_READABLE_TABLES),))
            }
            for node in (n for top in plan for n in _plan_nodes(top["Plan"])):
                relation = node.get("Relation Name")
                if node.get("Node Type") == "ModifyTable":
                    write = str(node.get("Operation", "write")).lower()
                    raise SqlRefused(f"{_PG_REFUSED} (it would {write} {relation})")
                if relation is not None and (node.get("Schema"), relation) not in readable:
                    raise SqlRefused(f"{_PG_REFUSED} (it reads {relation})")
            with db.cursor(name="mcp_notary_sql") as cursor:
                # JSON as its text, as SQLite returns it (not as Python objects).
                cursor.adapters.register_loader("json", TextLoader)
                cursor.adapters.register_loader("jsonb", TextLoader)
                cursor.execute(statement.encode(), args)
                rows_left = iter(cursor)  # fetched `itersize` (100) rows at a time
                rows = _bounded_rows(lambda: next(rows_left, None), fetch)
                columns = [c.name for c in cursor.description or ()]
        return columns, rows
    except psycopg.errors.QueryCanceled as exc:
        raise SqlRefused(f"sql: took longer than {deadline:g} s") from exc
    except psycopg.Error as exc:
        if exc.sqlstate is None or db.broken or db.closed:
            raise StoreError(f"cannot read the audit store {name}: {exc}") from exc
        message = exc.diag.message_primary or str(exc)
        if "multiple commands" in message:
            raise SqlRefused("sql: one statement at a time") from exc
        if isinstance(
            exc, psycopg.errors.ReadOnlySqlTransaction | psycopg.errors.InsufficientPrivilege
        ):
            raise SqlRefused(f"{_PG_REFUSED} ({message})") from exc
        if isinstance(exc, psycopg.errors.ProgramLimitExceeded | psycopg.errors.OutOfMemory):
            raise SqlRefused(f"sql: refused: {message}") from exc
        if isinstance(exc, psycopg.errors.SyntaxError):  # DROP, COPY, SET...: not a SELECT
            raise QueryError(f"sql: {message} (one SELECT statement at a time)") from exc
        raise QueryError(f"sql: {message}") from exc
    finally:
        close_quietly(db)
