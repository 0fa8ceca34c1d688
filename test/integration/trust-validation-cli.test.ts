/**
 * Validation routes as a user meets them (issue 9 §4): the built CLI exits 1
 * and rolls the file back when rows disappear through a changed search_path
 * under --schema or a deferred trigger. Run `npm run build` first.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, dropAllTestDatabases } from '../helpers/db.js';
import { migrationDir } from '../helpers/migrations.js';

const dirs: { cleanup(): void }[] = [];
afterAll(async () => {
  for (const d of dirs) d.cleanup();
  await dropAllTestDatabases();
});

function dir(files: Record<string, string>): string {
  const d = migrationDir(files);
  dirs.push(d);
  return d.dir;
}
const show = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

describe('validation routes through the CLI', { timeout: 120_000 }, () => {
  it('exit 1 and nothing kept: --schema with a file that moves to public, and a deferred trigger deleting at COMMIT', async () => {
    const db = await createTestDatabase('tvcli');
    await db.query(`
      CREATE TABLE victims (id int PRIMARY KEY); INSERT INTO victims VALUES (1), (2), (3);
      CREATE SCHEMA tenant; CREATE TABLE tenant.t (id int PRIMARY KEY, x int); INSERT INTO tenant.t VALUES (1, 0);
      CREATE FUNCTION purge_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM public.victims; RETURN NULL; END $$;
      CREATE CONSTRAINT TRIGGER purge_later AFTER UPDATE ON tenant.t DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION purge_at_commit();`);
    const [path, deferred] = await Promise.all([
      runCli(['pending', '--schema', 'tenant', '--dir', dir({ '001_path.sql': 'SET search_path TO public;\nDELETE FROM victims;\n' })], {
        env: { DATABASE_URL: db.url },
      }),
      runCli(['pending', '--schema', 'tenant', '--tracking-table', 'other_ledger', '--dir', dir({ '001_touch.sql': 'UPDATE t SET x = 1;\n' })], {
        env: { DATABASE_URL: db.url },
      }),
    ]);
    for (const r of [path, deferred]) {
      expect(r.code, show(r)).toBe(1);
      expect(r.stdout, show(r)).toMatch(/victims: row count changed from 3 to 0/);
    }
    expect((await db.query('SELECT count(*)::int AS n FROM victims')).rows[0].n).toBe(3);
    expect((await db.query('SELECT x FROM tenant.t')).rows[0].x).toBe(0);
  });
});
