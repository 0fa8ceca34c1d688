/**
 * Dispatch in the control database: take the rollout's dispatch lock, read
 * what the rules need, let core/dispatch.ts decide, write the decision. No
 * rule lives here: this file only reads and writes (the rules are unit-tested
 * without a database in test/unit/dispatch.test.ts).
 *
 * What it reads is O(1) in the rollout's size: the per-wave counters a trigger
 * keeps on rollout_tenants (control migration 006, `rollout_counts`), the next
 * candidates of the wave through a partial index in rollout order, and, for
 * --per-server only, the tenants in flight (at most the window).
 *
 * The dispatch lock is a transaction-level advisory lock per rollout, taken
 * without waiting by finishing tenants (`dispatch_read(..., wait => false)`):
 * one dispatcher at a time, so the window is never exceeded, no tenant is
 * handed out twice and a halt happens once; the others go on with their job.
 * Nothing is lost by not waiting: a finisher records its tenant (and commits)
 * before it tries the lock, and whoever holds the lock looks at the
 * counters' `released` total again after its own commit and dispatches once
 * more when it moved (ControlStore.dispatch). Retry and cancel wait for it.
 */
import type pg from 'pg';
import { assess, choose, type Candidate, type DispatchRollout, type TenantGroup } from '../core/dispatch.js';
import type { DispatchedJob } from '../core/jobs.js';
import type { MaintenanceWindow } from '../core/tenants.js';
import { T } from './schema.js';

/** A wave's counters (the sums of its `rollout_counts` slots). */
export interface WaveCounts {
  wave: number;
  waiting: number;
  queued: number;
  scheduled: number;
  running: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  lock_slow: number;
  released: number;
}

export interface DispatchOutcome {
  jobs: DispatchedJob[];
  /** another process holds the dispatch lock: it will look again after its commit */
  busy: boolean;
  /** the counters' `released` total this dispatch decided on (undefined: busy or no such rollout) */
  released?: string;
}

/** SQL that takes the rollout's dispatch lock in the current transaction, waiting for it ($1: rollout id). */
export const DISPATCH_LOCK_SQL = `SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('flotilla.dispatch/' || $1, 0))`;

/** The counters' `released` total of a rollout: it grows whenever a tenant leaves the window or ends. */
export async function releasedTotal(c: pg.Pool | pg.PoolClient, rolloutId: string): Promise<string> {
  const r = await c.query(`SELECT coalesce(sum(released), 0)::text AS n FROM ${T('rollout_counts')} WHERE rollout_id = $1`, [rolloutId]);
  return r.rows[0].n;
}

/**
 * One dispatch inside the caller's transaction. Only a rollout of `queuePrefix` (the caller's fleet)
 * is dispatched: another fleet's is left alone. `wait`: wait for the dispatch lock (retry, cancel)
 * instead of leaving when it is busy.
 */
