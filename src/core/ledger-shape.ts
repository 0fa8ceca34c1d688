/**
 * Which tables Flotilla may treat as its tracking table. A table named
 * `migrations` is common: TypeORM, Laravel, Knex (when renamed), node-pg-migrate
 * and others keep their own history under that name. Flotilla reads and
 * upgrades exactly two shapes, its own and the one the guide's runner made
 * (id, name, executed_at), in an ordinary table with compatible types; any other
 * column, type or kind of relation means another tool's table (umzug's lone
 * `name`, a view, a partitioned table...), which Flotilla must never alter nor
 * read as a list of applied migrations.
 */

/** Flotilla's tracking table, in order. */
export const FLOTILLA_COLUMNS = ['name', 'checksum', 'applied_at', 'duration_ms', 'applied_by'] as const;
/** The guide's runner: CREATE TABLE migrations (id SERIAL PRIMARY KEY, name VARCHAR(255) UNIQUE NOT NULL, executed_at TIMESTAMP DEFAULT NOW()). */
export const GUIDE_COLUMNS = ['id', 'name', 'executed_at'] as const;

const KNOWN = new Set<string>([...FLOTILLA_COLUMNS, ...GUIDE_COLUMNS]);

/** Columns Flotilla adds to a table the guide's runner made, with their types. */
const ADDED: Record<string, string> = {
  checksum: 'text',
  applied_at: 'timestamptz DEFAULT now()',
  duration_ms: 'integer',
  applied_by: 'text',
};

export type LedgerShape = { ours: true; missing: { column: string; type: string }[] } | { ours: false; tool: string | undefined; reason?: string };

/** A column as the catalog describes it (format_type without typmod). */
export interface ColumnInfo {
  name: string;
  type: string;
  notNull: boolean;
  /** has a default or is an identity column */
  hasDefault: boolean;
}

/** A relation named like the tracking table, as the catalog describes it. */
export interface TableInfo {
  /** pg_class.relkind: 'r' ordinary table, 'p' partitioned, 'v' view, 'm' materialized view, 'f' foreign table */
  kind: string;
  columns: ColumnInfo[];
}

const TEXT = ['text', 'character varying'];
const TIME = ['timestamp with time zone', 'timestamp without time zone'];
const INT = ['integer', 'bigint', 'smallint'];
/** Types each known column may have: what the guide and Flotilla made, and their close relatives. */
const TYPES: Record<string, string[]> = {
  name: TEXT,
  checksum: TEXT,
  applied_by: TEXT,
  applied_at: TIME,
  executed_at: TIME,
  id: INT,
  duration_ms: [...INT, 'numeric'],
};
/** Columns Flotilla writes; any other NOT NULL column needs a default. */
const WRITTEN = new Set<string>(FLOTILLA_COLUMNS);

const KINDS: Record<string, string> = {
  p: 'a partitioned table',
  v: 'a view',
  m: 'a materialized view',
  f: 'a foreign table',
  i: 'an index',
  I: 'a partitioned index',
  S: 'a sequence',
  c: 'a composite type',
};

/**
 * Decide whether a relation is ours, and what it lacks. Exactly two column
 * sets are ours: Flotilla's five columns, or the guide's three (id, name,
 * executed_at) with any of the four Flotilla adds. Given names only (strings),
 * only the set is checked; given the catalog's description, also the kind
 * (an ordinary table: a view or a partitioned table would hide or move
 * Flotilla's rows) and the types (a `name int` column cannot hold file names).
 */
export function ledgerShape(columns: readonly (string | ColumnInfo)[], kind = 'r'): LedgerShape {
  const names = columns.map((c) => (typeof c === 'string' ? c : c.name));
  const cols = new Set(names);
  const foreign = (reason?: string): LedgerShape => ({ ours: false, tool: guessTool(cols), ...(reason ? { reason } : {}) });
  if (kind !== 'r') return foreign(`it is ${KINDS[kind] ?? `a relation of kind '${kind}'`}, not an ordinary table`);
  const flotilla = names.length === FLOTILLA_COLUMNS.length && FLOTILLA_COLUMNS.every((c) => cols.has(c));
  const guide = GUIDE_COLUMNS.every((c) => cols.has(c)) && names.every((c) => KNOWN.has(c));
  if (!flotilla && !guide) return foreign();
  for (const c of columns) {
    if (typeof c === 'string') continue;
    if (!TYPES[c.name]!.includes(c.type)) return foreign(`column ${c.name} is ${c.type}, expected ${TYPES[c.name]!.join(' or ')}`);
    if (c.notNull && !c.hasDefault && !WRITTEN.has(c.name)) return foreign(`column ${c.name} is NOT NULL without a default, and Flotilla does not write it`);
  }
  return {
    ours: true,
    missing: Object.entries(ADDED)
      .filter(([c]) => !cols.has(c))
      .map(([column, type]) => ({ column, type })),
  };
}

/** Best guess at the tool that made a foreign table, for the message only. */
function guessTool(c: Set<string>): string | undefined {
  const has = (...names: string[]) => names.every((n) => c.has(n));
  if (has('migration', 'batch')) return 'Laravel';
  if (has('name', 'batch', 'migration_time')) return 'Knex';
  if (has('timestamp', 'name')) return 'TypeORM';
  if (has('name', 'run_on')) return 'node-pg-migrate';
  if (has('app', 'name', 'applied')) return 'Django';
  if (has('installed_rank')) return 'Flyway';
  if (has('migration_name', 'finished_at')) return 'Prisma';
  if (has('version_num')) return 'Alembic';
  if (has('version', 'execution_time')) return 'Doctrine';
  if (has('version', 'dirty')) return 'golang-migrate';
  if (has('version')) return 'Rails or dbmate';
  return undefined;
}
