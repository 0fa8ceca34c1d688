/**
 * Reverting: which applied migrations a `down` (one database) or a revert
 * rollout (one tenant) undoes, newest first, each with its down file and the
 * tracking rows its commit removes. Pure: the engine calls it before taking
 * the lock (to refuse early) and again under the lock (to act on what is true).
 *
 * Everything that stops a revert is found before anything runs: a version
 * without a down file (every one named at once), an applied file that changed
 * since (its down was written for another up), and, for a rollout, a later
 * migration that would stay applied on top of the reverted ones.
 */
import { ChangedMigrationError, MissingDownError, RevertBlockedError, RevertRefusedError } from './errors.js';
import { parseFileName } from './filename.js';
import type { Migration } from './migration-set.js';
import type { AppliedRow } from './plan.js';
import { rolloutOfAppliedBy } from './rollout-applied.js';
import type { RevertOf } from './rollout-plan.js';

/** An up migration as far as a revert needs it. */
export interface UpRef {
  name: string;
  version: bigint;
  checksum: string;
}

/** The up files and their down files (a set on disk, or a revert rollout's frozen pairs). */
export interface RevertPairs {
  ups: readonly UpRef[];
  downs: readonly Migration[];
}

/**
 * What to revert:
 *   last:    the newest applied migration only (the default of `flotilla down`, like `migrate down 1`)
 *   to:      every applied migration numbered above `to` (`down --to 0`: all of them)
 *   rollout: what that rollout applied (its tracking rows' applied_by), refused when
 *            a migration applied later would stay on top
 */
export type RevertSelect = { last: true } | { to: bigint } | { rollout: string };

export interface RevertStep {
  version: bigint;
  /** the applied migration (the up file's name, else the row's) */
  name: string;
  down: Migration;
  /** the tracking rows the down's commit removes (one, or the duplicates of one version) */
  rows: string[];
}

export function planRevert(pairs: RevertPairs, rows: readonly AppliedRow[], select: RevertSelect): RevertStep[] {
  const byVersion = new Map<bigint, AppliedRow[]>();
  for (const r of rows) {
    const v = parseFileName(r.name)?.version;
    if (v === undefined) continue;
    const list = byVersion.get(v);
    if (list) list.push(r);
    else byVersion.set(v, [r]);
  }
  const applied = [...byVersion.keys()].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
  const ups = new Map(pairs.ups.map((u) => [u.version, u]));
  let chosen: bigint[];
  if ('last' in select) chosen = applied.slice(0, 1);
  else if ('to' in select) chosen = applied.filter((v) => v > select.to);
  else {
    chosen = applied.filter((v) => ups.has(v) && byVersion.get(v)!.some((r) => rolloutOfAppliedBy(r.appliedBy) === select.rollout));
    const lowest = chosen[chosen.length - 1];
    const above = lowest === undefined ? [] : applied.filter((v) => v > lowest && !chosen.includes(v));
    if (above.length)
      throw new RevertBlockedError(
        chosen.map((v) => nameOf(v, ups, byVersion)).reverse(),
        above.map((v) => nameOf(v, ups, byVersion)),
      );
  }
  const downs = new Map(pairs.downs.map((d) => [d.version, d]));
  const missing: string[] = [];
  const changed: { name: string; applied: string; current: string; recordedAs?: string }[] = [];
  const steps: RevertStep[] = [];
  for (const v of chosen) {
    const candidates = byVersion.get(v)!;
    const up = ups.get(v);
    const row = candidates.find((r) => r.name === up?.name) ?? candidates[0]!;
    const down = downs.get(v);
    if (!up || !down) {
      missing.push(up ? up.name : `${row.name} (no file)`);
      continue;
    }
    if (row.checksum !== null && row.checksum !== up.checksum)
      changed.push({ name: up.name, applied: row.checksum, current: up.checksum, ...(row.name !== up.name ? { recordedAs: row.name } : {}) });
    steps.push({ version: v, name: up.name, down, rows: candidates.map((r) => r.name) });
  }
  if (missing.length) throw new MissingDownError(missing.reverse());
  if (changed.length) throw new ChangedMigrationError(changed);
  return steps;
}

