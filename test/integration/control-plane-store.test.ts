/**
 * The control plane without the rollout row lock (control migration 006), on a
 * real control database and no tenant: many concurrent finishers never exceed
 * the window, never hand a tenant out twice and halt once; the counters equal
 * a count of the rows; an upgraded control database keeps its rollouts going;
 * the --max-lock-wait gate halts on a wave's 95th percentile.
 */
import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { ControlStore } from '../../src/control/store.js';
import { CONTROL_MIGRATIONS, CONTROL_SCHEMA, CONTROL_TRACKING_TABLE } from '../../src/control/schema.js';
import { Migrator } from '../../src/migrator.js';
import { trustedMigrationSet } from '../../src/core/migration-set.js';
import { assignWaves, rolloutOptions, type RolloutOptions, type RolloutSettings } from '../../src/core/rollout-plan.js';
import type { DispatchedJob } from '../../src/core/jobs.js';
import { createTestDatabase, dropAllTestDatabases, type TestDatabase } from '../helpers/db.js';

const PREFIX = '{cp-test}';
const SET = trustedMigrationSet([{ name: '001_x.sql', sql: 'SELECT 1' }]);
const ENGINE: RolloutOptions['engine'] = {
  trackingTable: 'migrations',
  lockTimeoutMs: 10_000,
  statementTimeoutMs: 60_000,
  validate: true,
  validation: {},
  singleTransaction: false,
};
const stores: ControlStore[] = [];

afterAll(async () => {
  for (const s of stores) await s.close();
  await dropAllTestDatabases();
});

async function controlDb(migrations = CONTROL_MIGRATIONS.length): Promise<{ db: TestDatabase; store: ControlStore }> {
  const db = await createTestDatabase('cp');
  const store = new ControlStore(db.url, { max: 12, queuePrefix: PREFIX, retry: { retryForMs: 0 } });
  stores.push(store);
  if (migrations === CONTROL_MIGRATIONS.length) await store.migrate();
  else {
    const client = await store.pool.connect();
    try {
      const report = await new Migrator(client, { schema: CONTROL_SCHEMA, trackingTable: CONTROL_TRACKING_TABLE, validate: false }, undefined, {
        lockSessions: { target: 'test', open: () => store.pool.connect(), release: async (c) => (c as pg.PoolClient).release() },
      }).migrate(trustedMigrationSet(CONTROL_MIGRATIONS.slice(0, migrations)));
      if (report.failed) throw report.failed.error;
    } finally {
      client.release();
    }
  }
  await store.saveMigrationSet(SET);
  return { db, store };
}

async function rollout(store: ControlStore, id: string, n: number, settings: RolloutSettings = {}, canary?: number): Promise<void> {
  const tenants = Array.from({ length: n }, (_, i) => ({
    id: `t${String(i).padStart(4, '0')}`,
    databaseUrl: `postgres://app@db-${i % 3}:5432/t${i}`,
    tags: [],
  }));
  const { assignments, waveCount } = assignWaves(tenants, canary ? { count: canary } : undefined, settings.waveSize);
  await store.createRollout({ id, setChecksum: SET.checksum, options: rolloutOptions(settings, n, false, ENGINE), waveCount, createdBy: 'test', assignments });
}

/** `workers` concurrent finishers: claim, record (failed when `fail` says so), enqueue what dispatch hands out. */
async function drive(store: ControlStore, first: DispatchedJob[], workers: number, fail: (tenant: string) => boolean = () => false): Promise<string[]> {
  const queue = [...first];
  const handed = [...first.map((j) => j.tenantId)];
  let active = 0;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (;;) {
        const j = queue.shift();
        if (!j) {
          if (active === 0) return;
          await new Promise((r) => setTimeout(r, 2));
          continue;
        }
        active++;
        try {
          const claim = await store.claim(j.rolloutId, j.tenantId, j.generation, `w${w}`);
          if (!claim) continue;
          const next = await store.recordAttempt(
            {
              rolloutId: j.rolloutId,
              tenantId: j.tenantId,
              generation: j.generation,
              attempt: claim.attempt,
              state: fail(j.tenantId) ? 'failed' : 'succeeded',
              applied: [],
              worker: `w${w}`,
              startedAt: new Date(),
              durationMs: 1,
            },
            new Date(),
          );
          handed.push(...next.map((x) => x.tenantId));
          queue.push(...next);
        } finally {
          active--;
        }
      }
    }),
  );
  return handed;
}

