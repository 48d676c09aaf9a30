"""Versioned schema migrations of the PostgreSQL store.

Each migration is applied once, in order, inside one transaction with its row in
`schema_migrations`; a store that records a version this release does not know is refused
rather than written to. Append new migrations at the end; never edit a released one.

Roles are cluster-wide in PostgreSQL, so they are created if missing (never altered) and only
granted privileges on this schema's tables:
- `mcp_notary_writer`: SELECT and INSERT, nothing else (no UPDATE, DELETE or TRUNCATE), so a
  compromised proxy can add to the trail but not rewrite it;
- `mcp_notary_reader`: SELECT only, for query, verify and export.
Both are NOLOGIN groups: grant them to the login roles of proxies and readers.
"""

from __future__ import annotations

WRITER_ROLE = "mcp_notary_writer"
READER_ROLE = "mcp_notary_reader"

# The advisory lock every migrating process takes (per database), so concurrent first starts
# of many proxies do not race on CREATE TABLE. The number is arbitrary but fixed.
MIGRATION_LOCK_ID = 0x6D63706E6F74  # "mcpnot"
# Serialises the creation of monthly partitions (see migration 4).
PARTITION_LOCK_ID = MIGRATION_LOCK_ID + 1

BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

_ROLES = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
        CREATE ROLE {WRITER_ROLE} NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- created concurrently
END $$;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{READER_ROLE}') THEN
        CREATE ROLE {READER_ROLE} NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
"""

# Text columns that are compared or ordered use the "C" collation, so ordering is bytewise
# like SQLite's and RFC 3339 timestamps sort as time, whatever the database's locale.
_V1 = """
CREATE TABLE streams (
    stream text COLLATE "C" PRIMARY KEY,
    created_at text COLLATE "C" NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    process_start text NOT NULL,
    server_name text
);
CREATE TABLE events (
    stream text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    timestamp text COLLATE "C" NOT NULL,
    kind text NOT NULL,
    method text,
    tool text COLLATE "C",
    principal_id text COLLATE "C",
    outcome text,
    body bytea NOT NULL,
    leaf_hash bytea NOT NULL,
    chain_hash bytea NOT NULL,
    PRIMARY KEY (stream, seq)
);
CREATE INDEX events_event_id ON events (event_id);
CREATE INDEX events_timestamp ON events (timestamp);
CREATE INDEX events_tool ON events (tool, timestamp);
CREATE INDEX events_principal ON events (principal_id, timestamp);
CREATE TABLE checkpoints (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream text COLLATE "C" NOT NULL,
    origin text NOT NULL,
    size bigint NOT NULL,
    root bytea NOT NULL,
    note bytea NOT NULL,
    created_at text COLLATE "C" NOT NULL
);
CREATE INDEX checkpoints_stream ON checkpoints (stream, size);
-- Append-only by construction: the code has no UPDATE or DELETE path, the writer role has no
-- such grant, and these triggers stop accidents by the owner. The hash chain is the defence
-- against an attacker.
CREATE FUNCTION mcp_notary_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'mcp-notary % are append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION mcp_notary_append_only();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION mcp_notary_append_only();
"""

_V1_GRANTS = f"""
REVOKE ALL ON streams, events, checkpoints FROM PUBLIC;
GRANT USAGE ON SCHEMA {{schema}} TO {WRITER_ROLE}, {READER_ROLE};
GRANT SELECT, INSERT ON streams, events, checkpoints TO {WRITER_ROLE};
GRANT SELECT ON schema_migrations TO {WRITER_ROLE}, {READER_ROLE};
GRANT SELECT ON streams, events, checkpoints TO {READER_ROLE};
"""

# Retention deletes an event's row only after its position and hashes are kept in
# pruned_events; per-subject payload keys live in subject_keys (erasure deletes them).
_V2 = f"""
CREATE TABLE pruned_events (
    stream text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    timestamp text COLLATE "C" NOT NULL,
    kind text NOT NULL,
    leaf_hash bytea NOT NULL,
    chain_hash bytea NOT NULL,
    run_id text NOT NULL,
    PRIMARY KEY (stream, seq)
);
CREATE TRIGGER pruned_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON pruned_events
    FOR EACH STATEMENT EXECUTE FUNCTION mcp_notary_append_only();
DROP TRIGGER events_append_only ON events;
CREATE TRIGGER events_append_only BEFORE UPDATE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION mcp_notary_append_only();
CREATE FUNCTION mcp_notary_delete_only_pruned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pruned_events p WHERE p.stream = OLD.stream
                   AND p.seq = OLD.seq AND p.leaf_hash = OLD.leaf_hash
                   AND p.chain_hash = OLD.chain_hash) THEN
        RAISE EXCEPTION 'mcp-notary events are append-only';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER events_delete_only_pruned BEFORE DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION mcp_notary_delete_only_pruned();
