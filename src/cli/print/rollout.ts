/**
 * What the fleet commands show of a rollout: the view (plain data, also the --json output)
 * built from the control database's rows, and the human printers for it.
 */
import type { ControlStore, LockWaitStats, RolloutRow, RolloutTenantRow, TenantState, WaveSummary } from '../../control/store.js';
import { formatMs } from '../../core/dispatch.js';
import { tenantsWithLiteralPassword, type Tenant } from '../../core/tenants.js';
import type { Output } from '../output.js';

export interface RolloutView {
  id: string;
  state: RolloutRow['state'];
  haltReason: string | null;
  wave: number;
  waves: number;
  dryRun: boolean;
  /** a revert rollout: the rollout whose files it reverts */
  revertOf: string | null;
  /** tenants of the selection left out at creation (`--skip-drifted`) */
  skipped: { id: string; reason: string }[];
  createdAt: Date;
  finishedAt: Date | null;
  counts: Record<TenantState, number>;
  tenants: {
    id: string;
    state: TenantState;
    applied: string[];
    error: string | null;
    wave: number;
    attempts: number;
    durationMs: number | null;
    /** a `scheduled` tenant: when its maintenance window opens */
    notBefore: Date | null;
    drift: boolean;
    /** waited for locks on the tenant's objects, its attempts of this generation (null: not measured) */
    lockWaitMs: number | null;
    lockTimeouts: number | null;
  }[];
  /** `rollout status`: the counters per wave (waves numbered from 1) */
  waveCounts?: { wave: number; counts: Record<TenantState, number> }[];
  /** `rollout status`: lock waits, the rollout's and per wave (95th percentile as the --max-lock-wait gate computes it) */
  lockWaits?: { limitMs: number | null; total: LockWaitView | null; waves: (LockWaitView & { wave: number })[] };
  /** `rollout status` with --limit/--offset/--state (or its text default): which tenants `tenants` holds */
  page?: { offset: number; limit: number | null; states: TenantState[] | null; matching: number };
}

export interface LockWaitView {
  measured: number;
  p95Ms: number;
  maxMs: number;
  timeouts: number;
}

/** What `rollout status` adds to the view: read from the counters, not from the tenants listed. */
export interface RolloutDetail {
  counts: Record<TenantState, number>;
  waves: WaveSummary[];
  lockWaits: LockWaitStats[];
  page: NonNullable<RolloutView['page']>;
}

