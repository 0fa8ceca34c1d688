/**
 * Which tables Flotilla may treat as its tracking table. A table named
 * `migrations` is common: TypeORM, Laravel, Knex (when renamed), node-pg-migrate
 * and others keep their own history under that name. Flotilla reads and
 * upgrades exactly two shapes, its own and the one the guide's runner made
 * (id, name, executed_at); any other column means another tool's table, which
 * Flotilla must never alter nor read as a list of applied migrations.
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

export type LedgerShape = { ours: true; missing: { column: string; type: string }[] } | { ours: false; tool: string | undefined };

/** Decide from a table's column names (any order) whether it is ours, and what it lacks. */
export function ledgerShape(columns: readonly string[]): LedgerShape {
  const cols = new Set(columns);
  if (!cols.has('name') || columns.some((c) => !KNOWN.has(c))) return { ours: false, tool: guessTool(cols) };
  return { ours: true, missing: Object.entries(ADDED).filter(([c]) => !cols.has(c)).map(([column, type]) => ({ column, type })) };
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
