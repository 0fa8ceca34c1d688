/**
 * The tracking table (`migrations` by default, as in the guide). `name` is the
 * key, so the guide's troubleshooting (DELETE FROM migrations WHERE name = ...)
 * keeps working. A table left by the guide's older runner is upgraded in place
 * by adding the columns it lacks; a table of any other shape (another tool's:
 * TypeORM, Laravel, Knex...) is refused, never altered (core/ledger-shape.ts).
 * A schema or tracking table whose name differs from an existing one only by case
 * is refused, never created as a twin. The DDL (schema, table, added columns)
 * runs in one transaction.
 *
 * Where it is (resolveLedger): with --schema, there. Without, it must not
 * follow the session's search_path around (a schema named after the role
 * created later, ALTER DATABASE/ROLE ... SET search_path): the table in
 * current_schema() if there is one; else the first schema of the search path
 * holding a tracking table of that name (where an unqualified `migrations`
 * resolves); a tracking table only in schemas off the search path (a tenant
 * schema's, or the path changed so that it fell off) is refused, --schema
 * asked for, never silently used nor left behind for a new one; none at all: a
 * new one in current_schema(). The migration lock is keyed on the resolved location, so
 * runners with different search_paths take the same lock.
 */
import { AmbiguousLedgerError, ForeignTrackingTableError, LedgerMovedError, SchemaCaseError, TrackingTableCaseError } from '../../core/errors.js';
import { FLOTILLA_COLUMNS, ledgerShape, type TableInfo } from '../../core/ledger-shape.js';
import type pg from 'pg';
import type { AppliedRow } from '../../core/plan.js';
import { part, runBatch, type Part, type Sql } from './batch.js';
import { quoteIdent, type Queryable } from './connection.js';
import { ENTER_SAFE_PATH, FILE_SCHEMA, FILE_SCHEMAS_EXPLICIT, LEAVE_SAFE_PATH, querySafely } from './safe-path.js';
import { SQLSTATE } from './sqlstate.js';