/** Rollouts whose counters differ from a count of their rows. */
async function countersDiffer(db: TestDatabase): Promise<string[]> {
  const r = await db.query(`
    WITH rows AS (
      SELECT rollout_id, wave, count(*) FILTER (WHERE state = 'pending' AND dispatched_at IS NULL) AS waiting,
             count(*) FILTER (WHERE state = 'pending' AND dispatched_at IS NOT NULL) AS queued, count(*) FILTER (WHERE state = 'scheduled') AS scheduled,
             count(*) FILTER (WHERE state = 'running') AS running, count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
             count(*) FILTER (WHERE state = 'failed') AS failed, count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
             count(*) FILTER (WHERE lock_slow) AS lock_slow
        FROM flotilla.rollout_tenants GROUP BY 1, 2),
    counters AS (
      SELECT rollout_id, wave, sum(waiting) AS waiting, sum(queued) AS queued, sum(scheduled) AS scheduled, sum(running) AS running,
             sum(succeeded) AS succeeded, sum(failed) AS failed, sum(cancelled) AS cancelled, sum(lock_slow) AS lock_slow
        FROM flotilla.rollout_counts GROUP BY 1, 2)
    SELECT DISTINCT coalesce(a.rollout_id, b.rollout_id) AS id FROM rows a FULL JOIN counters b USING (rollout_id, wave)
     WHERE (a.waiting, a.queued, a.scheduled, a.running, a.succeeded, a.failed, a.cancelled, a.lock_slow)
           IS DISTINCT FROM (b.waiting, b.queued, b.scheduled, b.running, b.succeeded, b.failed, b.cancelled, b.lock_slow)`);
  return r.rows.map((x) => x.id);
}

