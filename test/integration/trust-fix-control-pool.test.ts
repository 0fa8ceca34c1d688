/**
 * A control-database outage terminates the control connections a process has
 * checked out between two queries. pg-pool only listens for errors on idle
 * clients, so before the fix the 'error' event of such a client crashed the
 * worker (promise 13: a worker must ride out the outage).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ControlStore } from '../../src/control/store.js';
import { adminQuery, createTestDatabase, dropAllTestDatabases } from '../helpers/db.js';

afterAll(dropAllTestDatabases);

describe('control pool', () => {
  it('a checked-out client whose backend is terminated does not crash the process', async () => {
    const db = await createTestDatabase('ctlpool');
    const store = new ControlStore(db.url);
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      const c = await store.pool.connect();
      const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      const events = c.listenerCount('error');
      expect(events, 'a listener beyond pg-pool’s (removed while checked out)').toBeGreaterThan(0);
      await adminQuery('SELECT pg_terminate_backend($1)', [pid]);
      await new Promise((r) => setTimeout(r, 500));
      c.release(true);
      // the pool still works for the next caller
      expect((await store.pool.query('SELECT 1 AS one')).rows[0].one).toBe(1);
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await store.close();
    }
  });
});
