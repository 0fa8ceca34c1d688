/**
 * One tenant of one rollout, in depth: the target frozen with the rollout and every attempt
 * recorded for it (all generations: a `rollout retry` is a new generation). What the
 * dashboard's tenant page shows; `rollout status` keeps to one line per tenant.
 *
 * The URL leaves this module redacted (core/redact.ts): a literal password written in a
 * tenants file is stored in the control database, and must stop here.
 */
import type pg from 'pg';
import { redactSecrets, redactUrl } from '../core/redact.js';
import { T } from './schema.js';

export interface TenantAttempt {
  generation: number;
  attempt: number;
  /** `migrate`, or `validate` for a dry run */
  kind: string;
  /** succeeded | failed | retrying (a transient failure BullMQ runs again) */
  state: string;
  applied: string[];
  error: { code: string | null; message: string } | null;
  worker: string | null;
  startedAt: Date | null;
  finishedAt: Date;
  durationMs: number | null;
}

export interface TenantHistory {
  rolloutId: string;
  tenantId: string;
  target: {
    /** the frozen target, password masked (`${VAR}` placeholders are kept: they name a variable, not a secret) */
    databaseUrl: string;
    schema: string | null;
    /** host:port, what --per-server counts */
    server: string;
    window: { cron: string; durationMinutes: number; tz?: string } | null;
  };
  /** bumped by each `rollout retry` of this tenant */
  generation: number;
  worker: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** oldest first */
  attempts: TenantAttempt[];
}

/** undefined when the rollout has no such tenant. */
export async function tenantHistory(pool: pg.Pool, rolloutId: string, tenantId: string): Promise<TenantHistory | undefined> {
  const t = await pool.query(
    `SELECT database_url, schema, server, maintenance_window, generation, worker, started_at, finished_at
       FROM ${T('rollout_tenants')} WHERE rollout_id = $1 AND tenant_id = $2`,
    [rolloutId, tenantId],
  );
  const row = t.rows[0];
  if (!row) return undefined;
  const a = await pool.query(
    `SELECT generation, attempt, kind, state, applied, error, worker, started_at, finished_at, duration_ms
       FROM ${T('attempts')} WHERE rollout_id = $1 AND tenant_id = $2
      ORDER BY generation, coalesce(started_at, finished_at), attempt, kind`,
    [rolloutId, tenantId],
  );
  return {
    rolloutId,
    tenantId,
    target: { databaseUrl: redactUrl(row.database_url), schema: row.schema, server: row.server, window: row.maintenance_window },
    generation: row.generation,
    worker: row.worker,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    attempts: a.rows.map((x) => ({
      generation: x.generation,
      attempt: x.attempt,
      kind: x.kind,
      state: x.state,
      applied: x.applied ?? [],
      error: x.error ? { code: x.error.code ?? null, message: redactSecrets(String(x.error.message ?? JSON.stringify(x.error))) } : null,
      worker: x.worker,
      startedAt: x.started_at,
      finishedAt: x.finished_at,
      durationMs: x.duration_ms,
    })),
  };
}