export async function dispatchIn(c: pg.PoolClient, rolloutId: string, now: Date, queuePrefix: string, wait = false): Promise<DispatchOutcome> {
  const state = await c.query(`SELECT * FROM ${T('dispatch_read')}($1, $2, $3)`, [rolloutId, queuePrefix, wait]);
  const row = state.rows[0];
  if (!row.locked) return { jobs: [], busy: true };
  if (row.state === null) return { jobs: [], busy: false };
  const rollout: DispatchRollout = {
    state: row.state,
    currentWave: row.current_wave,
    waveCount: row.wave_count,
    finished: row.finished,
    options: row.options,
  };
  const waves = row.waves as WaveCounts[];
  const perServer = !!rollout.options.perServer;
  const groups = countsToGroups(waves, !perServer);
  if (perServer) {
    // in flight by server: at most the window, read through the partial index rollout_tenants_in_flight
    const flying = await c.query<TenantGroup>(
      `SELECT wave, state, (dispatched_at IS NOT NULL) AS dispatched, server, count(*)::int AS n
         FROM ${T('rollout_tenants')} WHERE rollout_id = $1 AND (state = 'running' OR (state = 'pending' AND dispatched_at IS NOT NULL))
        GROUP BY 1, 2, 3, 4`,
      [rolloutId],
    );
    groups.push(...flying.rows);
  }
  const lockSlow = new Map(waves.filter((w) => w.lock_slow > 0).map((w) => [w.wave, w.lock_slow]));
  const outcome = (jobs: DispatchedJob[]): DispatchOutcome => ({ jobs, busy: false, released: String(row.released) });
  const a = assess(rollout, groups, lockSlow);
  switch (a.kind) {
    case 'stopped':
      if (a.markFinished) await c.query(`UPDATE ${T('rollouts')} SET finished_at = now() WHERE id = $1`, [rolloutId]);
      return outcome([]);
    case 'finish':
      await c.query(`UPDATE ${T('rollouts')} SET state = $2, finished_at = now() WHERE id = $1`, [rolloutId, a.state]);
      return outcome([]);
    case 'halt':
      await c.query(`UPDATE ${T('rollout_tenants')} SET state = 'cancelled', finished_at = now() WHERE rollout_id = $1 AND state IN ('pending', 'scheduled')`, [
        rolloutId,
      ]);
      await c.query(`UPDATE ${T('rollouts')} SET state = 'halted', halt_reason = $2, finished_at = CASE WHEN $3 THEN now() END WHERE id = $1`, [
        rolloutId,
        a.reason,
        a.finishedNow,
      ]);
      return outcome([]);
  }
  if (a.wave !== rollout.currentWave) await c.query(`UPDATE ${T('rollouts')} SET current_wave = $2 WHERE id = $1`, [rolloutId, a.wave]);
  if (a.kind === 'full') return outcome([]);

  // the wave's next pending tenants in rollout order, through the partial index rollout_tenants_candidates
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
    await c.query(
      `UPDATE ${T('rollout_tenants')} SET dispatched_at = now() WHERE rollout_id = $1 AND tenant_id = ANY($2) AND state = 'pending' AND dispatched_at IS NULL`,
      [rolloutId, ready],
    );
  }
  if (choice.scheduled.length) {
    // waits for its window as a delayed job; does not take a slot until it runs
    await c.query(
      `UPDATE ${T('rollout_tenants')} rt SET state = 'scheduled', dispatched_at = now(), not_before = x.at
         FROM jsonb_to_recordset($2::jsonb) AS x(id text, at timestamptz) WHERE rt.rollout_id = $1 AND rt.tenant_id = x.id`,
      [rolloutId, JSON.stringify(choice.scheduled.map((s) => ({ id: s.candidate.tenantId, at: s.at })))],
    );
  }
  return outcome(choice.jobs.map((j) => ({ rolloutId, tenantId: j.candidate.tenantId, generation: j.candidate.generation, delayMs: j.delayMs })));
}

/**
 * The counters as the groups core/dispatch.ts reads (server unknown: ''). Without
 * `inFlight`, the tenants in flight are left out (the caller reads them by server).
 */
export function countsToGroups(waves: WaveCounts[], inFlight: boolean): TenantGroup[] {
  const groups: TenantGroup[] = [];
  const add = (wave: number, state: TenantGroup['state'], dispatched: boolean, n: number) => {
    if (n > 0) groups.push({ wave, state, dispatched, server: '', n });
  };
  for (const w of waves) {
    add(w.wave, 'pending', false, w.waiting);
    add(w.wave, 'scheduled', true, w.scheduled);
    add(w.wave, 'succeeded', false, w.succeeded);
    add(w.wave, 'failed', false, w.failed);
    add(w.wave, 'cancelled', false, w.cancelled);
    if (inFlight) {
      add(w.wave, 'pending', true, w.queued);
      add(w.wave, 'running', false, w.running);
    }
  }
  return groups;
}
