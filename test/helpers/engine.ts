/**
 * For tests that drive the engine in process on real Postgres: the clients a
 * test file opens (ended after each test, its databases dropped after the
 * file), a migration set from inline files, how a worker runs them, and a
 * record of every query a client sends (one call = one round trip).
 */
import type pg from 'pg';
import { afterAll, afterEach } from 'vitest';
import { buildMigrationSet, type MigrationSet } from '../../src/core/migration-set.js';
import { Migrator, type MigrateRequest } from '../../src/migrator.js';
import { createTestDatabase, dropAllTestDatabases, type TestDatabase } from './db.js';

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

/** A database tenant for a validation route: `users` with 100 rows, and a tracking table in public. */
export const USERS_SETUP = `CREATE TABLE public.users (id int PRIMARY KEY, email text NOT NULL); INSERT INTO public.users SELECT g, 'u' || g FROM generate_series(1, 100) g;
  CREATE TABLE public.migrations (name text PRIMARY KEY, checksum text, applied_at timestamp DEFAULT now(), duration_ms int, applied_by text)`;

/**
 * The two guards a database tenant's file can go through, for describe.each: with no user code the
 * code-free probe; with a user function in a default elsewhere, the scope query.
 */
export const GUARDS: [string, string][] = [
  ['the code-free probe', ''],
  ['the scope query', `CREATE FUNCTION public.one() RETURNS int LANGUAGE sql AS 'select 1'; CREATE TABLE public.unrelated (x int DEFAULT public.one())`],
];

/** A fresh database given `setup`, then `files` run as a worker runs them; the database and what failed. */
export async function runFiles(
  client: (db: TestDatabase) => Promise<pg.Client>,
  prefix: string,
  setup: string,
  files: Record<string, string>,
): Promise<{ db: TestDatabase; failed?: { name: string; error: unknown } }> {
  const db = await createTestDatabase(prefix);
  await db.query(setup);
  const r = await new Migrator(await client(db)).migrate(await fileSet(files), WORKER);
  return { db, failed: r.failed };
}

export const countRows = async (db: TestDatabase, table: string) => (await db.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number;
