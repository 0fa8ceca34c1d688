/**
 * A reader that closes the pipe (`flotilla pending | head -1`) changes neither
 * what the command does nor its exit code (promises 9 and 11): before, the
 * first write after the reader left exited 0, halfway through the run.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startCli } from '../helpers/cli.js';
import { createTestDatabase, dropAllTestDatabases } from '../helpers/db.js';
import { migrationDir } from '../helpers/migrations.js';

afterAll(dropAllTestDatabases);

/** like `| head -1`: read the first chunk of stdout, then close the pipe */
async function pendingThroughHead(dir: string, url: string) {
  const c = startCli(['pending', '--dir', dir, '--database-url', url]);
  c.child.stdout!.once('data', () => c.child.stdout!.destroy());
  return c.done;
}

describe('pending | head -1', () => {
  it('applies every file and exits 0', async () => {
    const db = await createTestDatabase('pipe');
    const m = migrationDir({ '001_a.sql': 'SELECT pg_sleep(0.5); CREATE TABLE e1 (a int);', '002_b.sql': 'CREATE TABLE e2 (a int);' });
    try {
      const r = await pendingThroughHead(m.dir, db.url);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/EPIPE|at .*\.js:\d+/);
      const rows = await db.query<{ name: string }>('SELECT name FROM migrations ORDER BY name');
      expect(rows.rows.map((x) => x.name)).toEqual(['001_a.sql', '002_b.sql']);
    } finally {
      m.cleanup();
    }
  });

  it('a failing file still exits 1', async () => {
    const db = await createTestDatabase('pipe');
    const m = migrationDir({ '001_a.sql': 'SELECT pg_sleep(0.5); CREATE TABLE e1 (a int);', '002_b.sql': 'SELECT 1/0;' });
    try {
      const r = await pendingThroughHead(m.dir, db.url);
      expect(r.code, r.stderr).toBe(1);
    } finally {
      m.cleanup();
    }
  });
});
