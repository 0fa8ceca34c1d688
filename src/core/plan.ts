/**
 * Planning: given the set on disk (or frozen) and the rows of the tracking
 * table, what is applied, pending, changed since applied, renamed, or missing.
 *
 * A migration is its version number: rows are matched to files by the number
 * in their name, so `1_seed.sql`, `001_seed.sql` and `0001_seed.sql` are one
 * migration. A file renamed (or zero-padded) after it was applied is applied,
 * reported as renamed, and never applied again; its checksum is still checked
 * against the row's (the name is not part of a file's checksum).
 *
 * A version recorded by several rows (`1_a.sql` and `001_a.sql`, left by an
 * older runner) is one applied migration: the row under the file's name (else
 * the earliest) stands for it, the others are reported as duplicates, never
 * as extra applied migrations, renames or missing files.
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
  /** versions recorded by more than one row: `kept` stands for the migration, `extra` are the other rows */
  duplicates: { version: bigint; kept: string; extra: string[] }[];
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
  const result: Plan = { applied: [], pending: [], changed: [], renamed: [], missing: [], outOfOrder: [], duplicates: [] };
  const matched = new Set<AppliedRow>();
  let newestApplied: bigint | undefined;
  for (const m of set.migrations) {
    const candidates = byVersion.get(m.version);
    if (!candidates) continue;
    // the row under the file's own name, else the earliest: it stands for the migration; a renamed file
    // is one whose name no row has; other rows of that version are duplicates
    const row = candidates.find((r) => r.name === m.name) ?? earliest(candidates);
    for (const r of candidates) matched.add(r);
    if (row.name !== m.name) result.renamed.push({ version: m.version, from: row.name, to: m.name });
    if (candidates.length > 1) result.duplicates.push({ version: m.version, kept: row.name, extra: candidates.filter((r) => r !== row).map((r) => r.name) });
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

function earliest(rows: AppliedRow[]): AppliedRow {
  return rows.reduce((a, b) => ((b.appliedAt?.getTime() ?? Infinity) < (a.appliedAt?.getTime() ?? Infinity) ? b : a));
}
