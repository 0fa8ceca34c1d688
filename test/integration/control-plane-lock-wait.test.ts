/**
 * Lock waits with a real blocker: another session holds a lock on a tenant's
 * table while the migration's ALTER TABLE waits for it. The engine measures
 * the wait (engine/lock-wait.ts) and counts lock timeouts; a rollout with
 * --max-lock-wait halts on it and `rollout status` shows it.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrationDir } from '../../src/adapters/fs-source.js';
import { Migrator } from '../../src/migrator.js';
import { createTestDatabase, dropAllTestDatabases, type TestDatabase } from '../helpers/db.js';
import { migrationDir } from '../helpers/migrations.js';
import { Fleet, waitFor } from '../helpers/fleet.js';

const ALTER = { '001_orders_note.sql': 'ALTER TABLE orders ADD COLUMN note text;\n' };
const dirs: { cleanup(): void }[] = [];

afterAll(async () => {
  await dropAllTestDatabases();
  for (const d of dirs) d.cleanup();
});

/** A session holding ACCESS SHARE on orders (an open transaction that read it) until `release`. */
async function blocker(db: { client(): Promise<pg.Client> }): Promise<{ release(): Promise<void>; waiting(): Promise<boolean> }> {
  const c = await db.client();
  await c.query('BEGIN');
  await c.query('SELECT count(*) FROM orders');
  return {
    release: async () => {
      await c.query('COMMIT');
      await c.end();
    },
    // someone waits for a lock this session holds
    waiting: async () =>
      (await c.query(`SELECT count(*)::int AS n FROM pg_locks w WHERE NOT w.granted AND pg_backend_pid() = ANY(pg_blocking_pids(w.pid))`)).rows[0].n > 0,
  };
}

describe('the engine measures lock waits', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('lw');
  });

  it('an ALTER TABLE blocked by a reader for ~800 ms: the wait is recorded, no lock timeout', async () => {
    await db.query('CREATE TABLE orders (id int)');
    const dir = migrationDir(ALTER);
    dirs.push(dir);
    const b = await blocker(db);
    const released = (async () => {
      await waitFor('the migration to wait for the lock', () => b.waiting(), 60_000, 20);
      await new Promise((r) => setTimeout(r, 800));
      await b.release();
    })();
    const c = await db.client();
    try {
      const report = await new Migrator(c, { lockTimeoutMs: 30_000 }).migrate(await loadMigrationDir(dir.dir));
      await released;
      expect(report.failed).toBeUndefined();
      expect(report.applied.map((a) => a.name)).toEqual(['001_orders_note.sql']);
      expect(report.lockTimeouts).toBe(0);
      expect(report.tableLockWaitMs).toBeGreaterThanOrEqual(700);
      expect(report.tableLockWaitMs).toBeLessThan(report.applied[0]!.durationMs + 1);
      // the migration lock (another runner) is not part of it
      expect(report.lockWaitMs).toBe(0);
    } finally {
      await c.end();
    }
  }, 90_000);

  it('a statement that hits lock_timeout: one lock timeout, its wait counted; nothing measured without a wait', async () => {
    db = await createTestDatabase('lw');
    await db.query('CREATE TABLE orders (id int)');
    const dir = migrationDir(ALTER);
    dirs.push(dir);
    const b = await blocker(db);
    const c = await db.client();
    try {
      const report = await new Migrator(c, { lockTimeoutMs: 300 }).migrate(await loadMigrationDir(dir.dir));
      expect(report.failed?.error.message).toMatch(/lock timeout/i);
      expect(report.lockTimeouts).toBe(1);
      expect(report.tableLockWaitMs).toBeGreaterThanOrEqual(250);
      await b.release();
      const again = await new Migrator(c, { lockTimeoutMs: 300 }).migrate(await loadMigrationDir(dir.dir));
      expect(again.failed).toBeUndefined();
      expect(again).toMatchObject({ lockTimeouts: 0, tableLockWaitMs: 0 });
    } finally {
      await c.end();
    }
  }, 90_000);
});

describe('rollout --max-lock-wait', () => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = await Fleet.create();
    await fleet.startWorkers(1);
  }, 240_000);
  afterAll(async () => {
    await fleet?.cleanup();
  }, 120_000);

  it('a canary blocked for ~1 s by a reader halts the rollout (limit 300ms); status shows the lock waits', async () => {
    const tenants = await fleet.addTenants([{ id: 'lw-blocked' }, { id: 'lw-b' }, { id: 'lw-c' }]);
    for (const t of tenants) await t.query('CREATE TABLE orders (id int)');
    const dir = migrationDir(ALTER);
    dirs.push(dir);
    const b = await blocker(tenants[0]!.db);
    const released = (async () => {
      await waitFor('the canary to wait for the lock', () => b.waiting(), 120_000, 20);
      await new Promise((r) => setTimeout(r, 1000));
      await b.release();
    })();
    const r = await fleet.cliJson(
      ['rollout', '--dir', dir.dir, '--tenants', fleet.writeTenantsFile(tenants), '--all', '--canary', '1', '--max-lock-wait', '300ms', '--wait'],
      { timeoutMs: 180_000 },
    );
    await released;
    expect(r.json.state, r.stderr).toBe('halted');
    expect(r.code).not.toBe(0);
    expect(r.json.haltReason).toBe('wave 1: the 95th percentile of lock waits is over 300 ms (1 of 1 tenants waited longer; --max-lock-wait)');
    const status = await fleet.cliJson(['rollout', 'status', r.json.id]);
    const byId = new Map<string, { state: string; lockWaitMs: number | null; lockTimeouts: number | null }>(
      status.json.tenants.map((t: { id: string }) => [t.id, t]),
    );
    expect(byId.get('lw-blocked')).toMatchObject({ state: 'succeeded', lockTimeouts: 0 });
    expect(byId.get('lw-blocked')!.lockWaitMs).toBeGreaterThanOrEqual(900);
    expect(byId.get('lw-b')).toMatchObject({ state: 'cancelled', lockWaitMs: null });
    expect(status.json.lockWaits).toMatchObject({ limitMs: 300, total: { measured: 1, timeouts: 0 } });
    expect(status.json.lockWaits.total.p95Ms).toBe(byId.get('lw-blocked')!.lockWaitMs);
    const text = await fleet.cli(['rollout', 'status', r.json.id]);
    expect(text.stdout).toMatch(/Lock waits: p95 [\d.]+ m?s, max [\d.]+ m?s, 0 lock timeouts \(1 tenants measured\) · --max-lock-wait 300 ms/);
    // the tenant's attempt row has it too
    const attempts = await fleet.controlQuery(`SELECT lock_wait_ms, lock_timeouts FROM flotilla.attempts WHERE rollout_id = $1 AND tenant_id = 'lw-blocked'`, [
      r.json.id,
    ]);
    expect(attempts.rows).toEqual([{ lock_wait_ms: byId.get('lw-blocked')!.lockWaitMs, lock_timeouts: 0 }]);
  }, 240_000);

  it('a bad --max-lock-wait is refused, exit 2, nothing created', async () => {
    const tenants = await fleet.addTenants([{ id: 'lw-bad' }]);
    const r = await fleet.cli(['rollout', '--tenants', fleet.writeTenantsFile(tenants), '--all', '--max-lock-wait', 'soon']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--max-lock-wait: "soon" is not a duration');
    expect(
      (await fleet.controlQuery(`SELECT count(*)::int AS n FROM flotilla.rollout_tenants WHERE tenant_id = 'lw-bad'`).catch(() => ({ rows: [{ n: 0 }] })))
        .rows[0].n,
    ).toBe(0);
  }, 60_000);
});
