/**
 * The lock-wait meter (engine/lock-wait.ts) watches a long query from the lock
 * session, except while a file runs outside a transaction: a sample there is a
 * snapshot in the lock session's open transaction, and CREATE INDEX
 * CONCURRENTLY would wait for that transaction to end (which it does only after
 * the migration) until lock_timeout, leaving an INVALID index. Found when the
 * revert fleet test's CONCURRENTLY index failed after the meter was merged.
 */
import { describe, expect, it } from 'vitest';
import type { Queryable } from '../../src/adapters/pg/connection.js';
import { systemClock } from '../../src/adapters/clock.js';
import { LockWaitMeter, type LockWaitTotals } from '../../src/engine/lock-wait.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function fixture() {
  const probes: string[] = [];
  const lockSession = { query: async (sql: string) => (probes.push(sql), { rows: [] }) } as unknown as Queryable;
  const migration = { query: async () => (await sleep(120), { rows: [] }) } as unknown as Queryable;
  const meter = new LockWaitMeter(systemClock, () => ({ conn: lockSession, pid: 42 }), { afterMs: 10, everyMs: 10 });
  const totals: LockWaitTotals = { tableLockWaitMs: 0, lockTimeouts: 0 };
  meter.start(totals);
  return { probes, db: meter.wrap(migration), meter, totals };
}

describe('lock-wait meter', () => {
  it('watches a long query of a transactional file from the lock session', async () => {
    const f = fixture();
    f.meter.watchLocks(true);
    await f.db.query('ALTER TABLE t ADD COLUMN c int');
    expect(f.probes.length).toBeGreaterThan(0);
  });

  it('sends nothing on the lock session while a file runs outside a transaction', async () => {
    const f = fixture();
    f.meter.watchLocks(false);
    await f.db.query('CREATE INDEX CONCURRENTLY i ON t (c)');
    expect(f.probes).toEqual([]);
  });

  it('still counts a lock timeout outside a transaction', async () => {
    const f = fixture();
    f.meter.watchLocks(false);
    const failing = new LockWaitMeter(systemClock, () => undefined, { afterMs: 10, everyMs: 10 });
    failing.start(f.totals);
    failing.watchLocks(false);
    const db = failing.wrap({ query: async () => Promise.reject(Object.assign(new Error('lock timeout'), { code: '55P03' })) } as unknown as Queryable);
    await expect(db.query('CREATE INDEX CONCURRENTLY i ON t (c)')).rejects.toThrow('lock timeout');
    expect(f.totals.lockTimeouts).toBe(1);
  });
});