CREATE TABLE subject_keys (
    key_id text COLLATE "C" PRIMARY KEY,
    wrapped bytea NOT NULL,
    created_at text NOT NULL
);
REVOKE ALL ON pruned_events, subject_keys FROM PUBLIC;
GRANT SELECT, INSERT ON pruned_events, subject_keys TO {WRITER_ROLE};
GRANT SELECT ON pruned_events, subject_keys TO {READER_ROLE};
"""

# The read side: access records (roles, API tokens, revocations; insert-only, like the events)
# and full-text search. The search vector is an expression index over the same fields as the
# embedded store's FTS5 index, split into words the same way (letters and digits; everything
# else separates) and case-folded. The functions swallow every error: a damaged body is left
# unindexed rather than failing the append, as on SQLite. Only the owner writes access records;
# the reader role reads them (it must check API tokens against their Argon2id hashes).
_V3 = f"""
CREATE TABLE access_grants (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    principal text COLLATE "C" NOT NULL,
    role text NOT NULL,
    action text NOT NULL CHECK (action IN ('grant', 'revoke')),
    at text COLLATE "C" NOT NULL,
    actor text NOT NULL,
    event_id text NOT NULL
);
CREATE TABLE access_tokens (
    token_id text COLLATE "C" PRIMARY KEY,
    principal text COLLATE "C" NOT NULL,
    name text NOT NULL,
    secret_hash text NOT NULL,
    created_at text COLLATE "C" NOT NULL,
    expires_at text COLLATE "C",
    actor text NOT NULL,
    event_id text NOT NULL
);
CREATE TABLE access_token_revocations (
    token_id text COLLATE "C" PRIMARY KEY,
    at text NOT NULL,
    actor text NOT NULL,
    event_id text NOT NULL
);
CREATE FUNCTION mcp_notary_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'mcp-notary access records are insert-only';
END $$;
CREATE TRIGGER access_grants_insert_only BEFORE UPDATE OR DELETE OR TRUNCATE ON access_grants
    FOR EACH STATEMENT EXECUTE FUNCTION mcp_notary_insert_only();
CREATE TRIGGER access_tokens_insert_only BEFORE UPDATE OR DELETE OR TRUNCATE ON access_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION mcp_notary_insert_only();
CREATE TRIGGER access_token_revocations_insert_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON access_token_revocations
    FOR EACH STATEMENT EXECUTE FUNCTION mcp_notary_insert_only();
REVOKE ALL ON access_grants, access_tokens, access_token_revocations FROM PUBLIC;
GRANT SELECT ON access_grants, access_tokens, access_token_revocations TO {READER_ROLE};

CREATE FUNCTION mcp_notary_search_text(body bytea) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    doc json;
BEGIN
    doc := convert_from(body, 'UTF8')::json;
    IF json_typeof(doc) <> 'object' THEN
        RETURN NULL;
    END IF;
    RETURN concat_ws(' ',
        doc ->> 'tool', doc ->> 'target', doc ->> 'arguments', doc ->> 'response_summary',
        doc #>> '{{error,message}}', doc ->> 'details', doc #>> '{{server,name}}',
        doc ->> 'trace_id',
        CASE WHEN json_typeof(doc -> 'sensitive_fields') = 'array' THEN
            (SELECT string_agg(f ->> 'kind', ' ')
               FROM json_array_elements(doc -> 'sensitive_fields') AS f)
        END);
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END $$;
CREATE FUNCTION mcp_notary_search_vector(body bytea) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE COST 1000 AS $$
DECLARE
    words text;
BEGIN
    words := regexp_replace({{schema}}.mcp_notary_search_text(body), '[^[:alnum:]]+', ' ', 'g');
    RETURN to_tsvector('simple'::regconfig, words);
EXCEPTION WHEN OTHERS THEN
    BEGIN  -- past tsvector's 1 MB: index the first part rather than nothing
        RETURN to_tsvector('simple'::regconfig, left(words, 100000));
    EXCEPTION WHEN OTHERS THEN
        RETURN NULL;
    END;
