/**
 * Pure rollout planning: parsing `n|%` and `n|tag` options, assigning tenants
 * to waves, rollout ids, and the per-rollout options frozen with the rollout.
 * (What runs next is core/dispatch.ts; job payloads and ids, core/jobs.ts.)
 */
import { ConfigError } from './errors.js';
import type { Tenant } from './tenants.js';
import type { ValidationOptions } from './validation.js';

/** "5" or "10%" */
export type CountSpec = { count: number } | { percent: number };

export function parseCountSpec(flag: string, value: string): CountSpec {
  const m = /^(\d+)(%?)$/.exec(value.trim());
  if (!m) throw new ConfigError([`${flag}: "${value}" is not a number or a percentage (e.g. 5 or 10%)`]);
  const n = Number(m[1]);
  if (m[2]) {
    if (n > 100) throw new ConfigError([`${flag}: ${value} is more than 100%`]);
    return { percent: n };
  }
  return { count: n };
}

export function resolveCount(spec: CountSpec, total: number, minimum = 0): number {
  return 'count' in spec ? spec.count : Math.max(minimum, Math.ceil((spec.percent / 100) * total));
}

/** --canary 2 (the first two tenants) or --canary canary (tenants tagged "canary"). */
export type CanarySpec = { count: number } | { tag: string };

export function parseCanary(value: string): CanarySpec {
  const v = value.trim();
  if (/^\d+$/.test(v)) {
    if (Number(v) < 1) throw new ConfigError(['--canary: must be at least 1 tenant']);
    return { count: Number(v) };
  }
  if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(v)) throw new ConfigError([`--canary: "${v}" is neither a number nor a tag`]);
  return { tag: v };
}

export interface WaveAssignment {
  tenant: Tenant;
  wave: number;
}

/**
 * Canary tenants form wave 0; the rest follow in file order, in waves of
 * `waveSize` (all in one wave when not given). Returns waves numbered 0..n-1.
 */
export function assignWaves(
  tenants: Tenant[],
  canary: CanarySpec | undefined,
  waveSize: CountSpec | undefined,
): { assignments: WaveAssignment[]; waveCount: number } {
  const canaries = new Set<string>();
  if (canary) {
    if ('count' in canary && canary.count > tenants.length) {
      throw new ConfigError([
        `--canary: ${canary.count} canary tenants asked for, but the selection has only ${tenants.length}; give a smaller number or a tag`,
      ]);
    }
    const chosen = 'count' in canary ? tenants.slice(0, canary.count) : tenants.filter((t) => t.tags.includes(canary.tag));
    if (chosen.length === 0) throw new ConfigError([`--canary: no tenant has the tag "${'tag' in canary ? canary.tag : ''}"`]);
    for (const t of chosen) canaries.add(t.id);
  }
  const rest = tenants.filter((t) => !canaries.has(t.id));
  const size = waveSize ? Math.max(1, resolveCount(waveSize, rest.length, 1)) : Math.max(1, rest.length);
  const first = canaries.size ? 1 : 0;
  const assignments: WaveAssignment[] = [
    ...tenants.filter((t) => canaries.has(t.id)).map((tenant) => ({ tenant, wave: 0 })),
    ...rest.map((tenant, i) => ({ tenant, wave: first + Math.floor(i / size) })),
  ];
  const waveCount = assignments.reduce((m, a) => Math.max(m, a.wave + 1), 0);
  return { assignments, waveCount };
}

/** Options frozen with a rollout: workers read them from the control database. */
export interface RolloutOptions {
  canary: boolean;
  maxFailures: number;
  /** tenants in flight (queued or running) at once across all workers; null = the dispatch window (core/dispatch.ts) */
  concurrency: number | null;
  perServer: number | null;
  dryRun: boolean;
  /** webhook targets (`--notify`, the config's `notify`), \${VAR} unresolved; notify/schema.ts reads them */
  notify?: string[];
  engine: {
    trackingTable: string;
    lockTimeoutMs: number;
    statementTimeoutMs: number;
    validate: boolean;
    validation: Partial<ValidationOptions>;
    singleTransaction: boolean;
  };
}

/** The per-rollout flags (`rollout` and `schedule`), parsed: the specs, before any tenant is counted. */
export interface RolloutSettings {
  canary?: CanarySpec;
  waveSize?: CountSpec;
  maxFailures?: CountSpec;
  concurrency?: number;
  perServer?: number;
  /** webhook targets, already checked (notify/targets.ts) */
  notify?: string[];
}

/**
 * The one way to build the options a rollout freezes: a rollout's flags and a schedule's
 * both come here, so `--max-failures 10%` means 10% of the selected tenants for both.
 */
export function rolloutOptions(s: RolloutSettings, tenantCount: number, dryRun: boolean, engine: RolloutOptions['engine']): RolloutOptions {
  return {
    canary: !!s.canary,
    maxFailures: s.maxFailures ? resolveCount(s.maxFailures, tenantCount) : 0,
    concurrency: s.concurrency ?? null,
    perServer: s.perServer ?? null,
    dryRun,
    ...(s.notify?.length ? { notify: s.notify } : {}),
    engine,
  };
}

export function newRolloutId(now: Date, random: string): string {
  const iso = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `r${iso}-${random}`;
}
