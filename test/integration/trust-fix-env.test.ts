/**
 * An environment variable that is set but empty (`FLOTILLA_SCHEMA=$UNSET`)
 * never silently means "the default" (promise 10): exit 2, naming it, nothing
 * changed. A flag given for the same setting still wins.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, dropAllTestDatabases } from '../helpers/db.js';
import { migrationDir } from '../helpers/migrations.js';

afterAll(dropAllTestDatabases);

const tables = async (db: { query: (sql: string) => Promise<{ rows: { n: number }[] }> }) =>
  (await db.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`)).rows[0]!.n;

describe('empty environment variables', () => {
  const m = migrationDir({ '001_a.sql': 'CREATE TABLE a (id int);' });
  afterAll(() => m.cleanup());

  it('FLOTILLA_SCHEMA= (empty): refused, not `public`', async () => {
    const db = await createTestDatabase('env');
    const r = await runCli(['pending', '--dir', m.dir], { env: { DATABASE_URL: db.url, FLOTILLA_SCHEMA: '' } });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('FLOTILLA_SCHEMA is set but empty');
    expect(await tables(db)).toBe(0);
    // a flag for the same setting decides instead: fine
    const ok = await runCli(['pending', '--dir', m.dir, '--schema', 'tenant_a'], { env: { DATABASE_URL: db.url, FLOTILLA_SCHEMA: '' } });
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('DATABASE_URL= (empty) with a URL in the config file: refused, the config file is not used', async () => {
    const db = await createTestDatabase('env');
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const cwd = mkdtempSync(join(tmpdir(), 'flotilla-env-'));
    writeFileSync(join(cwd, 'flotilla.config.json'), JSON.stringify({ databaseUrl: db.url, dir: m.dir }));
    const r = await runCli(['pending'], { cwd, env: { DATABASE_URL: '' } });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('DATABASE_URL is set but empty');
    expect(await tables(db)).toBe(0);
  });

  it('CONTROL_DATABASE_URL= and FLOTILLA_QUEUE_PREFIX= (empty): refused before anything is created', async () => {
    const db = await createTestDatabase('env');
    for (const env of [{ CONTROL_DATABASE_URL: '' }, { FLOTILLA_QUEUE_PREFIX: '' }, { REDIS_URL: ' ' }]) {
      const r = await runCli(['rollouts'], { env: { DATABASE_URL: db.url, ...env } });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`${Object.keys(env)[0]} is set but empty`);
    }
    expect((await db.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'flotilla'`)).rows[0]!.n).toBe(0);
  });
});
