/**
 * A rollout is frozen at creation (promise 3): its migration set and every
 * tenant's target. Later, the registry and the files on disk may have moved
 * on; `rollout retry` and `rollout resume` still run what was frozen, and
 * these pure comparisons let them say so (and let `retry --refresh` decide
 * whether re-freezing the set is safe).
 */
import type { MigrationSet } from './migration-set.js';
import { redactUrl } from './redact.js';

/** Where a tenant is migrated: the URL template (`${VAR}` unresolved) and the schema. */
export interface Target {
  databaseUrl: string;
  schema?: string | undefined;
}

export interface TargetChange {
  tenantId: string;
  frozen: Target;
  registry: Target;
}

/** Tenants whose registry entry no longer matches the target frozen with the rollout. */
export function targetChanges(frozen: readonly (Target & { tenantId: string })[], registry: ReadonlyMap<string, Target>): TargetChange[] {
  const changes: TargetChange[] = [];
  for (const f of frozen) {
    const r = registry.get(f.tenantId);
    if (!r) continue;
    if (r.databaseUrl !== f.databaseUrl || (r.schema ?? null) !== (f.schema ?? null)) {
      changes.push({ tenantId: f.tenantId, frozen: { databaseUrl: f.databaseUrl, schema: f.schema }, registry: r });
    }
  }
  return changes;
}

function showTarget(t: Target): string {
  return `${redactUrl(t.databaseUrl)}${t.schema ? ` schema ${t.schema}` : ''}`;
}

/** One line per changed tenant (at most `limit`, then a count); URLs redacted. */
export function targetNotices(changes: readonly TargetChange[], limit = 10): string[] {
  const lines = changes
    .slice(0, limit)
    .map(
      (c) =>
        `tenant ${c.tenantId}: the tenants registry now has another target (${showTarget(c.registry)}) than when this rollout was created (${showTarget(c.frozen)}); this rollout keeps its own. Start a new rollout to migrate the registry's target.`,
    );
  if (changes.length > limit) lines.push(`... and ${changes.length - limit} more tenants whose registry target changed`);
  return lines;
}

export interface SetDiff {
  /** same version, other bytes */
  changed: string[];
  /** on disk only */
  added: string[];
  /** frozen only */
  removed: string[];
}

/**
 * How the set on disk differs from the frozen one, by version (a migration is
 * its version number: a rename with the same bytes is no difference).
 */
export function diffSets(frozen: MigrationSet, disk: MigrationSet): SetDiff {
  const diff: SetDiff = { changed: [], added: [], removed: [] };
  if (frozen.checksum === disk.checksum) return diff;
  const onDisk = new Map(disk.migrations.map((m) => [m.version, m]));
  const inFrozen = new Set(frozen.migrations.map((m) => m.version));
  for (const m of frozen.migrations) {
    const d = onDisk.get(m.version);
    if (!d) diff.removed.push(m.name);
    else if (d.checksum !== m.checksum) diff.changed.push(m.name === d.name ? m.name : `${m.name} (now ${d.name})`);
  }
  for (const m of disk.migrations) if (!inFrozen.has(m.version)) diff.added.push(m.name);
  return diff;
}

export function isSameSet(d: SetDiff): boolean {
  return d.changed.length + d.added.length + d.removed.length === 0;
}

export function describeSetDiff(d: SetDiff): string {
  const parts = [
    d.changed.length ? `changed: ${d.changed.join(', ')}` : '',
    d.added.length ? `added: ${d.added.join(', ')}` : '',
    d.removed.length ? `removed: ${d.removed.join(', ')}` : '',
  ].filter(Boolean);
  return parts.join('; ');
}

export function setDiffNotice(rolloutId: string, d: SetDiff): string {
  return (
    `the migration files on disk differ from the set frozen with rollout ${rolloutId} (${describeSetDiff(d)}); ` +
    `this retry runs the frozen set. To run the files on disk instead: flotilla rollout retry ${rolloutId} --refresh`
  );
}

/** Which frozen files a refresh would replace: a tenant that applied one of them blocks it. */
export function filesReplacedBy(frozen: MigrationSet, d: SetDiff): string[] {
  const versions = new Set<bigint>();
  const byName = new Map(frozen.migrations.map((m) => [m.name, m.version]));
  for (const name of [...d.changed.map((c) => c.replace(/ \(now .*\)$/, '')), ...d.removed]) {
    const v = byName.get(name);
    if (v !== undefined) versions.add(v);
  }
  return frozen.migrations.filter((m) => versions.has(m.version)).map((m) => m.name);
}

export { RefreshRefusedError } from './errors.js';

/**
 * Tenants that stop `retry --refresh`: any that recorded one of the replaced
 * files as applied (in any rollout: its tracking row holds the old checksum),
 * and any of the rollout's tenants that already succeeded, whatever the
 * difference: a succeeded tenant has every frozen file (replaced ones
 * included, applied by whoever) and none of the added ones, and a retry would
 * not run it again, so its report would no longer match the rollout's set.
 */
export function refreshBlockers(
  replaced: readonly string[],
  added: readonly string[],
  tenants: readonly { tenantId: string; state: string; applied: readonly string[] }[],
): { tenantId: string; reason: string }[] {
  const gone = new Set(replaced);
  const blockers: { tenantId: string; reason: string }[] = [];
  for (const t of tenants) {
    const hit = t.applied.filter((n) => gone.has(n));
    if (hit.length) blockers.push({ tenantId: t.tenantId, reason: `applied ${[...new Set(hit)].join(', ')}` });
    else if (t.state === 'succeeded' && replaced.length) blockers.push({ tenantId: t.tenantId, reason: `succeeded with the frozen ${replaced.join(', ')}` });
    else if (t.state === 'succeeded' && added.length)
      blockers.push({ tenantId: t.tenantId, reason: `succeeded without the added file${added.length === 1 ? '' : 's'} ${added.join(', ')}` });
  }
  return blockers;
}
