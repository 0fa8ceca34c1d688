/**
 * For tests that drive the engine in process on real Postgres: the clients a
 * test file opens (ended after each test, its databases dropped after the
 * file), a migration set from inline files, how a worker runs them, and a
 * record of every query a client sends (one call = one round trip).
 */
import type pg from 'pg';
import { afterAll, afterEach } from 'vitest';
import { buildMigrationSet, type MigrationSet } from '../../src/core/migration-set.js';
import type { MigrateRequest } from '../../src/migrator.js';
import { dropAllTestDatabases, type TestDatabase } from './db.js';

/** As a worker runs files: each COMMIT sent with the next file, the post-commit checks with the last. */
export const WORKER: MigrateRequest = { deferCommits: true, postChecks: true };

/** A migration set of inline files, name -> SQL. */
export function fileSet(files: Record<string, string>): Promise<MigrationSet> {
  return buildMigrationSet(Object.entries(files).map(([name, sql]) => ({ name, sql })));
}

/** Call at a test file's top level: returns `client(db)`, a connection ended after the test that opened it. */
export function engineClients(): (db: TestDatabase) => Promise<pg.Client> {
  const clients: pg.Client[] = [];
  afterEach(async () => {
    while (clients.length)
      await clients
        .pop()!
        .end()
        .catch(() => {});
  });
  afterAll(() => dropAllTestDatabases());
  return async (db) => {
    const c = await db.client();
    clients.push(c);
    return c;
  };
}

/** Every query `c` sends from now on, as text (pg waits for each: one call is one round trip). */
export function counted(c: pg.Client): string[] {
  const sent: string[] = [];
  const query = c.query.bind(c) as (...a: unknown[]) => unknown;
  (c as unknown as { query: unknown }).query = (...args: unknown[]) => {
    sent.push(typeof args[0] === 'string' ? args[0] : String((args[0] as { text?: string })?.text));
    return query(...args);
  };
  return sent;
}
