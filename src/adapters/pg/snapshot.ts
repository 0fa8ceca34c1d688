/**
 * One catalog query that snapshots tables for the validator: exact row counts
 * (count(*) through query_to_xml, so the whole snapshot is one round trip),
 * columns, constraints and indexes. Run inside the migration's transaction so
 * before and after see the same data apart from the migration's own changes.
 *
 * The schemas in scope (the tenant's, under --schema) are always looked at; the
 * tables to count are looked at wherever they are (a file under --schema may
 * write into public). The engine asks for every schema when it counts every
 * table (code it could not see through may write anywhere).
 *
 * "Every table" under --schema (`countIn`): counting every table of a
 * database of 10,000 tenant schemas reads all of them and takes a lock on each
 * (waiting on other tenants' migrations; more locks than the shared lock table
 * holds). So the tenant's schema is counted, and every other table carries
 * this transaction's own write counters instead, compared before and after:
 * a row count can change only through rows this transaction inserted or
 * deleted, which pg_stat_get_xact_tuples_inserted/deleted count (triggers,
 * cascades, COPY and functions included; attempts rolled back to a savepoint
 * too: a conservative "changed"), or through a TRUNCATE, which resets them but
 * needs an ACCESS EXCLUSIVE lock that this transaction then holds (so such a
 * table is reported as not comparable). Structure is still compared
 * everywhere. With track_counts off there are no counters: every table is
 * counted.
 */
import type { Snapshot, TableSnapshot } from '../../core/validation.js';
import type { Sql } from './batch.js';
import type { Queryable } from './connection.js';
import { catalogQualified } from './catalog-names.js';
import { querySafely } from './safe-path.js';

export interface SnapshotScope {
  /** schemas to look at; empty = every user schema (tables to count are looked at wherever they are) */
  schemas: string[];
  /** restrict to these table names (the guide's snapshotBefore(['users'])); empty = all */
  tables?: string[];
  /** "schema.table" names to count; undefined = count every table, [] = none */
  count?: string[];
  /** "schema.table" names looked at (structure) wherever they are, besides `schemas` */
  look?: string[];
  /** the tracking table, left out of the snapshot */
  exclude?: { schema: string; table: string };
  /**
   * With count undefined (every table): count only the tables of these
   * schemas (and of `look`); every other table gets this transaction's
   * write counters instead (TableSnapshot.written), read without a lock and
   * without reading the table. Unset or empty: count every table.
   */
  countIn?: string[];
}

/*
 * A schema's relations are reached through pg_depend's (refclassid, refobjid)
 * index from the schema's oid, and a named table through pg_class's (relname,
 * relnamespace) index: never a scan of pg_class, whose size is the whole fleet
 * on a schema-per-tenant database (it has no index on relnamespace). Only
 * "every user schema" ($1 empty, a database of its own) reads all of pg_class.
 * $8 countIn, $9 look (counted with countIn).
 * $6/$7: the (schema, table) pairs that the "schema.table" names of $3 and $6
 * can be split into (namePairs), looked up by name.
 */
/*
 * Constraints and indexes of the tables written only through counters (not
 * counted): their catalog rows as they are, not pg_get_constraintdef() /
 * pg_get_indexdef(), which wait for a lock on the table when another session
 * (another tenant's migration) holds an ACCESS EXCLUSIVE one. Any change to
 * them changes these texts; the issue then quotes them raw.
 */
const RAW_CONSTRAINTS = catalogQualified(`(SELECT coalesce(json_object_agg(k.conname, json_build_object('type', k.contype, 'definition',
    concat_ws(' ', k.contype, k.conkey::text, k.confrelid::regclass::text, k.confkey::text, k.confupdtype, k.confdeltype, k.condeferrable, k.condeferred, k.conbin::text),
    'validated', k.convalidated)), '{}')
     FROM pg_constraint k WHERE k.conrelid = t.oid)`);
const RAW_INDEXES = catalogQualified(`(SELECT coalesce(json_object_agg(ic.relname, json_build_object('definition',
    concat_ws(' ', ic.relam, i.indisunique, i.indkey::text, i.indclass::text, i.indcollation::text, i.indoption::text, i.indexprs::text, i.indpred::text),
    'valid', i.indisvalid)), '{}')
     FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = t.oid)`);

const USER_SCHEMA = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'`;

