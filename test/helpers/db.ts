/**
 * A fresh database per test (or per file): created empty, dropped after.
 * Kept when KEEP_TEST_DBS=1 so a failure can be inspected.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { dbUrl } from './fleet-base.js';

export function adminUrl(): string {
  return process.env.TEST_DATABASE_URL ?? inject('databaseUrl');
}

export function urlFor(database: string, base = adminUrl()): string {
  return dbUrl(base, database);
}

export async function adminQuery(sql: string, values?: unknown[]): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: adminUrl() });
  await c.connect();
  try {
    return await c.query(sql, values);
  } finally {
    await c.end();
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  /** run SQL in this database on a short-lived connection */
  query<R extends pg.QueryResultRow = any>(sql: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  client(): Promise<pg.Client>;
  drop(): Promise<void>;
}

const created: TestDatabase[] = [];

export async function createTestDatabase(prefix = 't'): Promise<TestDatabase> {
  const name = `flotilla_${prefix}_${randomBytes(5).toString('hex')}`;
  await adminQuery(`CREATE DATABASE "${name}"`);
  const url = urlFor(name);
  const db: TestDatabase = {
    name,
    url,
    async query(sql, values) {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        return await c.query(sql, values);
      } finally {
        await c.end();
      }
    },
    async client() {
      const c = new pg.Client({ connectionString: url });
      c.on('error', () => {});
      await c.connect();
      return c;
    },
    async drop() {
      if (process.env.KEEP_TEST_DBS === '1') return;
      await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    },
  };
  created.push(db);
  return db;
}

export async function dropAllTestDatabases(): Promise<void> {
  while (created.length)
    await created
      .pop()!
      .drop()
      .catch(() => {});
}
