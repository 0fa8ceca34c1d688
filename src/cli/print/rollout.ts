/**
 * What the fleet commands show of a rollout: the view (plain data, also the --json output)
 * built from the control database's rows, and the human printers for it.
 */
import type { RolloutRow, RolloutTenantRow, TenantState } from '../../control/store.js';
import { tenantsWithLiteralPassword, type Tenant } from '../../core/tenants.js';
import type { Output } from '../output.js';

export interface RolloutView {
  id: string;
  state: RolloutRow['state'];
  haltReason: string | null;
  wave: number;
  waves: number;
  dryRun: boolean;
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
  }[];
}

export function rolloutView(r: RolloutRow, tenants: RolloutTenantRow[]): RolloutView {
  const counts: Record<TenantState, number> = { pending: 0, scheduled: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
  for (const t of tenants) counts[t.state]++;
  return {
    id: r.id,
    state: r.state,
    haltReason: r.haltReason,
    wave: r.currentWave + 1,
    waves: r.waveCount,
    dryRun: r.options.dryRun,
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
    })),
  };
}

/** The per-tenant table and the totals (`rollout status`, and every `--wait` at its end). */
export function printRollout(out: Output, v: RolloutView): void {
  out.line(`Rollout ${v.id}: ${v.state}${v.haltReason ? ` (${v.haltReason})` : ''}${v.dryRun ? ' [dry run]' : ''} · wave ${v.wave}/${v.waves}`);
  out.line();
  const w = Math.max(6, ...v.tenants.map((t) => t.id.length));
  out.line(`  ${'tenant'.padEnd(w)}  ${'state'.padEnd(9)}  applied  attempts  duration  error`);
  let attempts = 0;
  let retries = 0;
  for (const t of v.tenants) {
    attempts += t.attempts;
    retries += Math.max(0, t.attempts - 1);
    const mark = t.state === 'succeeded' ? '✓' : t.state === 'failed' ? '✗' : t.state === 'cancelled' ? '⊘' : t.state === 'running' ? '→' : '○';
    const dur = t.durationMs === null ? '' : `${(t.durationMs / 1000).toFixed(2)} s`;
    out.line(
      `${mark} ${t.id.padEnd(w)}  ${t.state.padEnd(9)}  ${String(t.applied.length).padStart(7)}  ${String(t.attempts).padStart(8)}  ${dur.padStart(8)}  ${(t.error ?? '') + (t.drift ? ' (schema drift)' : '')}`.trimEnd(),
    );
  }
  out.line();
  out.line(
    `Total: ${v.counts.succeeded} succeeded, ${v.counts.failed} failed, ${v.counts.cancelled} cancelled, ${v.counts.running} running, ${v.counts.pending + v.counts.scheduled} waiting · ${attempts} attempt${attempts === 1 ? '' : 's'} (${retries} retr${retries === 1 ? 'y' : 'ies'})`,
  );
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
