/**
 * A revert rollout's job in the processor, with plain-object ports: the
 * frozen options make it a revert (never the payload), the engine's revert is
 * called with the reverted rollout and the frozen up/down pairs, and the
 * attempt is recorded as kind `revert`.
 */
import type { Job, Queue } from 'bullmq';
import type pg from 'pg';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { ClaimedJob } from '../../src/control/store.js';
import type { TenantJobData } from '../../src/core/jobs.js';
import { buildMigrationSet, type MigrationSet } from '../../src/core/migration-set.js';
import type { RevertPairs } from '../../src/core/revert.js';
import { emptyReport } from '../../src/engine/types.js';
import type { RevertRequest } from '../../src/migrator.js';
import { FleetFingerprints, type AttemptRecord, type ProcessorStore, type TenantTarget } from '../../src/worker/ports.js';
import { tenantProcessor } from '../../src/worker/processor.js';

const NOW = new Date('2026-12-01T12:00:00Z');

async function run(revert: boolean) {
  const downs = await buildMigrationSet([
    { name: '002_b.sql', sql: 'CREATE TABLE b (id int);' },
    { name: '002_b.down.sql', sql: 'DROP TABLE b;' },
  ]);
  const frozen: MigrationSet = { migrations: downs.downs!, checksum: 'downs' };
  const options = {
    canary: false,
    maxFailures: 0,
    concurrency: null,
    perServer: null,
    dryRun: false,
    engine: { trackingTable: 'migrations', lockTimeoutMs: 1000, statementTimeoutMs: 1000, validate: true, validation: {}, singleTransaction: false },
    ...(revert ? { revert: { of: 'r0', ups: [{ name: '002_b.sql', version: '2', checksum: downs.migrations[0]!.checksum }] } } : {}),
  };
  const claim: ClaimedJob = { attempt: 1, setChecksum: 'downs', options, tenant: { id: 't1', databaseUrl: 'postgres://db.example/t1', tags: [] } };
  const recorded: AttemptRecord[] = [];
  const calls: { kind: string; pairs?: RevertPairs; req?: RevertRequest }[] = [];
  const store: ProcessorStore = {
    claim: async () => claim,
    markScheduled: async () => {},
    loadMigrationSet: async () => frozen,
    recordAttempt: async (a) => {
      recorded.push(a);
      return [];
    },
    fingerprints: async () => new Map(),
  };
  const done = { ...emptyReport('public', false), pending: ['002_b.down.sql'], applied: [{ name: '002_b.down.sql', durationMs: 3 }] };
  const tenants: TenantTarget = {
    connect: async () => ({}) as pg.Client,
    release: async () => {},
    migrate: async () => {
      calls.push({ kind: 'migrate' });
      return done;
    },
    revert: async (_c, _u, _s, pairs, req) => {
      calls.push({ kind: 'revert', pairs, req });
      return done;
    },
    postChecks: async () => ({ invalidIndexes: [], notValidConstraints: [], fingerprint: 'fp' }),
    readLedger: async () => [],
  };
  const process = tenantProcessor({
    store,
    queue: { addBulk: async () => [] } as unknown as Queue,
    workerId: 'w1',
    logger: pino({ level: 'silent' }),
    env: {},
    now: () => NOW,
    fingerprints: new FleetFingerprints({ now: () => 0, sleep: async () => {} }),
    tenants,
  });
  const job = {
    id: 'job-1',
    data: { rolloutId: 'r1', tenantId: 't1', generation: 0 } satisfies TenantJobData,
    timestamp: NOW.getTime(),
    processedOn: NOW.getTime(),
    delay: 0,
    attemptsMade: 0,
    opts: { attempts: 6 },
    moveToDelayed: async () => {},
  } as unknown as Job<TenantJobData>;
  const result = await process(job, 'token');
  return { result, recorded, calls };
}

describe('a revert job in the processor', () => {
  it('runs the engine revert with the reverted rollout and the frozen pairs, recorded as kind revert', async () => {
    const { result, recorded, calls } = await run(true);
    expect(calls.map((c) => c.kind)).toEqual(['revert']);
    expect(calls[0]!.req!.select).toEqual({ rollout: 'r0' });
    expect(calls[0]!.pairs!.ups).toEqual([{ name: '002_b.sql', version: 2n, checksum: expect.any(String) }]);
    expect(calls[0]!.pairs!.downs.map((d) => d.name)).toEqual(['002_b.down.sql']);
    expect(result).toMatchObject({ kind: 'revert', outcome: 'migrated', applied: ['002_b.down.sql'] });
    expect(recorded[0]).toMatchObject({ kind: 'revert', state: 'succeeded', applied: ['002_b.down.sql'] });
  });

  it('without revert options the same job migrates', async () => {
    const { result, recorded, calls } = await run(false);
    expect(calls.map((c) => c.kind)).toEqual(['migrate']);
    expect(result.kind).toBe('migrate');
    expect(recorded[0]!.kind).toBe('migrate');
  });
});
