/**
 * The control plane as it was before control migration 006 (commit 8d97e72),
 * kept for `npm run bench:control` to measure side by side in the same run:
 * record_attempt locks the rollout row (FOR UPDATE, migration 003), and a full
 * dispatch locks it again and counts the rollout's tenants with a GROUP BY.
 * Runs against a control database migrated to 005 only. Not shipped.
 */
import type pg from 'pg';
import { assess, choose, windowStillFull, type Candidate, type DispatchRollout, type TenantGroup } from '../src/core/dispatch.js';
import type { DispatchedJob } from '../src/core/jobs.js';
import type { MaintenanceWindow } from '../src/core/tenants.js';
import type { RolloutOptions } from '../src/core/rollout-plan.js';

const T = (n: string) => `flotilla.${n}`;

/** src/control/dispatch.ts at 8d97e72, unchanged but for the return value. */
export async function oldDispatchIn(c: pg.PoolClient, rolloutId: string, now: Date, queuePrefix: string): Promise<DispatchedJob[]> {
  const r = await c.query(`SELECT state, current_wave, wave_count, finished_at, options FROM ${T('rollouts')} WHERE id = $1 AND queue_prefix = $2 FOR UPDATE`, [
    rolloutId,
    queuePrefix,
  ]);
  const row = r.rows[0];
  if (!row) return [];
  const rollout: DispatchRollout = {
    state: row.state,
    currentWave: row.current_wave,
    waveCount: row.wave_count,
    finished: !!row.finished_at,
    options: row.options,
  };
  const stats = await c.query<TenantGroup>(
    `SELECT wave, state, (dispatched_at IS NOT NULL) AS dispatched, server, count(*)::int AS n
       FROM ${T('rollout_tenants')} WHERE rollout_id = $1 GROUP BY 1, 2, 3, 4`,
    [rolloutId],
  );
  const a = assess(rollout, stats.rows);
  switch (a.kind) {
    case 'stopped':
      if (a.markFinished) await c.query(`UPDATE ${T('rollouts')} SET finished_at = now() WHERE id = $1`, [rolloutId]);
      return [];
    case 'finish':
      await c.query(`UPDATE ${T('rollouts')} SET state = $2, finished_at = now() WHERE id = $1`, [rolloutId, a.state]);
      return [];
    case 'halt':
      await c.query(`UPDATE ${T('rollout_tenants')} SET state = 'cancelled', finished_at = now() WHERE rollout_id = $1 AND state IN ('pending', 'scheduled')`, [
        rolloutId,
      ]);
      await c.query(`UPDATE ${T('rollouts')} SET state = 'halted', halt_reason = $2, finished_at = CASE WHEN $3 THEN now() END WHERE id = $1`, [
        rolloutId,
        a.reason,
        a.finishedNow,
      ]);
      return [];
  }
  if (a.wave !== rollout.currentWave) await c.query(`UPDATE ${T('rollouts')} SET current_wave = $2 WHERE id = $1`, [rolloutId, a.wave]);
  if (a.kind === 'full') {
    await c.query(`UPDATE ${T('rollouts')} SET in_flight = $2, waiting = $3 WHERE id = $1`, [rolloutId, a.inFlight, a.waiting]);
    return [];
  }
  const candidates = await c.query<{ tenant_id: string; server: string; generation: number; win: MaintenanceWindow | null }>(
    `SELECT rt.tenant_id, rt.server, rt.generation, rt.maintenance_window AS win
       FROM ${T('rollout_tenants')} rt
      WHERE rt.rollout_id = $1 AND rt.wave = $2 AND rt.state = 'pending' AND rt.dispatched_at IS NULL
      ORDER BY rt.position LIMIT $3`,
    [rolloutId, a.wave, a.candidateLimit],
  );
  const read: Candidate[] = candidates.rows.map((x) => ({ tenantId: x.tenant_id, server: x.server, generation: x.generation, window: x.win }));
  const choice = choose(rollout, a, read, now);
  const ready = choice.ready.map((x) => x.tenantId);
  if (ready.length) await c.query(`UPDATE ${T('rollout_tenants')} SET dispatched_at = now() WHERE rollout_id = $1 AND tenant_id = ANY($2)`, [rolloutId, ready]);
  if (choice.scheduled.length) {
    await c.query(
      `UPDATE ${T('rollout_tenants')} rt SET state = 'scheduled', dispatched_at = now(), not_before = x.at
         FROM jsonb_to_recordset($2::jsonb) AS x(id text, at timestamptz) WHERE rt.rollout_id = $1 AND rt.tenant_id = x.id`,
      [rolloutId, JSON.stringify(choice.scheduled.map((s) => ({ id: s.candidate.tenantId, at: s.at })))],
    );
  }
  await c.query(`UPDATE ${T('rollouts')} SET in_flight = $2, waiting = $3 WHERE id = $1`, [rolloutId, choice.inFlight, choice.waiting]);
  return choice.jobs.map((j) => ({ rolloutId, tenantId: j.candidate.tenantId, generation: j.candidate.generation, delayMs: j.delayMs }));
}

async function tx<R>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<R>): Promise<R> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const r = await fn(c);
    await c.query('COMMIT');
    return r;
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    c.release();
  }
}

export function oldDispatch(pool: pg.Pool, rolloutId: string, now: Date, prefix: string): Promise<DispatchedJob[]> {
  return tx(pool, (c) => oldDispatchIn(c, rolloutId, now, prefix));
}

/** ControlStore.recordAttempt at 8d97e72 for a first attempt (no history to reconcile): record_attempt (003), then a full dispatch unless the window is still full. */
export async function oldRecordAttempt(
  pool: pg.Pool,
  a: {
    rolloutId: string;
    tenantId: string;
    generation: number;
    attempt: number;
    state: 'succeeded' | 'failed';
    worker: string;
    startedAt: Date;
    durationMs: number;
  },
  now: Date,
  prefix: string,
): Promise<DispatchedJob[]> {
  const r = await pool.query<{ rollout_state: string | null; options: RolloutOptions | null; in_flight: number | null; waiting: number | null }>(
    `SELECT * FROM ${T('record_attempt')}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [a.rolloutId, a.tenantId, a.generation, a.attempt, 'migrate', a.state, [], null, null, a.worker, a.startedAt, a.durationMs],
  );
  const x = r.rows[0];
  if (x?.rollout_state && a.state !== 'failed' && windowStillFull(x.rollout_state, x.options!, x.in_flight!, x.waiting!)) return [];
  return oldDispatch(pool, a.rolloutId, now, prefix);
}
