/**
 * The tracking table (`migrations` by default, as in the guide). `name` is the
 * key, so the guide's troubleshooting (DELETE FROM migrations WHERE name = ...)
 * keeps working. A table left by the guide's older runner is upgraded in place
 * by adding the columns it lacks.
 */
import type { AppliedRow } from '../../core/plan.js';
import { quoteIdent, type Queryable } from './connection.js';
import { SQLSTATE } from './sqlstate.js';

export interface LedgerLocation {
  schema: string;
  table: string;
}

export function qualified(l: LedgerLocation): string {
  return `${quoteIdent(l.schema)}.${quoteIdent(l.table)}`;
}

/** Rows of the tracking table, or [] when it does not exist yet (reading never creates it). */
export async function readLedger(db: Queryable, l: LedgerLocation): Promise<AppliedRow[]> {
  try {
    const r = await db.query(
      `SELECT name, checksum, applied_at, duration_ms, applied_by FROM ${qualified(l)} ORDER BY name`,
    );
    return r.rows.map((row) => ({
      name: row.name,
      checksum: row.checksum ?? null,
      appliedAt: row.applied_at ?? null,
      durationMs: row.duration_ms ?? null,
      appliedBy: row.applied_by ?? null,
    }));
  } catch (e: any) {
    if (e?.code === SQLSTATE.undefinedTable || e?.code === '3F000' /* schema does not exist */) return [];
    if (e?.code === SQLSTATE.undefinedColumn) {
      // the guide's runner's table: name only (plus id / executed_at)
      const r = await db.query(`SELECT name FROM ${qualified(l)} ORDER BY name`);
      return r.rows.map((row) => ({ name: row.name, checksum: null, appliedAt: null, durationMs: null, appliedBy: null }));
    }
    throw e;
  }
}

/** Create the schema and table if needed, and add the columns an older table lacks (one query when all is there). */
export async function ensureLedger(db: Queryable, l: LedgerLocation): Promise<void> {
  const r = await db.query<{ schema: boolean; cols: string[] | null }>(
    `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS schema,
            (SELECT array_agg(attname::text) FROM pg_attribute WHERE attrelid = to_regclass($2) AND attnum > 0 AND NOT attisdropped) AS cols`,
    [l.schema, qualified(l)],
  );
  const { schema, cols } = r.rows[0]!;
  // CREATE SCHEMA IF NOT EXISTS checks CREATE on the database before it checks existence:
  // a role allowed to create in an existing schema (but not to create schemas) would be refused.
  if (!schema) await db.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(l.schema)}`);
  if (!cols) {
    await db.query(
      `CREATE TABLE IF NOT EXISTS ${qualified(l)} (
         name text PRIMARY KEY,
         checksum text,
         applied_at timestamptz NOT NULL DEFAULT now(),
         duration_ms integer,
         applied_by text
       )`,
    );
    return;
  }
  const have = new Set(cols);
  const add = [
    ['checksum', 'text'],
    ['applied_at', 'timestamptz DEFAULT now()'],
    ['duration_ms', 'integer'],
    ['applied_by', 'text'],
  ].filter(([c]) => !have.has(c!));
  if (add.length) {
    await db.query(`ALTER TABLE ${qualified(l)} ${add.map(([c, t]) => `ADD COLUMN IF NOT EXISTS ${c} ${t}`).join(', ')}`);
  }
}

export async function recordApplied(
  db: Queryable,
  l: LedgerLocation,
  row: { name: string; checksum: string; durationMs: number; appliedBy: string },
): Promise<void> {
  await db.query(
    `INSERT INTO ${qualified(l)} (name, checksum, applied_at, duration_ms, applied_by) VALUES ($1, $2, clock_timestamp(), $3, $4)`,
    [row.name, row.checksum, row.durationMs, row.appliedBy],
  );
}
