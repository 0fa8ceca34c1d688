/**
 * "Every table" under --schema (issue 11 §1): a file whose code cannot be
 * proved harmless no longer counts every table of the database. The tenant's
 * schema is counted; every other table is judged by this transaction's own
 * write counters (pg_stat_get_xact_tuples_inserted/deleted) and its ACCESS
 * EXCLUSIVE locks (adapters/pg/snapshot.ts). Each route a row count can change
 * by, outside the tenant's schema, must still fail the file (promise 8); the
 * harmless twins must pass; and the check must not wait on other tenants'
 * locks, which counting did.
 */
import { writeFileSync, mkdtempSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationFailedError } from '../../src/core/errors.js';
import { buildMigrationSet } from '../../src/core/migration-set.js';
import { rowCountScope } from '../../src/adapters/pg/row-scope.js';
import { Migrator, type MigrateReport } from '../../src/migrator.js';
import { createTestDatabase, dropAllTestDatabases, type TestDatabase } from '../helpers/db.js';

afterAll(dropAllTestDatabases);

let db: TestDatabase;
let n = 0;

/** A tenant schema, plus `other.victims` (3 rows) and `elsewhere.log` holding a trigger, outside it. */
beforeAll(async () => {
  db = await createTestDatabase('scv');
  await db.query(`
    CREATE SCHEMA other; CREATE TABLE other.victims (id int PRIMARY KEY, x int); INSERT INTO other.victims VALUES (1, 0), (2, 0), (3, 0);
    CREATE SCHEMA elsewhere; CREATE TABLE elsewhere.log (id serial PRIMARY KEY, what text);
    CREATE FUNCTION elsewhere.log_it() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO elsewhere.log (what) VALUES ('x'); RETURN NEW; END $$;
    CREATE TABLE other.watched (id int); CREATE TRIGGER watched_log AFTER INSERT ON other.watched FOR EACH ROW EXECUTE FUNCTION elsewhere.log_it();
    CREATE FUNCTION public.run(sql text) RETURNS int LANGUAGE plpgsql AS $$ BEGIN EXECUTE sql; RETURN 0; END $$;`);
});

/** Under --schema, a file that calls public.run(<sql>): user code, so "every table" (checked below). */
async function viaCode(sql: string): Promise<{ report: MigrateReport; schema: string }> {
  const schema = `tenant_${++n}`;
  const c = await db.client();
  try {
    const file = { name: '001_code.sql', sql: `CREATE TABLE mine (id int);\nINSERT INTO mine VALUES (1);\nSELECT public.run($q$${sql}$q$);` };
    const report = await new Migrator(c, { schema }).migrate(await buildMigrationSet([file]));
    return { report, schema };
  } finally {
    await c.end();
  }
}