function nameOf(v: bigint, ups: Map<bigint, UpRef>, rows: Map<bigint, AppliedRow[]>): string {
  return ups.get(v)?.name ?? rows.get(v)?.[0]?.name ?? String(v);
}

/**
 * A revert rollout's pairs: the up files as the reverted rollout froze them
 * (options.revert.ups) and the down files its own frozen set holds.
 */
export function frozenRevertPairs(set: { migrations: readonly Migration[] }, revert: RevertOf): RevertPairs {
  return { ups: revert.ups.map((u) => ({ name: u.name, version: BigInt(u.version), checksum: u.checksum })), downs: set.migrations };
}

/** The pairs of a set read from disk: its up files and its down files. */
export function pairsOf(set: { migrations: readonly Migration[]; downs?: readonly Migration[] }): RevertPairs {
  return { ups: set.migrations, downs: set.downs ?? [] };
}

/** A tenant of the rollout being reverted, as the control database recorded it. */
export interface RevertedTenant {
  id: string;
  state: string;
  applied: readonly string[];
}

export interface RolloutRevertPlan {
  /** the down files to freeze (the new rollout's set), in version order */
  downs: Migration[];
  /** the up files they revert, as the reverted rollout froze them */
  ups: { name: string; version: string; checksum: string }[];
  /** the tenants that applied something, in the rollout's order */
  tenants: string[];
}

/**
 * `rollout revert <id>`: the down files of every file the rollout applied on
 * some tenant, and the tenants that applied something. Refused (every problem
 * at once, nothing created) when the rollout is still running, was a dry run or
 * a revert itself, applied nothing, a down file is missing, or the up file on
 * disk is no longer the one the rollout ran (its down was written for another).
 */
export function planRolloutRevert(
  rollout: { id: string; state: string; dryRun: boolean; revertOf?: string },
  frozen: readonly UpRef[],
  disk: { migrations: readonly Migration[]; downs?: readonly Migration[] },
  tenants: readonly RevertedTenant[],
): RolloutRevertPlan {
  const problems: string[] = [];
  if (rollout.revertOf) problems.push(`it is itself a revert (of ${rollout.revertOf}); to undo it, start a new rollout of the files`);
  if (rollout.dryRun) problems.push('it was a dry run: it applied nothing');
  if (rollout.state === 'running' || tenants.some((t) => t.state === 'running'))
    problems.push(`it is still running: wait for its end or cancel it (flotilla rollout cancel ${rollout.id})`);
  const applied = new Set(tenants.flatMap((t) => t.applied));
  const files = frozen.filter((u) => applied.has(u.name));
  if (!problems.length && !files.length) problems.push('no tenant applied a file in it');
  const downs = new Map((disk.downs ?? []).map((d) => [d.version, d]));
  const onDisk = new Map(disk.migrations.map((m) => [m.version, m]));
  const missing = files.filter((u) => !downs.has(u.version)).map((u) => u.name);
  if (missing.length) problems.push(`no down file for ${missing.join(', ')}`);
  const changed = files.filter((u) => downs.has(u.version) && onDisk.get(u.version)?.checksum !== u.checksum).map((u) => u.name);
  if (changed.length) problems.push(`the up file on disk differs from the one the rollout ran (or is gone): ${changed.join(', ')}`);
  if (problems.length) throw new RevertRefusedError(rollout.id, problems);
  return {
    downs: files.map((u) => downs.get(u.version)!),
    ups: files.map((u) => ({ name: u.name, version: String(u.version), checksum: u.checksum })),
    tenants: tenants.filter((t) => t.applied.some((n) => files.some((u) => u.name === n))).map((t) => t.id),
  };
}