/*
 * A table's row count. The snapshot runs on the system schemas' path
 * (adapters/pg/safe-path.ts), but planning the count may run the user's code:
 * a SQL function in an index expression is inlined, its body read with the
 * path as it is then. So the count is planned and run on the file's own path
 * (saved by ENTER_SAFE_PATH; the current one when the snapshot runs without it),
 * every name in it qualified, and the path is put back right after: the
 * definitions read around it (pg_get_constraintdef...) are printed on one path.
 * Each step depends on the one before (LATERAL), so they run in that order.
 */
const ROW_COUNT = `(SELECT (pg_catalog.xpath('/row/c/text()', x.doc))[1]::pg_catalog.text::pg_catalog.int8
     FROM (SELECT pg_catalog.current_setting('search_path') AS was,
                  pg_catalog.set_config('search_path', COALESCE(pg_catalog.current_setting('flotilla.search_path', true), pg_catalog.current_setting('search_path')), true) AS now) p
     CROSS JOIN LATERAL (SELECT pg_catalog.query_to_xml(CASE WHEN p.now IS NOT NULL THEN pg_catalog.format('SELECT pg_catalog.count(*) AS c FROM %I.%I', t.schema, t.name) END,
                  false, true, '') AS doc) x
     CROSS JOIN LATERAL (SELECT pg_catalog.set_config('search_path', CASE WHEN x.doc IS NULL THEN p.was ELSE p.was END, true) AS back) b)`;
const SNAPSHOT_SQL = catalogQualified(`
WITH exclusive AS MATERIALIZED (
  SELECT l.relation FROM pg_locks l
   WHERE l.locktype = 'relation' AND l.pid = pg_backend_pid() AND l.mode = 'AccessExclusiveLock' AND l.granted AND $3::text[] IS NULL
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
), t AS (
  SELECT c.oid, n.nspname AS schema, c.relname AS name
    FROM pg_namespace n
    JOIN pg_depend d ON d.refclassid = 'pg_namespace'::regclass AND d.refobjid = n.oid AND d.classid = 'pg_class'::regclass AND d.objsubid = 0
    JOIN pg_class c ON c.oid = d.objid
   WHERE n.nspname = ANY($1::text[]) AND ${USER_SCHEMA}
     AND c.relkind IN ('r', 'p') AND (cardinality($2::text[]) = 0 OR c.relname = ANY($2::text[]))
  UNION
  SELECT c.oid, n.nspname, c.relname
    FROM unnest($6::text[], $7::text[]) AS w(schema, name)
    -- LATERAL ... OFFSET 0: a lookup by (relname, relnamespace) per table, never all the schemas' tables of that name
    CROSS JOIN LATERAL (SELECT n.oid, n.nspname FROM pg_namespace n WHERE n.nspname = w.schema OFFSET 0) n
    CROSS JOIN LATERAL (SELECT c.oid, c.relname, c.relkind FROM pg_class c WHERE c.relname = w.name AND c.relnamespace = n.oid OFFSET 0) c
   WHERE ${USER_SCHEMA} AND c.relkind IN ('r', 'p') AND (cardinality($2::text[]) = 0 OR c.relname = ANY($2::text[]))
  UNION
  SELECT c.oid, n.nspname, c.relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE cardinality($1::text[]) = 0 AND ${USER_SCHEMA}
     AND c.relkind IN ('r', 'p') AND (cardinality($2::text[]) = 0 OR c.relname = ANY($2::text[]))
)
SELECT t.schema, t.name,
  -- a table written through counters is counted too (we hold a write lock on it: no wait), for the message
  CASE WHEN t.counted OR (t.ins + t.del > 0 AND NOT t.exclusive)
       THEN ${ROW_COUNT}
  END AS row_count,
  CASE WHEN t.ins IS NOT NULL THEN json_build_object('inserted', t.ins, 'deleted', t.del, 'exclusive', t.exclusive) END AS written,
  (SELECT coalesce(json_object_agg(a.attname, json_build_object('type', format_type(a.atttypid, a.atttypmod), 'nullable', NOT a.attnotnull)), '{}')
     FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
  CASE WHEN t.counted OR $3::text[] IS NOT NULL THEN
  (SELECT coalesce(json_object_agg(k.conname, json_build_object('type', k.contype, 'definition', pg_get_constraintdef(k.oid), 'validated', k.convalidated)), '{}')
     FROM pg_constraint k WHERE k.conrelid = t.oid)
  ELSE ${RAW_CONSTRAINTS} END AS constraints,
  CASE WHEN t.counted OR $3::text[] IS NOT NULL THEN
  (SELECT coalesce(json_object_agg(ic.relname, json_build_object('definition', pg_get_indexdef(i.indexrelid), 'valid', i.indisvalid)), '{}')
     FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = t.oid)
  ELSE ${RAW_INDEXES} END AS indexes
FROM (SELECT t.*,
        CASE WHEN NOT t.counted AND $3::text[] IS NULL THEN pg_stat_get_xact_tuples_inserted(t.oid) END AS ins,
        CASE WHEN NOT t.counted AND $3::text[] IS NULL THEN pg_stat_get_xact_tuples_deleted(t.oid) END AS del,
        CASE WHEN NOT t.counted AND $3::text[] IS NULL THEN t.oid IN (SELECT relation FROM exclusive) END AS exclusive
   FROM (SELECT t.*,
        CASE WHEN $3::text[] IS NULL
             THEN cardinality($8::text[]) = 0 OR t.schema = ANY($8::text[]) OR (t.schema || '.' || t.name) = ANY($9::text[])
                  OR NOT current_setting('track_counts')::bool -- no counters: count
             ELSE (t.schema || '.' || t.name) = ANY($3::text[]) END AS counted
        FROM t WHERE NOT (t.schema = $4 AND t.name = $5)) t) t`);

