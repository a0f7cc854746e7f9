/**
 * The PostgreSQL statements that read the catalog, take the run lock and watch replicas: fixed
 * text, kept beside the batch builders (postgres-sql.ts) so that all SQL text for PostgreSQL lives
 * in the db/*-sql.ts files. Parameters are noted where a statement takes any.
 */

/** $1: the keys table, quoted (to_regclass parses it as an identifier). */
export const KEYS_TABLE_EXISTS_SQL = "SELECT to_regclass($1)::text AS found";

/** Ordinary and partitioned tables (not the partitions) in the search path. */
export const CATALOG_TABLES_SQL = `SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND n.nspname = ANY (current_schemas(false))
        ORDER BY n.nspname, c.relname`;

export const CATALOG_COLUMNS_SQL = `SELECT a.attrelid::int8 AS oid, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
              a.attnotnull AS not_null,
              a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype, 'name'::regtype) AS is_text
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
          AND n.nspname = ANY (current_schemas(false))
        ORDER BY a.attrelid, a.attnum`;

/** Unique indexes (primary key first) whose columns are all NOT NULL, usable to address a row. */
export const CATALOG_UNIQUE_KEYS_SQL = `SELECT i.indrelid::int8 AS oid, i.indisprimary AS is_primary,
              array_agg(a.attname::text ORDER BY k.ordinality) AS columns
         FROM pg_index i
         JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ordinality)
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid
          AND n.nspname = ANY (current_schemas(false))
        GROUP BY i.indrelid, i.indexrelid, i.indisprimary
       HAVING bool_and(a.attnotnull)
        ORDER BY i.indrelid, NOT i.indisprimary, count(*), i.indexrelid`;

/** $1: the keys table, quoted. Single-column foreign keys to its active_key_digest. */
export const KEYS_TABLE_FOREIGN_KEYS_SQL = `SELECT c.conrelid::int8 AS oid, a.attname AS column, c.conname AS constraint
         FROM pg_constraint c
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         JOIN pg_attribute ref ON ref.attrelid = c.confrelid AND ref.attnum = c.confkey[1]
        WHERE c.contype = 'f' AND cardinality(c.conkey) = 1
          AND c.confrelid = to_regclass($1) AND ref.attname = 'active_key_digest'`;

/** $1: the advisory-lock class, $2: the object id (both int4). */
export const TRY_RUN_LOCK_SQL = "SELECT pg_try_advisory_lock($1, $2) AS locked";
export const TRY_SHARED_RUN_LOCK_SQL = "SELECT pg_try_advisory_lock_shared($1, $2) AS locked";

/** $1..$2 the classes of N-part jobs, $3 this job's, $4 the database's lock object: another job's class held, if any. */
export const OTHER_PARTITION_COUNTS_SQL = `SELECT min(l.classid::int8)::text AS parts FROM pg_locks l
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid::int8 BETWEEN $1 AND $2 AND l.classid::int8 <> $3
               AND l.objid::int8 = $4 AND l.objsubid = 2
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            HAVING count(*) > 0`;
/** The lock session holds nothing but dbcrypt's locks: release them all at once. */
export const RUN_UNLOCK_ALL_SQL = "SELECT pg_advisory_unlock_all()";

/** $1, $2 as for TRY_RUN_LOCK_SQL: who holds the run lock in this database. */
export const RUN_LOCK_HOLDER_SQL = `SELECT a.application_name, a.client_addr::text, a.backend_start, a.pid
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.classid::int8 = $1 AND l.objid::int8 = $2 AND l.objsubid = 2
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`;

/** Worst replay lag, and how many replicas hide their state from this role. */
export const REPLICA_LAG_SQL =
  "SELECT EXTRACT(EPOCH FROM max(replay_lag)) * 1000 AS lag_ms, count(*) FILTER (WHERE state IS NULL) AS hidden FROM pg_stat_replication";