export function rolloutView(r: RolloutRow, tenants: RolloutTenantRow[], detail?: RolloutDetail): RolloutView {
  const counts: Record<TenantState, number> = { pending: 0, scheduled: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
  for (const t of tenants) counts[t.state]++;
  const lock = (x: LockWaitStats): LockWaitView => ({ measured: x.measured, p95Ms: x.p95Ms, maxMs: x.maxMs, timeouts: x.timeouts });
  const more: Partial<RolloutView> = detail
    ? {
        counts: detail.counts,
        waveCounts: detail.waves.map((w) => ({ wave: w.wave + 1, counts: w.counts })),
        lockWaits: {
          limitMs: r.options.maxLockWaitMs ?? null,
          total: detail.lockWaits.filter((x) => x.wave === null).map(lock)[0] ?? null,
          waves: detail.lockWaits.filter((x) => x.wave !== null).map((x) => ({ wave: x.wave! + 1, ...lock(x) })),
        },
        page: detail.page,
      }
    : {};
  return {
    id: r.id,
    state: r.state,
    haltReason: r.haltReason,
    wave: r.currentWave + 1,
    waves: r.waveCount,
    dryRun: r.options.dryRun,
    revertOf: r.options.revert?.of ?? null,
    skipped: r.options.skipped ?? [],
    createdAt: r.createdAt,
    finishedAt: r.finishedAt,
    counts,
    tenants: tenants.map((t) => ({
      id: t.tenantId,
      state: t.state,
      applied: t.applied,
      wave: t.wave + 1,
      attempts: t.attempts,
      durationMs: t.durationMs,
      error: t.error ? String(t.error.message ?? JSON.stringify(t.error)) : null,
      notBefore: t.notBefore,
      drift: !!t.checks?.drift,
      lockWaitMs: t.lockWaitMs,
      lockTimeouts: t.lockTimeouts,
    })),
    ...more,
  };
}

const STATES: TenantState[] = ['pending', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled'];

/** A page of a rollout's tenants: every one when `limit` is undefined. */
export interface TenantPage {
  limit?: number;
  offset: number;
  states?: TenantState[];
}

/**
 * The view every fleet command prints at its end (`rollout status`, `--wait`, `retry`, `cancel`):
 * counts per state and per wave from the counters, lock waits, and the tenants of `page`.
 * Undefined for an unknown rollout.
 */
export async function rolloutViewOf(store: ControlStore, id: string, page: TenantPage = { offset: 0 }): Promise<RolloutView | undefined> {
  const r = await store.getRollout(id);
  if (!r) return undefined;
  const [counts, waves, lockWaits, tenants] = await Promise.all([
    store.counts(id),
    store.waveSummaries(id),
    store.lockWaits(id),
    store.rolloutTenants(id, { limit: page.limit, offset: page.offset, states: page.states }),
  ]);
  const matching = (page.states ?? STATES).reduce((n, s) => n + counts[s], 0);
  return rolloutView(r, tenants, { counts, waves, lockWaits, page: { offset: page.offset, limit: page.limit ?? null, states: page.states ?? null, matching } });
}

/** The per-tenant table and the totals (`rollout status`, and every `--wait` at its end). */
export function printRollout(out: Output, v: RolloutView): void {
  out.line(
    `Rollout ${v.id}${v.revertOf ? ` (revert of ${v.revertOf})` : ''}: ${v.state}${v.haltReason ? ` (${v.haltReason})` : ''}${v.dryRun ? ' [dry run]' : ''} · wave ${v.wave}/${v.waves}`,
  );
  out.line();
  printWaves(out, v);
  // the lock-wait column when some tenant waited for a lock or hit lock_timeout (or a limit is set)
  const locks = waitedForLocks(v);
  const w = Math.max(6, ...v.tenants.map((t) => t.id.length));
  out.line(`  ${'tenant'.padEnd(w)}  ${'state'.padEnd(9)}  applied  attempts  duration  ${locks ? 'lock wait  ' : ''}error`);
  let attempts = 0;
  let retries = 0;
  for (const t of v.tenants) {
    attempts += t.attempts;
    retries += Math.max(0, t.attempts - 1);
    const mark = t.state === 'succeeded' ? '✓' : t.state === 'failed' ? '✗' : t.state === 'cancelled' ? '⊘' : t.state === 'running' ? '→' : '○';
    const dur = t.durationMs === null ? '' : `${(t.durationMs / 1000).toFixed(2)} s`;
    const lock = locks ? `${(t.lockWaitMs === null ? '' : formatMs(t.lockWaitMs) + (t.lockTimeouts ? ` (${t.lockTimeouts}×)` : '')).padStart(9)}  ` : '';
    out.line(
      `${mark} ${t.id.padEnd(w)}  ${t.state.padEnd(9)}  ${String(t.applied.length).padStart(7)}  ${String(t.attempts).padStart(8)}  ${dur.padStart(8)}  ${lock}${(t.error ?? '') + (t.drift ? ' (schema drift)' : '')}`.trimEnd(),
    );
  }
  const p = v.page;
  if (p && p.matching > v.tenants.length) {
    const which = p.states ? ` ${p.states.join('/')}` : '';
    out.line(
      `  … showing ${v.tenants.length ? `${p.offset + 1}-${p.offset + v.tenants.length}` : 'none'} of ${p.matching}${which} tenants (--limit 0 lists every one, --offset pages, --state failed only the failed ones, --json gives them all)`,
    );
  }
  for (const x of v.skipped) out.line(`⊘ ${x.id.padEnd(w)}  skipped    ${x.reason}`);
  out.line();
  out.line(
    `Total: ${v.counts.succeeded} succeeded, ${v.counts.failed} failed, ${v.counts.cancelled} cancelled, ${v.counts.running} running, ${v.counts.pending + v.counts.scheduled} waiting${v.skipped.length ? `, ${v.skipped.length} skipped` : ''} · ${attempts} attempt${attempts === 1 ? '' : 's'} (${retries} retr${retries === 1 ? 'y' : 'ies'})${v.page && v.page.matching > v.tenants.length ? ' among the tenants shown' : ''}`,
  );
}

/** Lock waits worth a line: a measured wait or lock timeout (every attempt is measured, most wait 0 ms), or a --max-lock-wait limit. */
function waitedForLocks(v: RolloutView): boolean {
  const t = v.lockWaits?.total;
  return (!!t && (t.maxMs > 0 || t.timeouts > 0)) || v.lockWaits?.limitMs != null;
}

/** The counters per wave and the lock waits (`rollout status`); nothing for a one-wave rollout without lock waits. */
function printWaves(out: Output, v: RolloutView): void {
  const lw = v.lockWaits;
  if (lw && waitedForLocks(v)) {
    const t = lw.total;
    const limit = lw.limitMs != null ? ` · --max-lock-wait ${formatMs(lw.limitMs)}` : '';
    out.line(
      t
        ? `Lock waits: p95 ${formatMs(t.p95Ms)}, max ${formatMs(t.maxMs)}, ${t.timeouts} lock timeout${t.timeouts === 1 ? '' : 's'} (${t.measured} tenants measured)${limit}`
        : `Lock waits: none measured yet${limit}`,
    );
  }
  const waves = v.waveCounts ?? [];
  if (waves.length > 1 || lw?.waves.length) {
    const byWave = new Map((lw?.waves ?? []).map((x) => [x.wave, x]));
    out.line(`  wave  tenants  succeeded  failed  running  waiting  cancelled${lw?.waves.length ? '  lock wait p95' : ''}`);
    for (const x of waves) {
      const c = x.counts;
      const total = Object.values(c).reduce((a, b) => a + b, 0);
      const l = byWave.get(x.wave);
      out.line(
        `  ${String(x.wave).padStart(4)}  ${String(total).padStart(7)}  ${String(c.succeeded).padStart(9)}  ${String(c.failed).padStart(6)}  ${String(c.running).padStart(7)}  ${String(c.pending + c.scheduled).padStart(7)}  ${String(c.cancelled).padStart(9)}${l ? `  ${formatMs(l.p95Ms).padStart(13)}` : ''}`,
      );
    }
  }
  if (lw?.total || lw?.limitMs != null || waves.length > 1) out.line();
}

/** The view as JSON, or the table. */
export function printRolloutOrJson(out: Output, v: RolloutView, extra: Record<string, unknown> = {}): void {
  if (out.json) out.data({ ...v, ...extra });
  else printRollout(out, v);
}

/** "n tenants in m waves" */
export function tenantsInWaves(tenants: number, waves: number): string {
  return `${tenants} tenants in ${waves} wave${waves > 1 ? 's' : ''}`;
}

/** Said on stderr, never with the password: where it ends up, and the placeholder to use instead. */
export function warnLiteralPasswords(out: Output, tenants: readonly Tenant[]): void {
  const ids = tenantsWithLiteralPassword(tenants);
  if (!ids.length) return;
  const shown = ids.length > 5 ? `${ids.slice(0, 5).join(', ')} and ${ids.length - 5} more` : ids.join(', ');
  out.error(
    `⚠ the database URL of tenant${ids.length > 1 ? 's' : ''} ${shown} holds a literal password: it is stored as written in the control database (workers read their targets there), though never printed or put in Redis. ` +
      "Write a placeholder instead, e.g. postgres://app:${ACME_PW}@db-1:5432/acme, and set ACME_PW in the workers' environment.",
  );
}