const rows = async (table: string) => (await db.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number;

function expectCaught(report: MigrateReport, table: RegExp) {
  expect(report.failed?.error, JSON.stringify(report.failed)).toBeInstanceOf(ValidationFailedError);
  expect(report.failed!.error.message).toMatch(table);
}

describe('every table under --schema: write counters outside the tenant schema', () => {
  it('a file calling user code is scoped to every table (the route under test)', async () => {
    const set = await buildMigrationSet([{ name: '001_x.sql', sql: `SELECT public.run('SELECT 1');` }]);
    const c = await db.client();
    try {
      expect(await rowCountScope(c, set.migrations[0]!.effects)).toBeUndefined();
    } finally {
      await c.end();
    }
  });

  it('INSERT, DELETE, COPY and a trigger elsewhere, run by the file’s code, fail it and roll back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scv-'));
    const csv = join(dir, 'rows.csv');
    writeFileSync(csv, '7,0\n8,0\n');
    chmodSync(dir, 0o755);
    chmodSync(csv, 0o644);
    const cases: [string, RegExp][] = [
      ['INSERT INTO other.victims VALUES (4, 0)', /other\.victims: row count changed from 3 to 4/],
      ['DELETE FROM other.victims WHERE id = 1', /other\.victims: row count changed from 3 to 2/],
      [`COPY other.victims FROM '${csv}' WITH (FORMAT csv)`, /other\.victims: row count changed from 3 to 5/],
      ['INSERT INTO other.watched VALUES (1)', /elsewhere\.log: row count changed from 0 to 1/],
      // structure elsewhere is still compared (without waiting for locks: raw catalog rows)
      ['ALTER TABLE other.victims DROP CONSTRAINT victims_pkey', /other\.victims: constraint victims_pkey removed/],
      ['ALTER TABLE other.victims DROP COLUMN x', /other\.victims: column x removed/],
    ];
    for (const [sql, issue] of cases) {
      const { report, schema } = await viaCode(sql);
      expectCaught(report, issue);
      expect(await rows('other.victims')).toBe(3);
      expect(await rows('elsewhere.log')).toBe(0);
      expect((await db.query(`SELECT name FROM ${schema}.migrations`)).rowCount).toBe(0);
    }
  });

  it('TRUNCATE elsewhere, which the counters do not see, fails by its ACCESS EXCLUSIVE lock', async () => {
    // the reason for the lock check: in PostgreSQL a TRUNCATE resets this transaction's counters
    const c = await db.client();
    try {
      await c.query('BEGIN');
      await c.query('TRUNCATE other.victims');
      const r = await c.query(
        `SELECT pg_stat_get_xact_tuples_deleted('other.victims'::regclass)::int AS d, pg_stat_get_xact_tuples_inserted('other.victims'::regclass)::int AS i`,
      );
      expect(r.rows[0]).toEqual({ d: 0, i: 0 });
      await c.query('ROLLBACK');
    } finally {
      await c.end();
    }
    const { report } = await viaCode('TRUNCATE other.victims');
    expectCaught(report, /other\.victims: locked ACCESS EXCLUSIVE/);
    expect(await rows('other.victims')).toBe(3);
  });

  it('an insert undone by a subtransaction is still reported (the counters count attempts: conservative)', async () => {
    const { report } = await viaCode(
      `DO $d$ BEGIN BEGIN INSERT INTO other.victims VALUES (9, 0); RAISE EXCEPTION 'undo'; EXCEPTION WHEN raise_exception THEN NULL; END; END $d$`,
    );
    expectCaught(report, /other\.victims: row count changed from 2 to 3 \(by the rows this file inserted and deleted, attempts rolled back/);
  });

  it('harmless twins pass: an UPDATE elsewhere, a delete and insert that cancel out, rows changed in the tenant’s own schema counted', async () => {
    for (const sql of [
      'UPDATE other.victims SET x = x + 1',
      'WITH d AS (DELETE FROM other.victims WHERE id = 3 RETURNING id) INSERT INTO other.victims SELECT id, 0 FROM d',
      'SELECT count(*) FROM other.victims',
    ]) {
      const { report, schema } = await viaCode(sql);
      expect(report.failed, `${sql}: ${JSON.stringify(report.failed)}`).toBeUndefined();
      expect(report.applied.map((a) => a.name)).toEqual(['001_code.sql']);
      expect(await rows(`${schema}.mine`)).toBe(1);
    }
    expect(await rows('other.victims')).toBe(3);
    // the tenant's own tables are counted exactly: a row deleted there by the code is caught
    const schema = `tenant_${++n}`;
    const c = await db.client();
    try {
      const first = { name: '001_mine.sql', sql: 'CREATE TABLE mine (id int);\nINSERT INTO mine VALUES (1), (2);' };
      const second = { name: '002_code.sql', sql: `SELECT public.run('DELETE FROM ${schema}.mine WHERE id = 1');` };
      const report = await new Migrator(c, { schema }).migrate(await buildMigrationSet([first, second]));
      expectCaught(report, new RegExp(`${schema}\\.mine: row count changed from 2 to 1`));
      expect(await rows(`${schema}.mine`)).toBe(2);
    } finally {
      await c.end();
    }
  });

  it('does not wait on a lock another tenant’s migration holds (counting every table did)', async () => {
    const holder = await db.client();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE other.victims IN ACCESS EXCLUSIVE MODE');
      const schema = `tenant_${++n}`;
      const c = await db.client();
      try {
        const file = { name: '001_code.sql', sql: `CREATE TABLE mine (id int);\nSELECT public.run('SELECT 1');` };
        const report = await new Migrator(c, { schema, lockTimeoutMs: 2000 }).migrate(await buildMigrationSet([file]));
        expect(report.failed, JSON.stringify(report.failed)).toBeUndefined();
      } finally {
        await c.end();
      }
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
  });
});

describe('type names: looked for in the path and the schemas that qualify them, not in every schema', () => {
  it('a domain with user code is found where the file qualifies it, and not where the name cannot resolve', async () => {
    await db.query(`CREATE SCHEMA typed;
      CREATE FUNCTION typed.positive(x int) RETURNS boolean LANGUAGE sql AS 'SELECT x > 0';
      CREATE DOMAIN typed.pos AS int CHECK (typed.positive(VALUE))`);
    const scope = async (sql: string, old = false) => {
      const set = await buildMigrationSet([{ name: '001_x.sql', sql }]);
      const fx = { ...set.migrations[0]!.effects };
      if (old) delete fx.typeSchemas;
      const c = await db.client();
      try {
        await c.query('SET search_path TO public');
        return await rowCountScope(c, fx);
      } finally {
        await c.end();
      }
    };
    expect(
      (await buildMigrationSet([{ name: '001_x.sql', sql: 'SELECT 1::typed.pos, CAST(2 AS s.other), 3::pg_catalog.int4;' }])).migrations[0]!.effects
        .typeSchemas,
    ).toEqual(['s', 'typed']);
    // qualified: its CHECK calls a user function, so the file can run user code: every table
    expect(await scope('SELECT 1::typed.pos;')).toBeUndefined();
    // unqualified, off the path: the name resolves to nothing there (the file itself would fail on it)
    expect(await scope('SELECT 1::pos;')).toEqual([]);
    // a set frozen before typeSchemas was recorded: the name is looked for in every schema, as before
    expect(await scope('SELECT 1::pos;', true)).toBeUndefined();
    // on the path (SET in the file): found
    expect(await scope('SET LOCAL search_path TO typed, public;\nSELECT 1::pos;')).toBeUndefined();
  });
});
