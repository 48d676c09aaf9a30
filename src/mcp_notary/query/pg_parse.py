"""What a PostgreSQL statement would call, from the server's own parse tree, checked before
it is planned: the `sql` command's function allow-list (SQLite has an authorizer for this;
PostgreSQL has none, and a plan does not show what a function does).

The statement is sent as a Parse message (parsed and analysed, nothing planned or run) with
`debug_print_parse` on, and the server answers with the analysed tree as a LOG message. In it
every function call, aggregate and window function names its function by oid, and every
operator its operator by oid; names the statement chose (aliases) are printed with their
spaces escaped, so they cannot pose as a field. The tree is also written to the server log,
like any LOG message the server's `log_min_messages` keeps.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import psycopg

from mcp_notary.query.model import SqlRefused

__all__ = ["PG_FUNCTIONS", "check_parse_tree"]

# Functions of `pg_catalog` a statement may call: text, numbers, dates, JSON, arrays, full-text
# search, aggregates and window functions; casts between built-in types and operators of
# `pg_catalog` are allowed as well. Not on it: anything that reads files or large objects
# (`pg_read_file`, `pg_ls_dir`, `lo_import`, `lo_get`), changes or reveals settings
# (`set_config`, `current_setting`), runs SQL text (`query_to_xml`, `dblink`), signals or
# locks (`pg_terminate_backend`, `pg_advisory_lock`), sleeps, or builds a value of any size
# from a number (`repeat`, `lpad`, `rpad`, `array_fill`, `format`'s widths).
_PG_FUNCTIONS_TEXT = """
    abs age array_agg array_append array_cat array_length array_lower array_ndims
    array_position array_positions array_prepend array_remove array_to_json array_to_string
    array_upper ascii avg bit_and bit_length bit_or bool_and bool_or btrim cardinality cbrt
    ceil ceiling char_length character_length chr clock_timestamp concat concat_ws
    convert_from corr count covar_pop covar_samp cume_dist date_bin date_part date_trunc
    decode degrees dense_rank div encode every exp extract first_value floor
    gen_random_uuid generate_series generate_subscripts get_bit get_byte greatest
    in_range initcap isfinite json_agg json_array_elements json_array_elements_text
    json_array_length json_build_array json_build_object json_each json_each_text
    json_extract_path json_extract_path_text json_object_agg json_object_keys
    json_populate_record json_strip_nulls json_typeof jsonb_agg jsonb_array_elements
    jsonb_array_elements_text jsonb_array_length jsonb_build_array jsonb_build_object
    jsonb_each jsonb_each_text jsonb_extract_path jsonb_extract_path_text jsonb_insert
    jsonb_object_agg jsonb_object_keys jsonb_path_exists jsonb_path_match jsonb_path_query
    jsonb_path_query_array jsonb_path_query_first jsonb_pretty jsonb_set jsonb_strip_nulls
    jsonb_typeof justify_days justify_hours justify_interval lag last_value lead least left
    length ln log log10 lower ltrim make_date make_interval make_time make_timestamp
    make_timestamptz max md5 min mod mode now nth_value ntile num_nonnulls num_nulls
    octet_length overlay percent_rank percentile_cont percentile_disc phraseto_tsquery pi
    plainto_tsquery position power quote_ident quote_literal quote_nullable radians random
    rank regexp_count regexp_instr regexp_like regexp_match regexp_matches regexp_replace
    regexp_split_to_array regexp_split_to_table regexp_substr replace reverse right round
    row_number row_to_json rtrim scale sha224 sha256 sha384 sha512 sign split_part sqrt
    starts_with statement_timestamp stddev stddev_pop stddev_samp string_agg
    string_to_array strpos substr substring sum timeofday timezone to_char to_date to_hex
    to_json to_jsonb to_number to_timestamp to_tsquery to_tsvector transaction_timestamp
    translate trim_array trim_scale trunc ts_headline ts_rank ts_rank_cd unnest upper
    var_pop var_samp variance websearch_to_tsquery width_bucket bernoulli system
    """
PG_FUNCTIONS = frozenset(_PG_FUNCTIONS_TEXT.split())
# The function of the store's own schema a statement may call: the search vector
# (`mcp_notary_search_vector(body) @@ 'word'::tsquery`, docs/access.md).
_STORE_FUNCTIONS = frozenset({"mcp_notary_search_vector"})

_FUNCTION_FIELDS = re.compile(
    r":(?:funcid|aggfnoid|winfnoid|tsmhandler|startInRangeFunc|endInRangeFunc) (\d+)"
)
_OPERATOR_FIELDS = re.compile(r":(?:opno|sortop|eqop) (\d+)")
_OPERATOR_LISTS = re.compile(r":opnos \(o ([\d ]+)\)")
_COMMAND = re.compile(r":commandType (\d+)")
_SELECT = "1"  # CmdType CMD_SELECT; 2-5 write, 6 is a utility statement (COPY, SET...)

_FUNCTIONS_SQL = """
SELECT p.oid::int8, n.nspname, p.proname, p.oid IN (SELECT castfunc FROM pg_cast),
       n.nspname = current_schema()
FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
WHERE p.oid = ANY(%s::oid[])
"""
_OPERATORS_SQL = """
SELECT o.oid::int8, o.oprname, o.oprcode::oid::int8 FROM pg_operator AS o
WHERE o.oid = ANY(%s::oid[])
"""


def parse_tree(db: psycopg.Connection[Any], statement: str, args: Sequence[Any] | None) -> str:
    """The analysed parse tree(s) the server logs for `statement` (sent as a Parse message,
    inside the caller's transaction). Raises the server's error for a statement that does not
    parse (psycopg.Error), as executing it would."""
    text = statement
    if args:  # the parameters as literals: the tree is the same, and Parse needs no types
        with psycopg.ClientCursor(db) as client:
            text = client.mogrify(statement, args)
    trees: list[str] = []

    def collect(diag: psycopg.errors.Diagnostic) -> None:
        if (diag.message_primary or "").startswith("parse tree"):
            trees.append(diag.message_detail or "")

    db.execute("SET LOCAL debug_pretty_print = off; SET LOCAL debug_print_parse = on; "
               "SET LOCAL client_min_messages = log")  # fmt: skip
    db.add_notice_handler(collect)
    try:
        result = db.pgconn.prepare(b"", text.encode())
    finally:
        db.remove_notice_handler(collect)
    if result.error_message:
        raise psycopg.errors.error_from_result(result, encoding=db.info.encoding)
    db.execute("SET LOCAL debug_print_parse = off; SET LOCAL client_min_messages = notice")
    if not trees:
        raise SqlRefused("sql: refused: the server did not show what the statement calls")
    return "\n".join(trees)


def check_parse_tree(
    db: psycopg.Connection[Any], statement: str, args: Sequence[Any] | None, refused: str
) -> None:
    """Refuse (`SqlRefused`, its message starting with `refused`) a statement that is not one
    SELECT, or that calls a function or operator off the allow-list."""
    tree = parse_tree(db, statement, args)
    if any(command != _SELECT for command in _COMMAND.findall(tree)):
        raise SqlRefused(f"{refused} (not a SELECT)")
    functions = {int(oid) for oid in _FUNCTION_FIELDS.findall(tree)} - {0}  # 0: none
    operators = {int(oid) for oid in _OPERATOR_FIELDS.findall(tree)}
    operators |= {int(oid) for group in _OPERATOR_LISTS.findall(tree) for oid in group.split()}
    operators.discard(0)
    found = {
        oid: (name, code) for oid, name, code in db.execute(_OPERATORS_SQL, (list(operators),))
    }
    for oid in operators - found.keys():
        raise SqlRefused(f"{refused} (it uses an unknown operator {oid})")
    codes = {code: name for name, code in found.values()}
    rows = db.execute(_FUNCTIONS_SQL, (list(functions | codes.keys()),)).fetchall()
    known = {oid: (schema, name, cast, own) for oid, schema, name, cast, own in rows}
    for oid in sorted((functions | codes.keys()) - known.keys()):
        raise SqlRefused(f"{refused} (it calls an unknown function {oid})")
    for oid in sorted(functions):
        schema, name, cast, own = known[oid]
        builtin = schema == "pg_catalog" and (name in PG_FUNCTIONS or cast)
        if not (builtin or (own and name in _STORE_FUNCTIONS)):
            raise SqlRefused(f"sql: refused: {name}() is not an allowed function")
    for oid, operator in sorted(codes.items()):
        if known[oid][0] != "pg_catalog":
            raise SqlRefused(f"sql: refused: operator {operator} is not a built-in operator")
