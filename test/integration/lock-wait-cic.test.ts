/**
 * The lock-wait meter reads pg_locks from the lock session while a statement
 * runs longer than 100 ms. Sent with the extended protocol, that read left the
 * lock session (idle in its transaction for the whole run) holding a snapshot,
 * and a later CREATE INDEX CONCURRENTLY in the same run waited for the lock
 * session's transaction: lock_timeout, an INVALID index, a tenant failed (the
 * "flaky" CIC tests under load, found with log_lock_waits naming the lock
 * session as the holder). Deterministic here: a file slow enough to be watched,
 * then a CONCURRENTLY file, with a short lock_timeout.
 */
import { expect, it } from 'vitest';
import { buildMigrationSet } from '../../src/core/migration-set.js';
import { Migrator } from '../../src/migrator.js';
import { createTestDatabase } from '../helpers/db.js';
import { engineClients, WORKER } from '../helpers/engine.js';

const client = engineClients();

for (const [how, req] of [
  ['as the CLI runs it', {}],
  ['as a worker runs it', WORKER],
] as const) {
  it(`a CONCURRENTLY file after a file the meter watched builds its index (${how})`, async () => {
    const db = await createTestDatabase('lw');
    const c = await client(db);
    const set = await buildMigrationSet([
      { name: '001_slow.sql', sql: 'SELECT pg_sleep(0.4);\nCREATE TABLE t (id int);\n' },
      { name: '002_idx.sql', sql: 'CREATE INDEX CONCURRENTLY t_id_idx ON t (id);\n' },
    ]);
    const r = await new Migrator(c, { lockTimeoutMs: 3000 }).migrate(set, req);
    expect(r.failed).toBeUndefined();
    expect(r.applied.map((a) => a.name)).toEqual(['001_slow.sql', '002_idx.sql']);
    const idx = await db.query(`SELECT i.indisvalid AS valid FROM pg_index i WHERE i.indexrelid = 'public.t_id_idx'::regclass`);
    expect(idx.rows[0].valid).toBe(true);
  });
}