/** The largest number of tenants in flight seen by a poller while `fn` runs. */
async function maxInFlight(db: TestDatabase, id: string, fn: () => Promise<unknown>): Promise<number> {
  const c = await db.client();
  let max = 0;
  let done = false;
  const poll = (async () => {
    while (!done) {
      const r = await c.query(
        `SELECT count(*)::int AS n FROM flotilla.rollout_tenants WHERE rollout_id = $1 AND (state = 'running' OR (state = 'pending' AND dispatched_at IS NOT NULL))`,
        [id],
      );
      max = Math.max(max, r.rows[0].n);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    await fn();
  } finally {
    done = true;
    await poll;
    await c.end();
  }
  return max;
}

describe('dispatch without the rollout row lock', () => {
  it('40 concurrent finishers, --concurrency 15, 4 waves: never more than 15 in flight, each tenant handed out and run once, the rollout ends', async () => {
    const { db, store } = await controlDb();
    await rollout(store, 'r1', 400, { concurrency: 15, waveSize: { percent: 25 } }, 5);
    let handed: string[] = [];
    const max = await maxInFlight(db, 'r1', async () => {
      handed = await drive(store, await store.dispatch('r1', new Date()), 40);
    });
    expect(max).toBeLessThanOrEqual(15);
    expect(handed.length).toBe(400);
    expect(new Set(handed).size).toBe(400);
    const rows = await db.query(`SELECT state, attempts, count(*)::int AS n FROM flotilla.rollout_tenants WHERE rollout_id = 'r1' GROUP BY 1, 2`);
    expect(rows.rows).toEqual([{ state: 'succeeded', attempts: 1, n: 400 }]);
    expect(await store.getRollout('r1')).toMatchObject({ state: 'succeeded', currentWave: 4 });
    expect((await store.getRollout('r1'))!.finishedAt).not.toBeNull();
    expect(await countersDiffer(db)).toEqual([]);
    expect(await store.counts('r1')).toEqual({ pending: 0, scheduled: 0, running: 0, succeeded: 400, failed: 0, cancelled: 0 });
  }, 120_000);

  it('concurrent failures past --max-failures halt the rollout exactly once; nothing is handed out after the halt', async () => {
    const { db, store } = await controlDb();
    await db.query(`CREATE TABLE halts (id text, at timestamptz DEFAULT clock_timestamp());
      CREATE FUNCTION log_halt() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO halts (id) VALUES (NEW.id); RETURN NULL; END $$;
      CREATE TRIGGER log_halt AFTER UPDATE ON flotilla.rollouts FOR EACH ROW WHEN (OLD.state <> 'halted' AND NEW.state = 'halted') EXECUTE FUNCTION log_halt();`);
    await rollout(store, 'r2', 300, { concurrency: 30, maxFailures: { count: 3 } });
    await drive(store, await store.dispatch('r2', new Date()), 30, () => true);
    expect((await db.query(`SELECT id FROM halts`)).rows).toEqual([{ id: 'r2' }]);
    const r = (await store.getRollout('r2'))!;
    expect(r.state).toBe('halted');
    expect(r.haltReason).toMatch(/tenants failed \(--max-failures 3\)/);
    expect(r.finishedAt).not.toBeNull();
    const counts = await store.counts('r2');
    // the first window was handed out before any failure: those ran (and failed); the rest was cancelled, never handed out
    expect(counts.failed).toBeGreaterThan(3);
    expect(counts.failed + counts.cancelled).toBe(300);
    const late = await db.query(
      `SELECT count(*)::int AS n FROM flotilla.rollout_tenants WHERE rollout_id = 'r2' AND state = 'cancelled' AND dispatched_at IS NOT NULL`,
    );
    expect(late.rows[0].n).toBe(0);
    expect(await countersDiffer(db)).toEqual([]);
  }, 120_000);

  it('retry and cancel wait for the dispatch lock and keep the counters exact', async () => {
    const { db, store } = await controlDb();
    await rollout(store, 'r3', 60, { concurrency: 10 });
    await drive(store, await store.dispatch('r3', new Date()), 8, (t) => t === 't0003');
    expect((await store.getRollout('r3'))!.state).toBe('halted');
    const retried = await store.retry('r3', new Date());
    expect(retried!.retried).toBeGreaterThan(1);
    await drive(store, retried!.jobs, 8);
    expect(await store.getRollout('r3')).toMatchObject({ state: 'succeeded' });
    await rollout(store, 'r4', 30, { concurrency: 5 });
    const first = await store.dispatch('r4', new Date());
    // five tenants are running when the rollout is cancelled: they finish, nothing else starts
    const claims = await Promise.all(first.map((j) => store.claim(j.rolloutId, j.tenantId, j.generation, 'w')));
    expect((await store.cancel('r4', 'test'))!.finishedAt).toBeNull();
    await Promise.all(
      first.map((j, i) =>
        store.recordAttempt(
          { ...j, attempt: claims[i]!.attempt, state: 'succeeded', applied: [], worker: 'w', startedAt: new Date(), durationMs: 1 },
          new Date(),
        ),
      ),
    );
    expect(await store.getRollout('r4')).toMatchObject({ state: 'cancelled' });
    expect((await store.getRollout('r4'))!.finishedAt).not.toBeNull();
    expect(await store.counts('r4')).toMatchObject({ succeeded: 5, cancelled: 25, running: 0 });
    expect(await countersDiffer(db)).toEqual([]);
  }, 120_000);
});

describe('an upgraded control database', () => {
  it('rollouts created before migration 006 get their counters and finish with the new code', async () => {
    const { db, store } = await controlDb(5);
    await rollout(store, 'old', 50, { concurrency: 10 });
    // progress made by the old code: 10 handed out, 4 of them finished, 2 running
    await db.query(`UPDATE flotilla.rollout_tenants SET dispatched_at = now() WHERE rollout_id = 'old' AND position < 10`);
    await db.query(`UPDATE flotilla.rollout_tenants SET state = 'succeeded', finished_at = now() WHERE rollout_id = 'old' AND position < 4`);
    await db.query(`UPDATE flotilla.rollout_tenants SET state = 'running', started_at = now() WHERE rollout_id = 'old' AND position IN (4, 5)`);
    await store.migrate();
    expect(await countersDiffer(db)).toEqual([]);
    expect(await store.counts('old')).toEqual({ pending: 44, scheduled: 0, running: 2, succeeded: 4, failed: 0, cancelled: 0 });
    const handedOut = (await store.inFlight('old')).map((j) => ({ ...j, delayMs: 0 }));
    const running = handedOut.filter((j) => j.state === 'running');
    // the two running tenants finish as their workers would (already claimed)
    const next: DispatchedJob[] = [];
    for (const j of running) {
      next.push(
        ...(await store.recordAttempt(
          { ...j, attempt: 1, state: 'succeeded', applied: [], worker: 'old-worker', startedAt: new Date(), durationMs: 1 },
          new Date(),
        )),
      );
    }
    await drive(store, [...handedOut.filter((j) => j.state !== 'running'), ...next], 6);
    expect(await store.getRollout('old')).toMatchObject({ state: 'succeeded' });
    expect(await store.counts('old')).toMatchObject({ succeeded: 50 });
    expect(await countersDiffer(db)).toEqual([]);
  }, 120_000);
});

describe('--max-lock-wait', () => {
  it("halts when a wave's 95th percentile of lock waits passes the limit: the second slow tenant of a 20-tenant wave, not the first", async () => {
    const { db, store } = await controlDb();
    const settings = { maxLockWaitMs: 1000, concurrency: 20, waveSize: { count: 20 } };
    await rollout(store, 'lw', 40, settings);
    const jobs = await store.dispatch('lw', new Date());
    expect(jobs).toHaveLength(20);
    const finish = async (j: DispatchedJob, lockWaitMs: number) => {
      const claim = await store.claim(j.rolloutId, j.tenantId, j.generation, 'w');
      return store.recordAttempt(
        { ...j, attempt: claim!.attempt, state: 'succeeded', applied: [], worker: 'w', startedAt: new Date(), durationMs: 1, lockWaitMs, lockTimeouts: 0 },
        new Date(),
      );
    };
    for (const j of jobs.slice(0, 10)) await finish(j, 20);
    await finish(jobs[10]!, 1500);
    expect((await store.getRollout('lw'))!.state).toBe('running');
    await finish(jobs[11]!, 1001);
    const r = (await store.getRollout('lw'))!;
    expect(r.state).toBe('halted');
    expect(r.haltReason).toBe('wave 1: the 95th percentile of lock waits is over 1 s (2 of 20 tenants waited longer; --max-lock-wait)');
    const waits = await store.lockWaits('lw');
    expect(waits[0]).toMatchObject({ wave: null, measured: 12, maxMs: 1500, timeouts: 0 });
    expect(await store.counts('lw')).toMatchObject({ succeeded: 12, cancelled: 28, pending: 0 });
    expect(await countersDiffer(db)).toEqual([]);
    // retry: the gate starts afresh (the slow tenants stay measured, no longer counted against the limit)
    const again = await store.retry('lw', new Date());
    expect((await store.getRollout('lw'))!.state).toBe('running');
    expect(again!.retried).toBe(28);
    expect((await store.lockWaits('lw'))[0]!.maxMs).toBe(1500);
  }, 60_000);
});
