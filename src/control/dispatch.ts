/**
 * Dispatch in the control database: lock the rollout row, read what the rules
 * need, let core/dispatch.ts decide, write the decision. No rule lives here:
 * this file only reads and writes (the rules are unit-tested without a
 * database in test/unit/dispatch.test.ts).
 *
 * Runs inside the caller's transaction (ControlStore.dispatch, ControlStore.retry);
 * the row lock serialises every dispatcher of one rollout, so calling it again
 * hands out nothing new.
 */
import type pg from 'pg';
import { assess, choose, type Candidate, type DispatchRollout, type TenantGroup } from '../core/dispatch.js';
import type { DispatchedJob } from '../core/jobs.js';
import type { MaintenanceWindow } from '../core/tenants.js';
import { T } from './schema.js';

/** Only a rollout of `queuePrefix` (the caller's fleet) is dispatched: another fleet's is left alone. */
export async function dispatchIn(c: pg.PoolClient, rolloutId: string, now: Date, queuePrefix: string): Promise<DispatchedJob[]> {
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
  if (ready.length) {
    await c.query(`UPDATE ${T('rollout_tenants')} SET dispatched_at = now() WHERE rollout_id = $1 AND tenant_id = ANY($2)`, [rolloutId, ready]);
  }
  if (choice.scheduled.length) {
    // waits for its window as a delayed job; does not take a slot until it runs
    await c.query(
      `UPDATE ${T('rollout_tenants')} rt SET state = 'scheduled', dispatched_at = now(), not_before = x.at
         FROM jsonb_to_recordset($2::jsonb) AS x(id text, at timestamptz) WHERE rt.rollout_id = $1 AND rt.tenant_id = x.id`,
      [rolloutId, JSON.stringify(choice.scheduled.map((s) => ({ id: s.candidate.tenantId, at: s.at })))],
    );
  }
  await c.query(`UPDATE ${T('rollouts')} SET in_flight = $2, waiting = $3 WHERE id = $1`, [rolloutId, choice.inFlight, choice.waiting]);
  return choice.jobs.map((j) => ({ rolloutId, tenantId: j.candidate.tenantId, generation: j.candidate.generation, delayMs: j.delayMs }));
}
