/**
 * A worker's tenant connections (adapters/pg/connection-cache.ts) are reused
 * between jobs, but not for ever: a server process keeps the catalog entries of
 * every relation it touched, so a client is closed after `maxUses` jobs and the
 * next job gets a new server process.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ConnectionCache } from '../../src/adapters/pg/connection-cache.js';
import { createTestDatabase, dropAllTestDatabases } from '../helpers/db.js';

afterAll(() => dropAllTestDatabases());

describe('the tenant connection cache', () => {
  it('hands the same server process back until it served maxUses jobs, then a new one', async () => {
    const db = await createTestDatabase('cc');
    const cache = new ConnectionCache({ idleMs: 60_000, maxIdle: 2, maxUses: 3 });
    const pids: number[] = [];
    try {
      for (let i = 0; i < 7; i++) {
        const c = await cache.acquire(db.url);
        pids.push((await c.query('SELECT pg_backend_pid() AS p')).rows[0].p);
        await cache.release(db.url, c, true);
      }
    } finally {
      await cache.close();
    }
    expect(pids[0]).toBe(pids[1]);
    expect(pids[1]).toBe(pids[2]);
    expect(pids[3]).not.toBe(pids[2]);
    expect(pids[3]).toBe(pids[5]);
    expect(pids[6]).not.toBe(pids[5]);
    // the retired processes are gone, not left idle
    let alive = -1;
    for (let i = 0; i < 50 && alive !== 0; i++) {
      if (i) await new Promise((r) => setTimeout(r, 100));
      alive = (await db.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1)', [[pids[0], pids[3]]])).rows[0].n;
    }
    expect(alive).toBe(0);
  });
});
