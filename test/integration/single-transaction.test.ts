/**
 * --single-transaction: consecutive transactional files in one transaction,
 * each still validated on its own; all of them or none.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { readMigrationFiles } from '../../src/adapters/fs-source.js';
import { MigrationFailedError, ValidationFailedError } from '../../src/core/errors.js';
import { buildMigrationSet, type MigrationFile } from '../../src/core/migration-set.js';
import { Migrator, type EngineEvent } from '../../src/migrator.js';
import { createTestDatabase, dropAllTestDatabases, type TestDatabase } from '../helpers/db.js';
import { GUIDE_MIGRATIONS } from '../helpers/migrations.js';

afterAll(dropAllTestDatabases);

const REPO_MIGRATIONS = fileURLToPath(new URL('../../migrations/', import.meta.url));

async function migrate(db: TestDatabase, files: MigrationFile[], events: EngineEvent[] = []) {
  const c = await db.client();
  try {
    return await new Migrator(c, { singleTransaction: true }, (e) => events.push(e)).migrate(await buildMigrationSet(files));
  } finally {
    await c.end();
  }
}

const tracked = async (db: TestDatabase) => (await db.query(`SELECT name FROM migrations ORDER BY name`).catch(() => ({ rows: [] }))).rows.map((r) => r.name);

describe('single transaction', () => {
  it("applies the guide's migrations, one tracking row and one done event per file, and says where the time went", async () => {
    const db = await createTestDatabase('single');
    const events: EngineEvent[] = [];
    const report = await migrate(db, await readMigrationFiles(REPO_MIGRATIONS), events);
    expect(report.failed).toBeUndefined();
    expect(report.applied.map((a) => a.name)).toEqual(GUIDE_MIGRATIONS);
    expect(await tracked(db)).toEqual(GUIDE_MIGRATIONS);
    expect(events.filter((e) => e.type === 'migration-done')).toHaveLength(GUIDE_MIGRATIONS.length);
    expect(report.timings.apply).toBeGreaterThan(0);
    expect(report.timings.validation).toBeGreaterThan(0);
    expect(report.timings.ledger).toBeGreaterThan(0);
  });

  it('a failing file rolls back the files before it in the group: all or nothing', async () => {
    const db = await createTestDatabase('single');
    const report = await migrate(db, [
      { name: '001_a.sql', sql: 'CREATE TABLE a (id int);' },
      { name: '002_b.sql', sql: 'CREATE TABLE b (id int);\nINSERT INTO nope VALUES (1);' },
      { name: '003_c.sql', sql: 'CREATE TABLE c (id int);' },
    ]);
    expect(report.applied).toEqual([]);
    expect(report.failed?.name).toBe('002_b.sql');
    expect(report.failed?.error).toBeInstanceOf(MigrationFailedError);
    expect(report.failed?.error.message).toMatch(/002_b\.sql/);
    expect(report.failed?.error.message).toMatch(/nope/);
    expect(
      (await db.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('a', 'b', 'c', 'migrations')`)).rows[0].n,
    ).toBe(1);
    expect(await tracked(db)).toEqual([]);
  });

  it('validates each file on its own: a later file deleting rows an earlier file inserted is caught and names that file', async () => {
    const db = await createTestDatabase('single');
    const report = await migrate(db, [
      { name: '001_seed.sql', sql: 'CREATE TABLE t (id int);\nINSERT INTO t SELECT generate_series(1, 10);' },
      { name: '002_index.sql', sql: 'CREATE INDEX t_id ON t (id);' },
      { name: '003_trim.sql', sql: 'DELETE FROM t WHERE id > 5;' },
    ]);
    expect(report.failed?.name).toBe('003_trim.sql');
    expect(report.failed?.error).toBeInstanceOf(ValidationFailedError);
    expect(report.failed?.error.message).toMatch(/t: row count changed from 10 to 5/);
    expect(await tracked(db)).toEqual([]);
  });

  it('a non-transactional file runs alone between groups; a failure after it keeps what committed before', async () => {
    const db = await createTestDatabase('single');
    const report = await migrate(db, [
      { name: '001_t.sql', sql: 'CREATE TABLE t (id int);' },
      { name: '002_u.sql', sql: 'CREATE TABLE u (id int);' },
      { name: '003_idx.sql', sql: 'CREATE INDEX CONCURRENTLY t_id ON t (id);' },
      { name: '004_v.sql', sql: 'CREATE TABLE v (id int);' },
      { name: '005_bad.sql', sql: 'SELECT 1/0;' },
    ]);
    expect(report.applied.map((a) => a.name)).toEqual(['001_t.sql', '002_u.sql', '003_idx.sql']);
    expect(report.failed?.name).toBe('005_bad.sql');
    expect(await tracked(db)).toEqual(['001_t.sql', '002_u.sql', '003_idx.sql']);
    expect((await db.query(`SELECT to_regclass('v') AS v`)).rows[0].v).toBeNull();
  });
});
