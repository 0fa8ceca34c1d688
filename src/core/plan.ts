/**
 * Planning: given the set on disk (or frozen) and the rows of the tracking
 * table, what is applied, pending, changed since applied, renamed, or missing.
 *
 * A migration is its version number: rows are matched to files by the number
 * in their name, so `1_seed.sql`, `001_seed.sql` and `0001_seed.sql` are one
 * migration. A file renamed (or zero-padded) after it was applied is applied,
 * reported as renamed, and never applied again; its checksum is still checked
 * against the row's (the name is not part of a file's checksum).
 */
import { parseFileName } from './filename.js';
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
  /** applied, but the file's checksum differs from the recorded one (`recordedAs`: the row's name, when it differs) */
  changed: { name: string; applied: string; current: string; recordedAs?: string }[];
  /** applied under another name with the same version number: the same migration, not applied again */
  renamed: { version: bigint; from: string; to: string }[];
  /** recorded as applied, no file with that version any more */
  missing: AppliedRow[];
  /** pending migrations numbered below the newest applied one */
  outOfOrder: Migration[];
}

export function plan(set: MigrationSet, rows: AppliedRow[]): Plan {
  // rows by version; a row whose name has no version can only match a file of that exact name (none: files have one)
  const byVersion = new Map<bigint, AppliedRow[]>();
  for (const r of rows) {
    const v = parseFileName(r.name)?.version;
    if (v === undefined) continue;
    const list = byVersion.get(v);
    if (list) list.push(r);
    else byVersion.set(v, [r]);
  }
  const result: Plan = { applied: [], pending: [], changed: [], renamed: [], missing: [], outOfOrder: [] };
  const matched = new Set<AppliedRow>();
  let newestApplied: bigint | undefined;
  for (const m of set.migrations) {
    const candidates = byVersion.get(m.version);
    if (!candidates) continue;
    // the row under the file's own name first; every other row of that version is an older name of it
    const row = candidates.find((r) => r.name === m.name) ?? candidates[0]!;
    for (const r of candidates) {
      matched.add(r);
      if (r.name !== m.name) result.renamed.push({ version: m.version, from: r.name, to: m.name });
    }
    result.applied.push({ migration: m, row });
    if (row.checksum !== null && row.checksum !== m.checksum) {
      result.changed.push({ name: m.name, applied: row.checksum, current: m.checksum, ...(row.name !== m.name ? { recordedAs: row.name } : {}) });
    }
    if (newestApplied === undefined || m.version > newestApplied) newestApplied = m.version;
  }
  for (const m of set.migrations) {
    if (byVersion.has(m.version)) continue;
    result.pending.push(m);
    if (newestApplied !== undefined && m.version < newestApplied) result.outOfOrder.push(m);
  }
  result.missing = rows.filter((r) => !matched.has(r));
  return result;
}
