/**
 * Baseline: record files as applied without running them, for a database that
 * already has their effect (it existed before Flotilla). The rows go into the
 * ordinary tracking table, under the files' real names and checksums, so the
 * guide's table stays valid (a real name per row, no sentinel row that a
 * planner would read as a migration with no file) and a later edit of a
 * baselined file is still refused. The marker lives in the columns Flotilla
 * already has: `applied_by` says `baseline (<who>)` and `duration_ms` is NULL
 * (nothing ran).
 */
import { BaselineRefusedError } from './errors.js';
import type { Migration } from './migration-set.js';
import { plan, type AppliedRow } from './plan.js';

const MARK = 'baseline';

/** What `applied_by` holds for a baselined row. */
export function baselineAppliedBy(who: string): string {
  return `${MARK} (${who})`;
}

/** A row recorded by `flotilla baseline`, not by running the file. */
export function isBaselineRow(r: Pick<AppliedRow, 'appliedBy' | 'durationMs'>): boolean {
  return r.durationMs === null && (r.appliedBy ?? '').startsWith(`${MARK} (`);
}

/** "--up-to 3", "--up-to 003" or "--up-to 003_x.sql": the version, or a one-line refusal. */
export function parseUpTo(flag: string, value: string | undefined): bigint {
  const v = (value ?? '').trim();
  const m = /^(\d+)(?:_[A-Za-z0-9][A-Za-z0-9_-]*\.sql)?$/.exec(v);
  if (!m) throw new BaselineRefusedError([`${flag}: "${value ?? ''}" is not a migration number (e.g. 003) or file name`]);
  return BigInt(m[1]!);
}

export interface BaselinePlan {
  /** files to record, in order */
  record: Migration[];
  /** files up to the version already recorded with the same checksum */
  already: string[];
}

/**
 * Which files up to `upTo` to record. Refused (every problem at once) when no
 * file has that number, or a file up to it is already recorded with another
 * checksum (the database ran a different file under that number).
 */
export function planBaseline(set: { migrations: readonly Migration[]; checksum: string }, rows: AppliedRow[], upTo: bigint): BaselinePlan {
  const problems: string[] = [];
  if (!set.migrations.some((m) => m.version === upTo)) problems.push(`no migration file numbered ${upTo} in the directory`);
  const p = plan(set, rows);
  for (const c of p.changed) {
    const m = set.migrations.find((x) => x.name === c.name);
    if (m && m.version <= upTo) problems.push(`${c.name} is already recorded${c.recordedAs ? ` as ${c.recordedAs}` : ''} with another checksum`);
  }
  if (problems.length) throw new BaselineRefusedError(problems);
  return {
    record: p.pending.filter((m) => m.version <= upTo),
    already: p.applied.filter((a) => a.migration.version <= upTo).map((a) => a.migration.name),
  };
}
