/**
 * Found while integrating this stop's branches: each test failed on the merged
 * code before its fix.
 *  - A file's batch that fails on a lock timeout is not run again statement by
 *    statement (that waited on the tenant's traffic a second time: two lock
 *    timeouts, twice the blocking, for one file).
 *    Its time still counts as the file's apply time (the metrics' phases).
 *  - `flotilla down --to` reverts every file it names (the batched engine left
 *    each down file's COMMIT waiting and the last one was rolled back).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loadMigrationDir } from '../../src/adapters/fs-source.js';
import { Migrator } from '../../src/migrator.js';
import { validationScope } from '../../src/adapters/pg/row-scope.js';
import { buildMigrationSet } from '../../src/core/migration-set.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, dropAllTestDatabases } from '../helpers/db.js';
import { migrationDir } from '../helpers/migrations.js';

const dirs: { cleanup(): void }[] = [];
afterAll(async () => {
  await dropAllTestDatabases();
  for (const d of dirs) d.cleanup();
});

describe('integration fixes', { timeout: 90_000, concurrent: true }, () => {
  it('a lock timeout in a two-statement file waits once: one lock timeout, nothing run again', async () => {
    const db = await createTestDatabase('fix');
    await db.query('CREATE TABLE orders (id int); CREATE TABLE items (id int)');
    const dir = migrationDir({ '001_two.sql': 'ALTER TABLE items ADD COLUMN a text;\nALTER TABLE orders ADD COLUMN note text;\n' });
    dirs.push(dir);
    const blocker = await db.client();
    await blocker.query('BEGIN');
    await blocker.query('SELECT count(*) FROM orders');
    const c = await db.client();
    try {
      const report = await new Migrator(c, { lockTimeoutMs: 300 }).migrate(await loadMigrationDir(dir.dir));
      expect(report.failed?.error.message).toMatch(/lock timeout/i);
      expect(report.lockTimeouts).toBe(1);
      // the failed batch's time is the file's apply time (it waited lock_timeout, 300 ms), as the metrics report it
      expect(report.timings.apply).toBeGreaterThanOrEqual(250);
      // the ALTER on items was rolled back with the file
      expect((await db.query(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'a'`)).rows[0].n).toBe(0);
    } finally {
      await blocker.query('COMMIT');
      await blocker.end();
      await c.end();
    }
  });

  it('the row-scope query turns JIT off and back in its own round trip (was three)', async () => {
    const db = await createTestDatabase('fix');
    await db.query('CREATE TABLE t (id int)');
    const set = await buildMigrationSet([{ name: '001_x.sql', sql: 'UPDATE t SET id = 1 WHERE id = 2;' }]);
    const c = await db.client();
    try {
      await c.query("SET jit = 'on'");
      const sent: unknown[] = [];
      const query = c.query.bind(c);
      const counting = { query: (...a: unknown[]) => (sent.push(a[0]), (query as (...x: unknown[]) => unknown)(...a)) } as unknown as typeof c;
      const scope = await validationScope(counting, set.migrations[0]!.effects);
      expect(scope.count).toEqual(['public.t']);
      expect(sent).toHaveLength(1);
      expect((await c.query('SHOW jit')).rows[0].jit).toBe('on');
    } finally {
      await c.end();
    }
  });

  it('down --to 0 reverts every applied file, newest first, and each is committed', async () => {
    const db = await createTestDatabase('fix');
    const dir = migrationDir({
      '001_users.sql': 'CREATE TABLE users (id int);\n',
      '001_users.down.sql': '-- flotilla:validate allowTableDrop=true\nDROP TABLE users;\n',
      '002_note.sql': 'ALTER TABLE users ADD COLUMN note text;\n',
      '002_note.down.sql': '-- flotilla:validate allowColumnDrop=true\nALTER TABLE users DROP COLUMN note;\n',
    });
    dirs.push(dir);
    expect((await runCli(['pending', '--dir', dir.dir, '--database-url', db.url])).code).toBe(0);
    const r = await runCli(['down', '--to', '0', '--dir', dir.dir, '--database-url', db.url, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).reverted.map((x: { name: string }) => x.name)).toEqual(['002_note.down.sql', '001_users.down.sql']);
    expect((await db.query('SELECT count(*)::int AS n FROM migrations')).rows[0].n).toBe(0);
    expect((await db.query(`SELECT to_regclass('users') IS NULL AS gone`)).rows[0].gone).toBe(true);
  });
});
