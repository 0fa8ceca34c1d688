/**
 * The tenant-job processor with plain-object ports (no Postgres, no Redis):
 * how each outcome of the engine maps onto BullMQ (a retry, a failure with no
 * retries, a delayed job) and what is recorded in the control database.
 */
import { DelayedError, UnrecoverableError, type Job, type Queue } from 'bullmq';
import type pg from 'pg';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { InterruptedError, LockLostError, LockTimeoutError, MigrationFailedError, ValidationFailedError } from '../../src/core/errors.js';
import type { MigrationSet } from '../../src/core/migration-set.js';
import type { Clock } from '../../src/core/ports.js';
import type { ClaimedJob } from '../../src/control/store.js';
import type { MigrateReport } from '../../src/migrator.js';
import { emptyReport } from '../../src/engine/types.js';
import type { TenantJobData } from '../../src/core/jobs.js';
import { FleetFingerprints, type AttemptRecord, type ProcessorStore, type TenantTarget } from '../../src/worker/ports.js';
import { tenantProcessor } from '../../src/worker/processor.js';

const NOW = new Date('2026-12-01T12:00:00Z');

function fakeClock(): Clock & { advance(ms: number): void } {
  let t = 1000;
  return {
    now: () => t,
    sleep: async (ms) => {
      t += Math.max(0, ms);
    },
    advance: (ms) => {
      t += ms;
    },
  };
}

function claimed(over: Partial<ClaimedJob> = {}): ClaimedJob {
  return {
    attempt: 1,
    setChecksum: 'set-1',
    options: {
      canary: false,
      maxFailures: 0,
      concurrency: null,
      perServer: null,
      dryRun: false,
      engine: { trackingTable: 'migrations', lockTimeoutMs: 1000, statementTimeoutMs: 1000, validate: true, validation: {} },
    } as unknown as ClaimedJob['options'],
    tenant: { id: 't1', databaseUrl: 'postgres://db.example/t1', tags: [] },
    ...over,
  };
}

function report(over: Partial<MigrateReport> = {}): MigrateReport {
  return { ...emptyReport('public', false), ...over };
}

/** A processor wired to plain objects; `engine` is what the tenant's migrate() does. */
function harness(engine: () => Promise<MigrateReport>, opts: { claim?: ClaimedJob | undefined; attemptsMade?: number; attempts?: number } = {}) {
  const recorded: AttemptRecord[] = [];
  const released: boolean[] = [];
  const delayedTo: number[] = [];
  const store: ProcessorStore = {
    claim: async () => ('claim' in opts ? opts.claim : claimed()),
    markScheduled: async () => {},
    loadMigrationSet: async () => ({ migrations: [] }) as unknown as MigrationSet,
    recordAttempt: async (a) => {
      recorded.push(a);
      return [];
    },
    fingerprints: async () =>
      new Map([
        ['fp-a', 3],
        ['fp-b', 1],
      ]),
  };
  const client = {} as pg.Client;
  const tenants: TenantTarget = {
    connect: async () => client,
    release: async (_url, _client, reusable) => void released.push(reusable),
    migrate: () => engine(),
    revert: () => engine(),
    postChecks: async () => ({ invalidIndexes: [], notValidConstraints: [], fingerprint: 'fp-a' }) as never,
    readLedger: async () => [],
  };
  const clock = fakeClock();
  const process = tenantProcessor({
    store,
    queue: { addBulk: async () => [] } as unknown as Queue,
    workerId: 'w1',
    logger: pino({ level: 'silent' }),
    env: {},
    now: () => NOW,
    fingerprints: new FleetFingerprints(clock),
    tenants,
    clock,
    random: () => 0.5,
  });
  const job = {
    id: 'job-1',
    data: { rolloutId: 'r1', tenantId: 't1', generation: 0 } satisfies TenantJobData,
    timestamp: NOW.getTime(),
    processedOn: NOW.getTime(),
    delay: 0,
    attemptsMade: opts.attemptsMade ?? 0,
    opts: { attempts: opts.attempts ?? 6 },
    moveToDelayed: async (ts: number) => void delayedTo.push(ts),
  } as unknown as Job<TenantJobData>;
  return { run: () => process(job, 'token'), recorded, released, delayedTo };
}

const failedWith = (error: MigrationFailedError | ValidationFailedError | LockLostError) => async () =>
  report({ failed: { name: '002_b.sql', error }, applied: [{ name: '001_a.sql', durationMs: 5 }] });