/** Every (schema, table) split of "schema.table" names (a schema or table name may itself hold a dot). */
export function namePairs(names: string[]): [string[], string[]] {
  const schemas: string[] = [];
  const tables: string[] = [];
  for (const q of new Set(names)) {
    for (let i = q.indexOf('.'); i > 0; i = q.indexOf('.', i + 1)) {
      schemas.push(q.slice(0, i));
      tables.push(q.slice(i + 1));
    }
  }
  return [schemas, tables];
}

export async function takeSnapshot(db: Queryable, scope: SnapshotScope): Promise<Snapshot> {
  const q = snapshotQuery(scope);
  return readSnapshot((await db.query(q.text, q.values as unknown[])).rows);
}

/** The snapshot's query, for a batch (adapters/pg/batch.ts); its rows go to readSnapshot. */
export function snapshotQuery(scope: SnapshotScope): Sql {
  return {
    text: SNAPSHOT_SQL,
    values: [
      scope.schemas,
      scope.tables ?? [],
      scope.count ?? null,
      scope.exclude?.schema ?? '',
      scope.exclude?.table ?? '',
      ...namePairs([...(scope.count ?? []), ...(scope.look ?? [])]),
      scope.countIn ?? [],
      scope.look ?? [],
    ],
  };
}

export function readSnapshot(rows: any[]): Snapshot {
  const tables: Record<string, TableSnapshot> = {};
  for (const row of rows) {
    tables[`${row.schema}.${row.name}`] = {
      schema: row.schema,
      name: row.name,
      rowCount: row.row_count === null ? null : Number(row.row_count),
      ...(row.written ? { written: { inserted: Number(row.written.inserted), deleted: Number(row.written.deleted), exclusive: row.written.exclusive } } : {}),
      columns: row.columns,
      constraints: row.constraints,
      indexes: row.indexes,
    };
  }
  return { tables };
}

/** Invalid indexes in a schema (left by a failed CREATE INDEX CONCURRENTLY). */
export async function invalidIndexes(db: Queryable, schema: string): Promise<string[]> {
  // the schema's tables through pg_depend, their indexes through pg_index.indrelid (adapters/pg/snapshot.ts top)
  // on the system schemas' path (adapters/pg/safe-path.ts), outside a transaction: one message, one implicit transaction
  const q = catalogQualified(`SELECT ic.relname AS name FROM pg_namespace n
       JOIN pg_depend d ON d.refclassid = 'pg_namespace'::regclass AND d.refobjid = n.oid AND d.classid = 'pg_class'::regclass AND d.objsubid = 0
       JOIN pg_index i ON i.indrelid = d.objid JOIN pg_class ic ON ic.oid = i.indexrelid
      WHERE NOT i.indisvalid AND n.nspname = $1 AND ic.relnamespace = n.oid ORDER BY 1`);
  return (await querySafely(db, { text: q, values: [schema] })).map((x: { name: string }) => x.name);
}
