/**
 * The tracking table (`migrations` by default, as in the guide). `name` is the
 * key, so the guide's troubleshooting (DELETE FROM migrations WHERE name = ...)
 * keeps working. A table left by the guide's older runner is upgraded in place
 * by adding the columns it lacks; a table of any other shape (another tool's:
 * TypeORM, Laravel, Knex...) is refused, never altered (core/ledger-shape.ts).
 * A schema whose name differs from an existing one only by case is refused, never
 * created as a twin. The DDL (schema, table, added columns) runs in one transaction.
 */
import { ForeignTrackingTableError, SchemaCaseError } from '../../core/errors.js';
import { FLOTILLA_COLUMNS, ledgerShape } from '../../core/ledger-shape.js';
import type pg from 'pg';
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

function label(l: LedgerLocation): string {
  return `${l.schema}.${l.table}`;
}

/** Schemas named like `schema` but for case, when `schema` itself does not exist. */
const TWINS_SQL = `SELECT array_agg(nspname::text ORDER BY nspname) FROM pg_namespace
  WHERE lower(nspname) = lower($1) AND nspname <> $1 AND NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`;

async function refuseTwin(db: Queryable, schema: string): Promise<void> {
  const twins = (await db.query<{ t: string[] | null }>(`SELECT (${TWINS_SQL}) AS t`, [schema])).rows[0]?.t;
  if (twins?.length) throw new SchemaCaseError(schema, twins);
}

/**
 * Rows of the tracking table, or [] when it does not exist yet (reading never
 * creates it). One query: `SELECT *` tells the columns even when there are no rows.
 */
export async function readLedger(db: Queryable, l: LedgerLocation): Promise<AppliedRow[]> {
  let r: pg.QueryResult;
  try {
    r = await db.query(`SELECT * FROM ${qualified(l)} ORDER BY name`);
  } catch (e: any) {
    if (e?.code === SQLSTATE.undefinedTable || e?.code === SQLSTATE.invalidSchemaName) {
      await refuseTwin(db, l.schema);
      return [];
    }
    // no `name` column: not ours (Laravel's `migration`, ...)
    if (e?.code === SQLSTATE.undefinedColumn) throw await foreign(db, l);
    throw e;
  }
  const columns = r.fields.map((f) => f.name);
  const shape = ledgerShape(columns);
  if (!shape.ours) throw new ForeignTrackingTableError(label(l), columns, shape.tool);
  return r.rows.map((row) => ({
    name: row.name,
    checksum: row.checksum ?? null,
    appliedAt: row.applied_at ?? row.executed_at ?? null,
    durationMs: row.duration_ms ?? null,
    appliedBy: row.applied_by ?? null,
  }));
}

async function foreign(db: Queryable, l: LedgerLocation): Promise<ForeignTrackingTableError> {
  const r = await db.query<{ cols: string[] | null }>(
    `SELECT array_agg(attname::text ORDER BY attnum) AS cols FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`,
    [qualified(l)],
  );
  const columns = r.rows[0]?.cols ?? [];
  const shape = ledgerShape(columns);
  return new ForeignTrackingTableError(label(l), columns, shape.ours ? undefined : shape.tool);
}

export interface EnsureResult {
  /** the schema did not exist and was created (a new tenant schema) */
  createdSchema: boolean;
}

/**
 * Create the schema and table if needed, and add the columns a table of the
 * guide's runner lacks (one query when all is there). Refuses another tool's
 * table and a case twin of an existing schema before changing anything. The DDL
 * runs in a transaction of its own unless the caller's is open (`inTransaction`).
 */
export async function ensureLedger(db: Queryable, l: LedgerLocation, opts: { inTransaction?: boolean } = {}): Promise<EnsureResult> {
  const r = await db.query<{ schema: boolean; twins: string[] | null; cols: string[] | null }>(
    `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS schema,
            (${TWINS_SQL}) AS twins,
            (SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute WHERE attrelid = to_regclass($2) AND attnum > 0 AND NOT attisdropped) AS cols`,
    [l.schema, qualified(l)],
  );
  const { schema, twins, cols } = r.rows[0]!;
  if (!schema && twins?.length) throw new SchemaCaseError(l.schema, twins);
  const ddl: string[] = [];
  // CREATE SCHEMA IF NOT EXISTS checks CREATE on the database before it checks existence:
  // a role allowed to create in an existing schema (but not to create schemas) would be refused.
  if (!schema) ddl.push(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(l.schema)}`);
  if (!cols) {
    ddl.push(
      `CREATE TABLE IF NOT EXISTS ${qualified(l)} (
         name text PRIMARY KEY,
         checksum text,
         applied_at timestamptz NOT NULL DEFAULT now(),
         duration_ms integer,
         applied_by text
       )`,
    );
  } else {
    const shape = ledgerShape(cols);
    if (!shape.ours) throw new ForeignTrackingTableError(label(l), cols, shape.tool);
    if (shape.missing.length) ddl.push(`ALTER TABLE ${qualified(l)} ${shape.missing.map((m) => `ADD COLUMN IF NOT EXISTS ${m.column} ${m.type}`).join(', ')}`);
  }
  if (!ddl.length) return { createdSchema: false };
  if (opts.inTransaction) return { createdSchema: await runDdl(db, l, ddl, !schema) };
  try {
    await db.query('BEGIN');
    const created = await runDdl(db, l, ddl, !schema);
    await db.query('COMMIT');
    return { createdSchema: created };
  } catch (e) {
    await db.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

/**
 * The DDL, in the caller's open transaction. Before creating a schema, two
 * runners spelling it differently ("Acme", "acme": different migration locks)
 * are serialised on its lower-case name and the twin check is made again, so
 * they cannot both create one.
 */
async function runDdl(db: Queryable, l: LedgerLocation, ddl: string[], createsSchema: boolean): Promise<boolean> {
  if (createsSchema) {
    await db.query(`SELECT pg_advisory_xact_lock(hashtext('flotilla schema case'), hashtext(lower($1)))`, [l.schema]);
    const r = await db.query<{ exact: boolean; twins: string[] | null }>(
      `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS exact, (${TWINS_SQL}) AS twins`,
      [l.schema],
    );
    if (r.rows[0]?.twins?.length) throw new SchemaCaseError(l.schema, r.rows[0].twins);
    createsSchema = !r.rows[0]?.exact;
  }
  await db.query(ddl.join(';\n'));
  return createsSchema;
}

export async function recordApplied(
  db: Queryable,
  l: LedgerLocation,
  row: { name: string; checksum: string; durationMs: number; appliedBy: string },
): Promise<void> {
  await db.query(
    `INSERT INTO ${qualified(l)} (${FLOTILLA_COLUMNS.join(', ')}) VALUES ($1, $2, clock_timestamp(), $3, $4)`,
    [row.name, row.checksum, row.durationMs, row.appliedBy],
  );
}