END $$;
CREATE INDEX events_search ON events USING gin (mcp_notary_search_vector(body));
"""

# Time partitioning. `events` becomes a table partitioned by `month` ('YYYY-MM' of the
# timestamp), one partition per month, so retention can drop or compact a month at once while
# `pruned_events` keeps every leaf and chain hash. The primary key must hold the partition key:
# (stream, seq, month) still refuses a repeated append (a retried batch, two processes closing
# one abandoned stream), except across a month boundary, where `verify` reports the repeat.
# Rows of an existing store keep `month = ''` and become the partition `events_legacy` without
# being rewritten (an empty one is dropped). `events_default` catches a row whose month has no
# partition; writers create their months' partitions through `mcp_notary_event_partition`, a
# SECURITY DEFINER function, because the writer role may not create tables.
_V4 = f"""
ALTER TABLE events RENAME TO events_legacy;
-- Its key becomes the partitioned table's (stream, seq, month), built when it is attached.
ALTER TABLE events_legacy DROP CONSTRAINT events_pkey;
ALTER INDEX events_event_id RENAME TO events_legacy_event_id;
ALTER INDEX events_timestamp RENAME TO events_legacy_timestamp;
ALTER INDEX events_tool RENAME TO events_legacy_tool;
ALTER INDEX events_principal RENAME TO events_legacy_principal;
ALTER INDEX events_search RENAME TO events_legacy_search;
DROP TRIGGER events_delete_only_pruned ON events_legacy;
ALTER TRIGGER events_append_only ON events_legacy RENAME TO events_legacy_append_only;
ALTER TABLE events_legacy ADD COLUMN month text COLLATE "C" NOT NULL DEFAULT '';
REVOKE ALL ON events_legacy FROM {WRITER_ROLE};
CREATE TABLE events (
    stream text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    timestamp text COLLATE "C" NOT NULL,
    kind text NOT NULL,
    method text,
    tool text COLLATE "C",
    principal_id text COLLATE "C",
    outcome text,
    body bytea NOT NULL,
    leaf_hash bytea NOT NULL,
    chain_hash bytea NOT NULL,
    month text COLLATE "C" NOT NULL,
    PRIMARY KEY (stream, seq, month)
) PARTITION BY RANGE (month);
CREATE INDEX events_event_id ON events (event_id);
CREATE INDEX events_timestamp ON events (timestamp);
CREATE INDEX events_tool ON events (tool, timestamp);
CREATE INDEX events_principal ON events (principal_id, timestamp);
CREATE INDEX events_search ON events USING gin (mcp_notary_search_vector(body));
-- Statement triggers of a partitioned table do not fire for a statement naming a partition:
-- every partition gets its own.
CREATE TRIGGER events_append_only BEFORE UPDATE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION mcp_notary_append_only();
CREATE TRIGGER events_delete_only_pruned BEFORE DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION mcp_notary_delete_only_pruned();
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE TRIGGER events_default_append_only BEFORE UPDATE OR TRUNCATE ON events_default
    FOR EACH STATEMENT EXECUTE FUNCTION mcp_notary_append_only();
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM events_legacy) THEN
        ALTER TABLE events ATTACH PARTITION events_legacy FOR VALUES FROM (MINVALUE) TO ('0');
    ELSE
        DROP TABLE events_legacy;
    END IF;
END $$;
REVOKE ALL ON events, events_default FROM PUBLIC;
GRANT SELECT, INSERT ON events TO {WRITER_ROLE};
GRANT SELECT ON events, events_default TO {READER_ROLE};
DO $$
BEGIN
    IF to_regclass('events_legacy') IS NOT NULL THEN
        GRANT SELECT ON events_legacy TO {READER_ROLE};
    END IF;
END $$;

CREATE FUNCTION mcp_notary_event_partition(p_month text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {{schema}}, pg_temp AS $$
DECLARE
    part text := 'events_' || replace(p_month, '-', '_');
BEGIN
    IF p_month !~ '^[0-9]{{4}}-(0[1-9]|1[0-2])$' THEN
        RAISE EXCEPTION 'mcp-notary: % is not a month (YYYY-MM)', p_month;
    END IF;
    -- Bounded, so a writer (or a wrong clock) cannot make thousands of partitions: rows of a
    -- month outside the bounds go to the default partition.
    IF p_month < '2000-01' OR to_date(p_month, 'YYYY-MM') > now() + interval '2 months' THEN
        RETURN false;
    END IF;
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock({PARTITION_LOCK_ID});
    IF to_regclass(part) IS NOT NULL
       OR EXISTS (SELECT 1 FROM events_default d WHERE d.month = p_month) THEN
        RETURN false;  -- created meanwhile, or the month already lives in the default
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)', part,
                   p_month, to_char(to_date(p_month, 'YYYY-MM') + interval '1 month', 'YYYY-MM'));
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR TRUNCATE ON %I FOR EACH STATEMENT '
                   'EXECUTE FUNCTION mcp_notary_append_only()', part || '_append_only', part);
    EXECUTE format('REVOKE ALL ON %I FROM PUBLIC', part);
    EXECUTE format('GRANT SELECT ON %I TO {READER_ROLE}', part);  -- `sql` may name a partition
    RETURN true;
END $$;
REVOKE ALL ON FUNCTION mcp_notary_event_partition(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mcp_notary_event_partition(text) TO {WRITER_ROLE};
"""

# A field of the hashed body, for filters the read side must decide on the body itself rather
# than on an editable column (kind, principal...). NULL for a body that is not UTF-8 JSON
# (`verify` reports it), so one damaged row cannot make every read fail. Not PARALLEL SAFE:
# the exception block needs a subtransaction.
_V5 = """
CREATE FUNCTION mcp_notary_body_field(body bytea, path text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL RESTRICTED AS $$
BEGIN
    RETURN convert_from(body, 'UTF8')::jsonb #>> path;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END $$;
"""

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "events, streams, checkpoints and roles", _ROLES + _V1 + _V1_GRANTS),
    (2, "pruned events and subject keys", _V2),
    (3, "access records and the search index", _V3),
    (4, "events partitioned by month", _V4),
    (5, "reading a field of the hashed body", _V5),
)
"""`(version, name, sql)`; the SQL may use `{schema}` for the quoted current schema."""

LATEST_VERSION = MIGRATIONS[-1][0]
