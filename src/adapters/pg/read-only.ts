/**
 * Read-only looks at a database for `lint` and `plan`: a session that cannot
 * write (default_transaction_read_only), gives up quickly on a lock
 * (lock_timeout) or a slow catalog (statement_timeout), and reads only the
 * tracking table and the sizes of named tables. Tables are found through
 * to_regclass (pg_class's (relname, relnamespace) index, under the session's
 * search_path), never by scanning pg_class.
 */
import type pg from 'pg';
import type { AppliedRow } from '../../core/plan.js';
import { connect, quoteIdent, type Queryable } from './connection.js';
import { readLedger, resolveLedger } from './ledger.js';

export interface ReadOnlyOptions {
  schema?: string;
  lockTimeoutMs?: number;
  statementTimeoutMs?: number;
  applicationName?: string;
  connectTimeoutMs?: number;
}

export async function openReadOnly(url: string, o: ReadOnlyOptions = {}): Promise<pg.Client> {
  const client = await connect(url, { applicationName: o.applicationName ?? 'flotilla-plan', connectTimeoutMs: o.connectTimeoutMs ?? 10_000 });
  try {
    await client.query(
      `SET default_transaction_read_only = on; SET lock_timeout = ${Math.round(o.lockTimeoutMs ?? 2000)}; SET statement_timeout = ${Math.round(o.statementTimeoutMs ?? 15_000)}` +
        (o.schema ? `; SET search_path = ${quoteIdent(o.schema)}` : ''),
    );
    return client;
  } catch (e) {
    await client.end().catch(() => {});
    throw e;
  }
}

export async function readApplied(db: Queryable, schema: string | undefined, trackingTable: string): Promise<AppliedRow[]> {
  return readLedger(db, await resolveLedger(db, schema, trackingTable));
}

/** The tracking table's rows of one database, on a read-only session closed afterwards. */
export async function readAppliedReadOnly(url: string, o: { schema?: string; trackingTable: string }): Promise<AppliedRow[]> {
  const client = await openReadOnly(url, { schema: o.schema, applicationName: 'flotilla-lint' });
  try {
    return await readApplied(client, o.schema, o.trackingTable);
  } finally {
    await client.end().catch(() => {});
  }
}

export interface RelationRef {
  schema?: string;
  name: string;
  /** an index: the size reported is its table's */
  index?: boolean;
}

export interface RelationSize {
  /** found in this database (under the session's search_path when unqualified) */
  found: boolean;
  /** the table, schema-qualified (for an index: the table it belongs to) */
  table: string | null;
  /** pg_class.reltuples: an estimate; null when the table was never vacuumed or analyzed */
  rows: number | null;
  /** pg_total_relation_size: heap, indexes and TOAST */
  bytes: number | null;
}

/**
 * One row per ref ($1 names, $2 kinds), in order: the table (for an index, its
 * table) found by to_regclass and pg_class's and pg_index's oid indexes. Run
 * with enable_seqscan off: on a small catalog the planner would rather scan
 * pg_index; on a large one a scan is what we must never do.
 */
export const RELATION_SIZES_SQL = `SELECT x.i, CASE WHEN c.oid IS NOT NULL THEN quote_ident(n.nspname) || '.' || quote_ident(c.relname) END AS table,
       c.reltuples::float8 AS reltuples, CASE WHEN c.oid IS NOT NULL THEN pg_total_relation_size(c.oid) END AS bytes
  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(n, k, i)
  LEFT JOIN LATERAL (SELECT CASE WHEN x.k = 'index' THEN (SELECT ix.indrelid FROM pg_index ix WHERE ix.indexrelid = to_regclass(x.n))
                                 ELSE to_regclass(x.n) END AS oid) o ON true
  LEFT JOIN pg_class c ON c.oid = o.oid
  LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
 ORDER BY x.i`;

/** Sizes of the named tables (or the tables of the named indexes), in one query. */
export async function relationSizes(db: Queryable, refs: readonly RelationRef[]): Promise<RelationSize[]> {
  if (refs.length === 0) return [];
  const names = refs.map((r) => (r.schema ? `${quoteIdent(r.schema)}.${quoteIdent(r.name)}` : quoteIdent(r.name)));
  const kinds = refs.map((r) => (r.index ? 'index' : 'table'));
  await db.query('BEGIN READ ONLY');
  let r: pg.QueryResult<{ i: string; table: string | null; reltuples: number | null; bytes: string | null }>;
  try {
    await db.query('SET LOCAL enable_seqscan = off');
    r = await db.query(RELATION_SIZES_SQL, [names, kinds]);
  } finally {
    await db.query('COMMIT').catch(() => {});
  }
  return r.rows.map((row) => ({
    found: row.table !== null,
    table: row.table,
    rows: row.reltuples === null || row.reltuples < 0 ? null : Math.round(row.reltuples),
    bytes: row.bytes === null ? null : Number(row.bytes),
  }));
}