export interface LedgerLocation {
  schema: string;
  table: string;
  /**
   * How it was chosen: given (--schema), the current schema's, found in the one
   * other schema holding it, or new (none anywhere: to be created in the current
   * schema, checked again under a database-wide lock when it is created).
   */
  how?: 'given' | 'current' | 'found' | 'new';
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

/**
 * Relations of schema $1 named like table $2 but for case, when $3 (the
 * qualified table) does not exist. Only then (the CASE). The schema's
 * relations come from pg_depend's (refclassid, refobjid) index: pg_class has
 * no index on relnamespace, and a schema-per-tenant database's pg_class holds
 * the whole fleet.
 */
const TABLE_TWINS_SQL = `CASE WHEN to_regclass($3) IS NULL THEN (SELECT array_agg(c.relname::text ORDER BY c.relname)
  FROM pg_namespace n
  JOIN pg_depend d ON d.refclassid = 'pg_namespace'::regclass AND d.refobjid = n.oid AND d.classid = 'pg_class'::regclass AND d.objsubid = 0
  JOIN pg_class c ON c.oid = d.objid
  WHERE n.nspname = $1 AND lower(c.relname) = lower($2) AND c.relname <> $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')) END`;

/** A relation's kind and columns (core/ledger-shape.ts TableInfo), as json; `c` is its pg_class row. */
const DESCRIBE_SQL = `json_build_object('kind', c.relkind::text, 'columns', coalesce((SELECT json_agg(json_build_object(
    'name', a.attname::text, 'type', format_type(a.atttypid, NULL), 'notNull', a.attnotnull, 'hasDefault', a.atthasdef OR a.attidentity <> '') ORDER BY a.attnum)
  FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]'::json))`;

/** Every schema's relation named exactly $1 (pg_class's (relname, relnamespace) index), temporary ones aside. */
const NAMED_SQL = `coalesce((SELECT json_agg(json_build_object('schema', n.nspname::text, 'info', ${DESCRIBE_SQL}) ORDER BY n.nspname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = $1 AND c.relpersistence <> 't'), '[]'::json)`;

const WRONG_OBJECT_TYPE = '42809';

type Named = { schema: string; info: TableInfo }[];

/** Schemas holding a tracking table of Flotilla's or the guide's shape named `table`. */
function ledgersIn(named: Named): string[] {
  return named.filter((n) => ledgerShape(n.info.columns, n.info.kind).ours).map((n) => n.schema);
}

/**
 * Where the tracking table is (see the top of this file). One query, no
 * lock: the caller takes the migration lock on the location returned.
 */
export async function resolveLedger(db: Queryable, schema: string | undefined, table: string): Promise<LedgerLocation> {
  if (schema) return { schema, table, how: 'given' };
  // the engine's query on the system schemas' path, reading the session's own (adapters/pg/safe-path.ts)
  return located(table, (await querySafely(db, { text: RESOLVE_SQL(literal(table)) }))[0] as ResolveRow);
}

type ResolveRow = { current: string | null; path: string[]; here: boolean; named: Named | null; others: Named | null };

/** The current schema, the search path, whether the current schema holds `table` ($tableSql), and if not, every schema's relation of that name. */
const RESOLVE_SQL = (tableSql: string) =>
  // the other schemas are looked at only when the current one has nothing of that name; run after ENTER_SAFE_PATH,
  // the session's current schema and path are what it saved
  `SELECT ${FILE_SCHEMA} AS current, ${FILE_SCHEMAS_EXPLICIT}::text[] AS path, x.here, CASE WHEN NOT x.here THEN ${NAMED_SQL.replaceAll('$1', tableSql)} END AS named,
          CASE WHEN x.here THEN ${ON_PATH_SQL(tableSql)} END AS others
     FROM (SELECT EXISTS (SELECT 1 FROM pg_class c WHERE c.relname = ${tableSql} AND c.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = ${FILE_SCHEMA})) AS here) x`;

/** The relations named $tableSql in the other schemas of the search path (a lookup by name and namespace each). */
const ON_PATH_SQL = (tableSql: string) => `coalesce((SELECT json_agg(json_build_object('schema', n.nspname::text, 'info', ${DESCRIBE_SQL}) ORDER BY n.nspname)
  FROM unnest(${FILE_SCHEMAS_EXPLICIT}) AS p(name)
  CROSS JOIN LATERAL (SELECT n.oid, n.nspname FROM pg_namespace n WHERE n.nspname = p.name OFFSET 0) n
  CROSS JOIN LATERAL (SELECT c.oid, c.relkind FROM pg_class c WHERE c.relname = ${tableSql} AND c.relnamespace = n.oid AND c.relpersistence <> 't' OFFSET 0) c
  WHERE n.nspname <> ${FILE_SCHEMA}), '[]'::json)`;

function located(table: string, { current, path, here, named, others }: ResolveRow): LedgerLocation {
  if (current !== null && here) {
    // a tracking table of ours further along the path too (a schema named after the role, made later by a tenant's
    // --schema run, in front of public's): which one is this target's cannot be told, and the wrong one applies again
    const more = ledgersIn(others ?? []);
    if (more.length) throw new AmbiguousLedgerError(table, [current, ...more], current, true);
    // whatever is there under that name, ours or not: never silently looked past (another tool's is refused by name)
    return { schema: current, table, how: 'current' };
  }
  const ledgers = ledgersIn(named ?? []);
  const onPath = path.find((s) => ledgers.includes(s));
  if (onPath) return { schema: onPath, table, how: 'found' };
  // only off the search path: a tenant schema's ledger, or one the path no longer reaches
  if (ledgers.length) throw new AmbiguousLedgerError(table, ledgers, current);
  return { schema: current ?? 'public', table, how: 'new' };
}

/** Where a database's tracking table usually is: what locateLedger reads while it resolves. */
const USUAL_SCHEMA = 'public';

/**
 * resolveLedger, then readLedgerShape of what it found, in one round trip when
 * the table is where it usually is (`public`, a database tenant's): the
 * resolution and the read of public's table go in one simple-query message,
 * so one implicit transaction, one snapshot, and the rows are used only when
 * the resolution names that same table. Anywhere else, or when there is no
 * such table (the read fails and changed nothing), it is done in two steps as
 * before, with their errors. `read` is undefined for a table to be created.
 */
export async function locateLedger(
  db: Queryable,
  schema: string | undefined,
  table: string,
): Promise<{ ledger: LedgerLocation; read: { rows: AppliedRow[]; complete: boolean } | undefined }> {
  let ledger: LedgerLocation | undefined;
  if (!schema) {
    const guess: LedgerLocation = { schema: USUAL_SCHEMA, table };
    let results: pg.QueryResult[] | undefined;
    try {
      results = (await db.query(`${ENTER_SAFE_PATH}; ${RESOLVE_SQL(literal(table))}; ${READ_SQL(guess)}; ${LEAVE_SAFE_PATH}`)) as unknown as pg.QueryResult[];
    } catch {
      // no such table there, or not one rows can be read from: the two steps below say what is wrong
    }
    if (results) {
      ledger = located(table, results[1]!.rows[0] as ResolveRow);
      if (ledger.schema === guess.schema && ledger.how !== 'new') return { ledger, read: shapeOf(ledger, results[2]!, results[3]!) };
    }
  }
  ledger ??= await resolveLedger(db, schema, table);
  return { ledger, read: ledger.how === 'new' ? undefined : await readLedgerShape(db, ledger) };
}

function literal(s: string): string {
  return `E'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

async function refuseTwins(db: Queryable, l: LedgerLocation): Promise<void> {
  const { t, tt } = (await querySafely(db, { text: `SELECT (${TWINS_SQL}) AS t, ${TABLE_TWINS_SQL} AS tt`, values: [l.schema, l.table, qualified(l)] }))[0] as {
    t: string[] | null;
    tt: string[] | null;
  };
  if (t?.length) throw new SchemaCaseError(l.schema, t);
  if (tt?.length) throw new TrackingTableCaseError(l.schema, l.table, tt);
}

/** Flotilla's or the guide's table (what it lacks of Flotilla's columns), or ForeignTrackingTableError. */
function refuseForeign(l: LedgerLocation, info: TableInfo): Extract<ReturnType<typeof ledgerShape>, { ours: true }> {
  const shape = ledgerShape(info.columns, info.kind);
  if (!shape.ours)
    throw new ForeignTrackingTableError(
      label(l),
      info.columns.map((c) => c.name),
      shape.tool,
      shape.reason,
    );
  return shape;
}

/**
 * Rows of the tracking table, or [] when it does not exist yet (reading never
 * creates it). One round trip: the relation's description (kind, column
 * types), then its rows; another tool's table is refused before its rows are used.
 */
export async function readLedger(db: Queryable, l: LedgerLocation): Promise<AppliedRow[]> {
  return (await readLedgerShape(db, l)).rows;
}

/**
 * readLedger, and whether the table has every column of Flotilla's (`complete`:
 * ensureLedger would change nothing, so a runner holding the lock needs no
 * more than this one round trip).
 */
export async function readLedgerShape(db: Queryable, l: LedgerLocation): Promise<{ rows: AppliedRow[]; complete: boolean }> {
  let results: pg.QueryResult[];
  try {
    results = (await db.query(`${ENTER_SAFE_PATH}; ${READ_SQL(l)}; ${LEAVE_SAFE_PATH}`)) as unknown as pg.QueryResult[];
  } catch (e: any) {
    if (e?.code === SQLSTATE.undefinedTable || e?.code === SQLSTATE.invalidSchemaName) {
      await refuseTwins(db, l);
      return { rows: [], complete: false };
    }
    // no `name` column: not ours (Laravel's `migration`, ...); not something rows can be read from (an index)
    if (e?.code === SQLSTATE.undefinedColumn || e?.code === WRONG_OBJECT_TYPE) throw await foreign(db, l);
    throw e;
  }
  return shapeOf(l, results[1]!, results[2]!);
}

/** The table's description, then its rows: two statements of one simple query. */
const READ_SQL = (l: LedgerLocation) =>
  `SELECT ${DESCRIBE_SQL} AS info FROM pg_class c WHERE c.oid = to_regclass(${literal(qualified(l))}); SELECT * FROM ${qualified(l)} ORDER BY name`;

function shapeOf(l: LedgerLocation, described: pg.QueryResult, read: pg.QueryResult): { rows: AppliedRow[]; complete: boolean } {
  const info = described.rows[0]?.info as TableInfo | undefined;
  const shape = info ? refuseForeign(l, info) : undefined;
  const rows = read.rows.map((row) => ({
    name: row.name,
    checksum: row.checksum ?? null,
    appliedAt: row.applied_at ?? row.executed_at ?? null,
    durationMs: row.duration_ms ?? null,
    appliedBy: row.applied_by ?? null,
  }));
  return { rows, complete: shape !== undefined && shape.missing.length === 0 };
}

async function foreign(db: Queryable, l: LedgerLocation): Promise<ForeignTrackingTableError> {
  const rows = await querySafely(db, { text: `SELECT ${DESCRIBE_SQL} AS info FROM pg_class c WHERE c.oid = to_regclass($1)`, values: [qualified(l)] });
  const info = (rows[0]?.info as TableInfo | undefined) ?? { kind: 'r', columns: [] };
  const shape = ledgerShape(info.columns, info.kind);
  return new ForeignTrackingTableError(
    label(l),
    info.columns.map((c) => c.name),
    shape.ours ? undefined : shape.tool,
    shape.ours ? undefined : shape.reason,
  );
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
  const { schema, twins, tableTwins, info } = (
    await querySafely(db, {
      text: `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS schema,
            (${TWINS_SQL}) AS twins,
            ${TABLE_TWINS_SQL} AS "tableTwins",
            (SELECT ${DESCRIBE_SQL} FROM pg_class c WHERE c.oid = to_regclass($3)) AS info`,
      values: [l.schema, l.table, qualified(l)],
    })
  )[0] as { schema: boolean; twins: string[] | null; tableTwins: string[] | null; info: TableInfo | null };
  if (!schema && twins?.length) throw new SchemaCaseError(l.schema, twins);
  const ddl: string[] = [];
  // CREATE SCHEMA IF NOT EXISTS checks CREATE on the database before it checks existence:
  // a role allowed to create in an existing schema (but not to create schemas) would be refused.
  if (!schema) ddl.push(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(l.schema)}`);
  if (!info) {
    if (tableTwins?.length) throw new TrackingTableCaseError(l.schema, l.table, tableTwins);
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
    const shape = refuseForeign(l, info);
    if (shape.missing.length) ddl.push(`ALTER TABLE ${qualified(l)} ${shape.missing.map((m) => `ADD COLUMN IF NOT EXISTS ${m.column} ${m.type}`).join(', ')}`);
  }
  if (!ddl.length) return { createdSchema: false };
  const createsTable = !info && l.how === 'new';
  if (opts.inTransaction) return { createdSchema: await runDdl(db, l, ddl, !schema, createsTable, false) };
  try {
    return { createdSchema: await runDdl(db, l, ddl, !schema, createsTable, true) };
  } catch (e) {
    await db.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

/**
 * The DDL, in the caller's open transaction. Before creating a schema, two
 * runners spelling it differently ("Acme", "acme": different migration locks)
 * are serialised on its lower-case name and the twin check is made again, so
 * they cannot both create one. Likewise, a tracking table created where no
 * --schema was given (`createsTable`): two runners with different search_paths
 * (different migration locks) are serialised on the table's name, and the
 * second, finding the first's table in another schema, stops (transient: run
 * again, it resolves to that table and waits for its lock).
 */
async function runDdl(db: Queryable, l: LedgerLocation, ddl: string[], createsSchema: boolean, createsTable: boolean, own: boolean): Promise<boolean> {
  // `own`: a transaction of its own, BEGIN sent with the checks and COMMIT with the DDL (two round trips in all)
  // the checks and the DDL on the system schemas' path (adapters/pg/safe-path.ts): the table's types and its default's
  // now() are pg_catalog's, and no function of the database's runs; in the caller's transaction, its path is given back
  const checks: Part[] = own ? [part('BEGIN'), part(ENTER_SAFE_PATH)] : [part(ENTER_SAFE_PATH)];
  if (createsTable) {
    checks.push(part({ text: `SELECT pg_advisory_xact_lock(hashtext('flotilla tracking table'), hashtext($1))`, values: [l.table] }));
    checks.push(part({ text: `SELECT ${NAMED_SQL} AS named`, values: [l.table] }));
  }
  if (createsSchema) {
    checks.push(part({ text: `SELECT pg_advisory_xact_lock(hashtext('flotilla schema case'), hashtext(lower($1)))`, values: [l.schema] }));
    checks.push(part({ text: `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS exact, (${TWINS_SQL}) AS twins`, values: [l.schema] }));
  }
  const r = await runBatch(db, checks);
  if (createsTable) {
    const elsewhere = ledgersIn(r.head(own ? 3 : 2)[0]!.named).filter((s) => s !== l.schema);
    if (elsewhere.length) throw new LedgerMovedError(l.table, l.schema, elsewhere[0]!);
  }
  if (createsSchema) {
    const row = r.tail(1)[0] as { exact: boolean; twins: string[] | null } | undefined;
    if (row?.twins?.length) throw new SchemaCaseError(l.schema, row.twins);
    createsSchema = !row?.exact;
  }
  await db.query([...ddl, own ? 'COMMIT' : LEAVE_SAFE_PATH].join(';\n'));
  return createsSchema;
}

export async function recordApplied(
  db: Queryable,
  l: LedgerLocation,
  row: { name: string; checksum: string; durationMs: number; appliedBy: string },
): Promise<void> {
  const q = recordAppliedQuery(l, row);
  await db.query(q.text, q.values as unknown[]);
}

/** A down file's commit: the reverted migration's tracking rows go in the same transaction. */
export async function removeApplied(db: Queryable, l: LedgerLocation, names: readonly string[]): Promise<void> {
  const q = removeAppliedQuery(l, names);
  await db.query(q.text, q.values);
}

/** removeApplied as one query (for a caller that batches its round trips). */
export function removeAppliedQuery(l: LedgerLocation, names: readonly string[]): { text: string; values: unknown[] } {
  return { text: `DELETE FROM ${qualified(l)} WHERE name OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])`, values: [names] };
}

/** Baselined files: recorded as applied, nothing run (duration_ms NULL; core/baseline.ts). */
export async function recordBaseline(db: Queryable, l: LedgerLocation, rows: { name: string; checksum: string }[], appliedBy: string): Promise<void> {
  await db.query(
    `INSERT INTO ${qualified(l)} (${FLOTILLA_COLUMNS.join(', ')})
     SELECT x.name, x.checksum, pg_catalog.clock_timestamp(), NULL, $2 FROM pg_catalog.jsonb_to_recordset($1::pg_catalog.jsonb) AS x(name pg_catalog.text, checksum pg_catalog.text)`,
    [JSON.stringify(rows.map((r) => ({ name: r.name, checksum: r.checksum }))), appliedBy],
  );
}

/**
 * The tracking row's INSERT, for a batch (adapters/pg/batch.ts). It runs on the
 * file's search_path (a trigger on the tracking table is the user's code), so
 * every function, operator and type in it is pg_catalog's by name
 * (adapters/pg/safe-path.ts). Without a
 * durationMs, the server measures it: from the moment a batch stored in
 * `flotilla.t0` (DURATION_START_SQL, just before the file's statements) to the
 * INSERT, or from the batch's arrival when the file reset that setting.
 */
export function recordAppliedQuery(l: LedgerLocation, row: { name: string; checksum: string; durationMs?: number; appliedBy: string }): Sql {
  const duration =
    row.durationMs === undefined
      ? `pg_catalog.round((pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) OPERATOR(pg_catalog.-) COALESCE(CASE WHEN pg_catalog.current_setting('flotilla.t0', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('flotilla.t0', true)::pg_catalog.float8 END, pg_catalog.date_part('epoch', pg_catalog.statement_timestamp()))) OPERATOR(pg_catalog.*) 1000)::pg_catalog.int4`
      : '$3';
  return {
    text: `INSERT INTO ${qualified(l)} (${FLOTILLA_COLUMNS.join(', ')}) VALUES ($1, $2, pg_catalog.clock_timestamp(), ${duration}, $4)`,
    values: [row.name, row.checksum, row.durationMs ?? null, row.appliedBy],
  };
}

/** Where the server starts measuring a file's duration (recordAppliedQuery), in the file's transaction. */
export const DURATION_START_SQL = `SELECT pg_catalog.set_config('flotilla.t0', pg_catalog.date_part('epoch', pg_catalog.clock_timestamp())::text, true)`;