describe('tenant processor', () => {
  it('records a success: nothing pending is "succeeded", and a schema tenant\'s connection goes back to the cache', async () => {
    const h = harness(async () => report(), { claim: claimed({ tenant: { id: 't1', databaseUrl: 'postgres://db.example/shared', schema: 't1', tags: [] } }) });
    const r = await h.run();
    expect(r).toMatchObject({ tenantId: 't1', kind: 'migrate', outcome: 'succeeded', applied: [] });
    expect(h.recorded).toHaveLength(1);
    expect(h.recorded[0]).toMatchObject({
      rolloutId: 'r1',
      tenantId: 't1',
      attempt: 1,
      state: 'succeeded',
      applied: [],
      error: null,
      worker: 'w1',
      startedAt: NOW,
    });
    expect(h.released).toEqual([true]);
  });

  it('a tenant database of its own is closed after a success, not reset for a next job that is unlikely to come', async () => {
    const h = harness(async () => report());
    await h.run();
    expect(h.released).toEqual([false]);
  });

  it('records what was applied, with the post-commit checks and the fleet fingerprint', async () => {
    const h = harness(async () => report({ pending: ['001_a.sql'], applied: [{ name: '001_a.sql', durationMs: 5 }] }));
    const r = await h.run();
    expect(r).toMatchObject({ outcome: 'migrated', applied: ['001_a.sql'] });
    expect(h.recorded[0]).toMatchObject({ state: 'succeeded', applied: ['001_a.sql'], error: null, checks: { fingerprint: 'fp-a', drift: false } });
  });

  it('a transient failure is recorded as retrying and thrown as a plain error: BullMQ retries it', async () => {
    const pgError = { code: '40P01', message: 'deadlock detected' };
    const h = harness(failedWith(new MigrationFailedError('002_b.sql', undefined, pgError, true, 'transient')));
    const thrown = await h.run().catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(Error);
    expect(thrown).not.toBeInstanceOf(UnrecoverableError);
    expect(thrown).not.toBeInstanceOf(DelayedError);
    expect(h.recorded[0]).toMatchObject({ state: 'retrying', applied: ['001_a.sql'], error: { kind: 'transient', code: 'migration_failed' } });
    expect(h.released).toEqual([false]);
  });

  it('a raw error with a retryable SQLSTATE is transient too', async () => {
    const h = harness(async () => {
      throw Object.assign(new Error('could not serialize access'), { code: '40001' });
    });
    const thrown = await h.run().catch((e: unknown) => e);
    expect(thrown).not.toBeInstanceOf(UnrecoverableError);
    expect(h.recorded[0]).toMatchObject({ state: 'retrying', error: { kind: 'transient', code: '40001' } });
  });

  it('a transient failure on the last attempt fails the tenant: UnrecoverableError', async () => {
    const h = harness(failedWith(new LockLostError('db', '002_b.sql', 42, true)), { attemptsMade: 5, attempts: 6 });
    await expect(h.run()).rejects.toBeInstanceOf(UnrecoverableError);
    expect(h.recorded[0]).toMatchObject({ state: 'failed', error: { code: 'lock_lost', kind: 'transient' } });
  });

  it('a fatal failure (validation, SQL) fails at once with UnrecoverableError: no retry', async () => {
    for (const error of [
      new ValidationFailedError('002_b.sql', ['rows changed in public.t']),
      new MigrationFailedError('002_b.sql', { index: 0, line: 1, text: 'SELEC 1' }, { code: '42601', message: 'syntax error' }, true, 'migration'),
    ]) {
      const h = harness(failedWith(error));
      const thrown = await h.run().catch((e: unknown) => e);
      expect(thrown).toBeInstanceOf(UnrecoverableError);
      expect((thrown as Error).message).toBe(error.message);
      expect(h.recorded[0]).toMatchObject({ state: 'failed', applied: ['001_a.sql'], error: { code: error.code, kind: 'migration' } });
    }
  });

  it('another runner holding the lock delays the job (jittered), records nothing and is no failure', async () => {
    const h = harness(async () => {
      throw new LockTimeoutError('db', 0, 'pid 7');
    });
    await expect(h.run()).rejects.toBeInstanceOf(DelayedError);
    // 500 ms + random (0.5) * 1500 ms, from the injected now
    expect(h.delayedTo).toEqual([NOW.getTime() + 1250]);
    expect(h.recorded).toEqual([]);
    expect(h.released).toEqual([false]);
  });

  it('an interrupted run (the worker drains) is transient: retried, never a permanent failure', async () => {
    const h = harness(async () => report({ interrupted: true, pending: ['001_a.sql', '002_b.sql'], applied: [{ name: '001_a.sql', durationMs: 5 }] }));
    const thrown = await h.run().catch((e: unknown) => e);
    expect(thrown).not.toBeInstanceOf(UnrecoverableError);
    expect((thrown as Error).message).toBe(new InterruptedError().message);
    expect(h.recorded[0]).toMatchObject({ state: 'retrying', applied: ['001_a.sql'], error: { code: 'interrupted', kind: 'transient' } });
  });

  it('a stale job (cancelled, finished, older generation) is skipped without touching the tenant', async () => {
    const h = harness(
      async () => {
        throw new Error('must not run');
      },
      { claim: undefined },
    );
    await expect(h.run()).resolves.toMatchObject({ outcome: 'skipped' });
    expect(h.recorded).toEqual([]);
    expect(h.released).toEqual([]);
  });
});

describe('fleet fingerprints', () => {
  it('reuse the majority for a second, then ask again', async () => {
    const clock = fakeClock();
    let calls = 0;
    const store = {
      fingerprints: async () => {
        calls++;
        return new Map([
          ['a', 1],
          ['b', 2],
        ]);
      },
    };
    const f = new FleetFingerprints(clock);
    expect(await f.majority(store, 'r1')).toBe('b');
    clock.advance(999);
    await f.majority(store, 'r1');
    expect(calls).toBe(1);
    clock.advance(1);
    await f.majority(store, 'r1');
    expect(calls).toBe(2);
  });
});
