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
 */
import type { Snapshot, TableSnapshot } from '../../core/validation.js';
import type { Sql } from './batch.js';
import type { Queryable } from './connection.js';

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
}

const SNAPSHOT_SQL = `
WITH t AS (
  SELECT c.oid, n.nspname AS schema, c.relname AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p')
     AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
     AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1::text[]) OR (n.nspname || '.' || c.relname) = ANY($3::text[])
          OR (n.nspname || '.' || c.relname) = ANY($6::text[]))
     AND (cardinality($2::text[]) = 0 OR c.relname = ANY($2::text[]))
     AND NOT (n.nspname = $4 AND c.relname = $5)
)
SELECT t.schema, t.name,
  CASE WHEN $3::text[] IS NULL OR (t.schema || '.' || t.name) = ANY($3::text[])
       THEN (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', t.schema, t.name), false, true, '')))[1]::text::bigint
  END AS row_count,
  (SELECT coalesce(json_object_agg(a.attname, json_build_object('type', format_type(a.atttypid, a.atttypmod), 'nullable', NOT a.attnotnull)), '{}')
     FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
  (SELECT coalesce(json_object_agg(k.conname, json_build_object('type', k.contype, 'definition', pg_get_constraintdef(k.oid), 'validated', k.convalidated)), '{}')
     FROM pg_constraint k WHERE k.conrelid = t.oid) AS constraints,
  (SELECT coalesce(json_object_agg(ic.relname, json_build_object('definition', pg_get_indexdef(i.indexrelid), 'valid', i.indisvalid)), '{}')
     FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = t.oid) AS indexes
FROM t`;

export async function takeSnapshot(db: Queryable, scope: SnapshotScope): Promise<Snapshot> {
  const q = snapshotQuery(scope);
  return readSnapshot((await db.query(q.text, q.values as unknown[])).rows);
}

/** The snapshot's query, for a batch (adapters/pg/batch.ts); its rows go to readSnapshot. */
export function snapshotQuery(scope: SnapshotScope): Sql {
  return {
    text: SNAPSHOT_SQL,
    values: [scope.schemas, scope.tables ?? [], scope.count ?? null, scope.exclude?.schema ?? '', scope.exclude?.table ?? '', scope.look ?? []],
  };
}

export function readSnapshot(rows: any[]): Snapshot {
  const tables: Record<string, TableSnapshot> = {};
  for (const row of rows) {
    tables[`${row.schema}.${row.name}`] = {
      schema: row.schema,
      name: row.name,
      rowCount: row.row_count === null ? null : Number(row.row_count),
      columns: row.columns,
      constraints: row.constraints,
      indexes: row.indexes,
    };
  }
  return { tables };
}

/** Invalid indexes in a schema (left by a failed CREATE INDEX CONCURRENTLY). */
export async function invalidIndexes(db: Queryable, schema: string): Promise<string[]> {
  const r = await db.query<{ name: string }>(
    `SELECT ic.relname AS name FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
       JOIN pg_namespace n ON n.oid = ic.relnamespace
      WHERE NOT i.indisvalid AND n.nspname = $1 ORDER BY 1`,
    [schema],
  );
  return r.rows.map((x) => x.name);
}
