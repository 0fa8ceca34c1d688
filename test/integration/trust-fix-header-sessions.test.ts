/**
 * Writes through another session (issue 9 §4, promise 8): dblink commits at
 * once and postgres_fdw commits with our transaction, both out of sight of the
 * validator's REPEATABLE READ snapshots. A file that can run user code while
 * such a route is installed is refused before it runs, unless its header allows
 * it explicitly; files that run no user code are not affected.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ValidationFailedError } from '../../src/core/errors.js';
import { buildMigrationSet, type MigrationFile } from '../../src/core/migration-set.js';
import { Migrator, type MigrateReport } from '../../src/migrator.js';
import { createTestDatabase, dropAllTestDatabases, type TestDatabase } from '../helpers/db.js';

afterAll(dropAllTestDatabases);

async function migrate(db: TestDatabase, files: MigrationFile[]): Promise<MigrateReport> {
  const c = await db.client();
  try {
    return await new Migrator(c).migrate(await buildMigrationSet(files));
  } finally {
    await c.end();
  }
}

const count = async (db: TestDatabase, table: string) => (await db.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number;
const conninfo = (db: TestDatabase) => `dbname=${db.name} host=127.0.0.1 port=5432 user=postgres`;

function expectRefused(r: MigrateReport, route: RegExp) {
  expect(r.failed?.error, JSON.stringify(r.failed)).toBeInstanceOf(ValidationFailedError);
  expect(r.failed!.error.message).toMatch(/writes through another session/);
  expect(r.failed!.error.message).toMatch(route);
  expect((r.failed!.error as ValidationFailedError).hint).toContain('allowOtherSessions=true');
}

describe('writes through another session', () => {
  it('dblink_exec deleting rows (directly, or inside a function): refused, rows kept; allowed by the header', async () => {
    const db = await createTestDatabase('tfh');
    await db.query(`CREATE EXTENSION dblink; CREATE TABLE victim (id int); INSERT INTO victim SELECT generate_series(1, 5);
      CREATE FUNCTION tidy() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN PERFORM dblink_exec('${conninfo(db)}', 'DELETE FROM victim'); END $f$;`);
    const direct = `SELECT dblink_exec('${conninfo(db)}', 'DELETE FROM victim');`;
    expectRefused(await migrate(db, [{ name: '001_dblink.sql', sql: direct }]), /extension dblink/);
    expectRefused(await migrate(db, [{ name: '001_hidden.sql', sql: 'SELECT tidy();' }]), /extension dblink/);
    expect(await count(db, 'victim')).toBe(5);
    // no user code: not affected
    expect((await migrate(db, [{ name: '001_index.sql', sql: 'CREATE INDEX victim_id ON victim (id);' }])).failed).toBeUndefined();
    // explicit: allowed, and the write is not undone (it was another session's)
    const r = await migrate(db, [{ name: '002_dblink.sql', sql: `-- flotilla:validate allowOtherSessions=true\n${direct}` }]);
    expect(r.failed).toBeUndefined();
    expect(await count(db, 'victim')).toBe(0);
  });

  it('a file that creates dblink and uses it: refused, rows kept', async () => {
    const db = await createTestDatabase('tfh');
    await db.query(`CREATE TABLE victim (id int); INSERT INTO victim SELECT generate_series(1, 5);`);
    const r = await migrate(db, [{ name: '001_dblink.sql', sql: `CREATE EXTENSION dblink;\nSELECT dblink_exec('${conninfo(db)}', 'DELETE FROM victim');` }]);
    expectRefused(r, /extension dblink \(created by the file\)/);
    expect(await count(db, 'victim')).toBe(5);
  });

  it('DELETE through a postgres_fdw foreign table over the same database: refused, rows kept', async () => {
    const db = await createTestDatabase('tfh');
    await db.query(`CREATE EXTENSION postgres_fdw; CREATE TABLE victim (id int); INSERT INTO victim SELECT generate_series(1, 5);
      CREATE SERVER loop FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '5432', dbname '${db.name}');
      CREATE USER MAPPING FOR CURRENT_USER SERVER loop OPTIONS (user 'postgres');
      CREATE FOREIGN TABLE remote_victim (id int) SERVER loop OPTIONS (table_name 'victim');`);
    expectRefused(await migrate(db, [{ name: '001_fdw.sql', sql: 'DELETE FROM remote_victim;' }]), /foreign data wrapper postgres_fdw/);
    expect(await count(db, 'victim')).toBe(5);
  });
});
