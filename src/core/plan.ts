/**
 * Planning: given the set on disk (or frozen) and the rows of the tracking
 * table, what is applied, pending, changed since applied, or missing.
 */
import type { Migration, MigrationSet } from './migration-set.js';

/** One row of the tracking table. */
export interface AppliedRow {
  name: string;
  /** null for rows written by the guide's older runner (no checksum column) */
  checksum: string | null;
  appliedAt: Date | null;
  durationMs: number | null;
  appliedBy: string | null;
}

export interface Plan {
  applied: { migration: Migration; row: AppliedRow }[];
  pending: Migration[];
  /** applied, but the file's checksum differs from the recorded one */
  changed: { name: string; applied: string; current: string }[];
  /** recorded as applied, no file with that name any more */
  missing: AppliedRow[];
  /** pending migrations numbered below the newest applied one */
  outOfOrder: Migration[];
}

export function plan(set: MigrationSet, rows: AppliedRow[]): Plan {
  const byName = new Map(rows.map((r) => [r.name, r]));
  const names = new Set(set.migrations.map((m) => m.name));
  const result: Plan = { applied: [], pending: [], changed: [], missing: [], outOfOrder: [] };
  let newestApplied: bigint | undefined;
  for (const m of set.migrations) {
    const row = byName.get(m.name);
    if (!row) continue;
    result.applied.push({ migration: m, row });
    if (row.checksum !== null && row.checksum !== m.checksum) result.changed.push({ name: m.name, applied: row.checksum, current: m.checksum });
    if (newestApplied === undefined || m.version > newestApplied) newestApplied = m.version;
  }
  for (const m of set.migrations) {
    if (byName.has(m.name)) continue;
    result.pending.push(m);
    if (newestApplied !== undefined && m.version < newestApplied) result.outOfOrder.push(m);
  }
  result.missing = rows.filter((r) => !names.has(r.name));
  return result;
}
