/**
 * The hidden-header repro of issue 9 §4 through the built CLI: a header inside
 * a string literal is refused at load time, exit 2, file and line named, and
 * nothing runs; dblink through the CLI is refused with exit 1 and says how to
 * allow it.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, dropAllTestDatabases } from '../helpers/db.js';

const tmp = mkdtempSync(join(tmpdir(), 'flotilla-fix-header-'));
afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await dropAllTestDatabases();
});

function dir(name: string, files: Record<string, string>): string {
  const d = join(tmp, name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d);
  for (const [f, sql] of Object.entries(files)) writeFileSync(join(d, f), sql);
  return d;
}

describe('the CLI', () => {
  it('a header inside a string literal: exit 2 naming file and line, the DELETE never ran', async () => {
    const db = await createTestDatabase('tfhc');
    await db.query(`CREATE TABLE victim (id int); INSERT INTO victim SELECT generate_series(1, 5);`);
    const d = dir('hidden', { '001_hidden.sql': `COMMENT ON TABLE victim IS '\n-- flotilla:validate allowRowChanges=true\n';\nDELETE FROM victim;\n` });
    const r = await runCli(['pending', '--dir', d, '--database-url', db.url]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stdout + r.stderr).toMatch(
      /001_hidden\.sql:2: a "-- flotilla:" header is read only in the comment lines at the top of the file, before the first statement/,
    );
    expect((await db.query(`SELECT count(*)::int AS n FROM victim`)).rows[0].n).toBe(5);
  });

  it('dblink_exec: exit 1, the output says how to allow it, rows kept', async () => {
    const db = await createTestDatabase('tfhc');
    await db.query(`CREATE EXTENSION dblink; CREATE TABLE victim (id int); INSERT INTO victim SELECT generate_series(1, 5);`);
    const d = dir('dblink', { '001_dblink.sql': `SELECT dblink_exec('dbname=${db.name} host=127.0.0.1 user=postgres', 'DELETE FROM victim');\n` });
    const r = await runCli(['pending', '--dir', d, '--database-url', db.url]);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/writes through another session \(extension dblink[^)]* installed\).*allowOtherSessions=true/);
    expect((await db.query(`SELECT count(*)::int AS n FROM victim`)).rows[0].n).toBe(5);
  });
});
