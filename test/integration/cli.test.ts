/**
 * The built CLI (dist/cli/main.js) as a user runs it: exit codes, the guide's
 * output lines, --json, and several CLIs at once. Run `npx tsc -p tsconfig.json` first.
 * Independent invocations are started together to keep the file fast.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO, runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, dropAllTestDatabases, urlFor } from '../helpers/db.js';
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

const REPO_FILES: Record<string, string> = Object.fromEntries(
  readdirSync(join(REPO, 'migrations'))
    .filter((f) => f.endsWith('.sql'))
    .map((f) => [f, readFileSync(join(REPO, 'migrations', f), 'utf8')]),
);
const GUIDE_NAMES = Object.keys(REPO_FILES).sort();

/** Output lines, for exact comparisons. */
const lines = (s: string) => s.split('\n');
const show = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

describe('exit code 1: a migration or its validation failed', { timeout: 180_000 }, () => {
  it("a failing statement: the guide's lines, rolled back; --json gives the same facts", async () => {
    const db = await createTestDatabase('cli');
    const d = dir({
      '001_ok.sql': 'CREATE TABLE ok (id int);\n',
      '002_breaks.sql': '-- Migration: breaks\nBEGIN;\nCREATE TABLE partial (id int);\nINSERT INTO no_such_table VALUES (1);\nCOMMIT;\n',
    });
    const r = await runCli(['pending', '--dir', d], { env: { DATABASE_URL: db.url } });
    expect(r.code, show(r)).toBe(1);
    const out = lines(r.stdout.trimEnd());
    expect(out.slice(0, 6)).toEqual([
      'Found 2 pending migrations',
      '',
      '→ Running migration: 001_ok.sql',
      '✓ Migration completed: 001_ok.sql',
      '',
      '→ Running migration: 002_breaks.sql',
    ]);
    expect(out[6]).toBe('✗ Migration failed: 002_breaks.sql');
    expect(out).toContain('  statement 2 (line 4): INSERT INTO no_such_table VALUES (1)');
    expect(out).toContain('  ERROR 42P01: relation "no_such_table" does not exist');
    expect(out.at(-1)).toBe('✗ Completed: 1 applied, 1 failed');
    expect((await db.query(`SELECT to_regclass('partial') AS t`)).rows[0].t).toBeNull();
    expect((await db.query('SELECT name FROM migrations')).rows).toEqual([{ name: '001_ok.sql' }]);

    const j = await runCli(['pending', '--json', '--dir', d], { env: { DATABASE_URL: db.url } });
    expect(j.code, show(j)).toBe(1);
    const report = JSON.parse(j.stdout);
    expect(report.applied).toEqual([]);
    expect(report.failed).toMatchObject({
      name: '002_breaks.sql',
      error: {
        code: 'migration_failed',
        kind: 'migration',
        migration: '002_breaks.sql',
        statement: { number: 2, index: 1, line: 4 },
        pg: { code: '42P01', message: 'relation "no_such_table" does not exist' },
        transactional: true,
      },
    });
    expect(report.warnings).toEqual([]);
  });

  it("a validation failure: the guide's lines, and nothing changed", async () => {
    const db = await createTestDatabase('cli');
    await db.query(`CREATE TABLE users (id SERIAL PRIMARY KEY, email text NOT NULL); INSERT INTO users (email) SELECT 'u' || g FROM generate_series(1, 100) g`);
    const d = dir({ '001_trim_users.sql': 'BEGIN;\nDELETE FROM users WHERE id <= 5;\nCOMMIT;\n' });
    const r = await runCli(['pending', '--dir', d], { env: { DATABASE_URL: db.url } });
    expect(r.code, show(r)).toBe(1);
    const out = lines(r.stdout);
    const at = out.indexOf('✗ Migration validation failed:');
    expect(at, show(r)).toBeGreaterThan(0);
    expect(out[at - 1]).toBe('→ Running migration: 001_trim_users.sql');
    expect(out[at + 1]).toBe('  - Table users: row count changed from 100 to 95');
    expect(r.stdout.trimEnd().endsWith('✗ Completed: 0 applied, 1 failed')).toBe(true);
    expect((await db.query('SELECT count(*)::int AS n FROM users')).rows[0].n).toBe(100);
    expect((await db.query('SELECT count(*)::int AS n FROM migrations')).rows[0].n).toBe(0);
  });
});

describe('exit code 2: bad input, nothing changed', { timeout: 180_000 }, () => {
  it('malformed and duplicate file names, an edited applied file, an unknown name, bad settings and options', async () => {
    const db = await createTestDatabase('cli');
    await db.query(`CREATE TABLE migrations (name text PRIMARY KEY, checksum text, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms integer, applied_by text);
      INSERT INTO migrations (name, checksum) VALUES ('001_a.sql', repeat('0', 64))`);
    const env = { DATABASE_URL: db.url };
    const ok = dir({ '001_a.sql': 'CREATE TABLE a (id int);', '002_b.sql': 'CREATE TABLE b (id int);' });
    const [malformed, duplicate, edited, unknown, badTimeout, noDb, badOption] = await Promise.all([
      runCli(['pending', '--dir', dir({ '1-create.sql': 'SELECT 1;', 'abc.sql': 'SELECT 1;', '002_fine.sql': 'SELECT 1;', 'README.md': '#' })], { env }),
      runCli(['pending', '--dir', dir({ '001_a.sql': 'SELECT 1;', '1_b.sql': 'SELECT 2;' })], { env }),
      runCli(['pending', '--dir', ok], { env }),
      runCli(['run', '999_nope.sql', '--dir', ok], { env }),
      runCli(['--lock-timeout', 'abc', 'pending', '--dir', ok], { env }),
      runCli(['status', '--dir', ok]),
      runCli(['--bogus', 'status'], { env }),
    ]);
    for (const r of [malformed, duplicate, edited, unknown, badTimeout, noDb, badOption]) expect(r.code, show(r)).toBe(2);

    expect(malformed.stderr).toContain('1-create.sql');
    expect(malformed.stderr).toContain('abc.sql');
    expect(malformed.stderr).not.toContain('002_fine.sql');
    expect(malformed.stderr).toMatch(/^✗ migration file names not of the form NNN_description\.sql/);
    expect(duplicate.stderr).toContain('migration number 1 is used by more than one file: 001_a.sql, 1_b.sql');
    expect(edited.stderr).toContain('✗ applied migration changed since applied: 001_a.sql');
    expect(edited.stdout).not.toContain('Running migration');
    expect(unknown.stderr).toContain('no migration named 999_nope.sql');
    expect(badTimeout.stderr).toContain('--lock-timeout: "abc" is not a duration');
    expect(noDb.stderr).toContain('no database: pass --database-url <url> or set DATABASE_URL');
    expect(badOption.stderr).toContain("unknown option '--bogus'");
    // nothing was applied by any of them
    expect((await db.query(`SELECT to_regclass('b') AS b, (SELECT count(*)::int FROM migrations) AS n`)).rows[0]).toEqual({ b: null, n: 1 });
  });
});

describe('connection failures', { timeout: 180_000 }, () => {
  it('unreachable: exit 3 naming host and port, never the password; a wrong database name: exit 2', async () => {
    const [refused, wrongDb] = await Promise.all([
      runCli(['--database-url', 'postgres://app:s3cretPW@127.0.0.1:1/x', 'status']),
      runCli(['status'], { env: { DATABASE_URL: urlFor('flotilla_no_such_database') } }),
    ]);
    expect(refused.code, show(refused)).toBe(3);
    expect(refused.stderr).toContain('127.0.0.1:1');
    expect(refused.stderr).toContain('connection refused');
    expect(refused.stdout + refused.stderr).not.toContain('s3cretPW');

    expect(wrongDb.code, show(wrongDb)).toBe(2);
    expect(wrongDb.stderr).toContain('database "flotilla_no_such_database" does not exist');
  });
});

describe('--json and --schema', { timeout: 180_000 }, () => {
  it('list, run, pending and status as JSON, all in schema tenant_x', async () => {
    const db = await createTestDatabase('cli');
    const d = dir({ ...REPO_FILES, '009_extra.sql': 'CREATE TABLE extra (id int);\n' });
    const env = { DATABASE_URL: db.url };
    const all = [...GUIDE_NAMES, '009_extra.sql'];

    const list = await runCli(['list', '--json', '--dir', d]);
    expect(list.code, show(list)).toBe(0);
    const l = JSON.parse(list.stdout);
    expect(l.dir).toBe(d);
    expect(l.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(l.migrations.map((m: { name: string }) => m.name)).toEqual(all);
    expect(l.migrations[0]).toEqual({
      name: '001_create_users_table.sql',
      version: '1',
      checksum: expect.stringMatching(/^[0-9a-f]{64}$/),
      transactional: true,
      statements: 2,
    });

    const run = await runCli(['--schema', 'tenant_x', '--json', 'run', '009_extra.sql', '--dir', d], { env });
    expect(run.code, show(run)).toBe(0);
    const r = JSON.parse(run.stdout);
    expect(r.schema).toBe('tenant_x');
    expect(r.applied).toEqual([{ name: '009_extra.sql', durationMs: expect.any(Number) }]);
    expect(r.failed).toBeUndefined();
    expect(r.warnings).toEqual([]);

    const pending = await runCli(['pending', '--json', '--schema', 'tenant_x', '--dir', d], { env });
    expect(pending.code, show(pending)).toBe(0);
    const p = JSON.parse(pending.stdout);
    expect(p.applied.map((a: { name: string }) => a.name)).toEqual(GUIDE_NAMES);
    expect(p.applied.every((a: { durationMs: unknown }) => typeof a.durationMs === 'number')).toBe(true);
    expect(p.failed).toBeUndefined();
    // 001-008 are numbered below the applied 009
    expect(p.warnings).toHaveLength(8);
    expect(p.warnings[0]).toBe('001_create_users_table.sql is pending but numbered below an applied migration (applied out of order)');

    const status = await runCli(['status', '--json', '--schema', 'tenant_x', '--dir', d], { env });
    expect(status.code, show(status)).toBe(0);
    const s = JSON.parse(status.stdout);
    expect(s.schema).toBe('tenant_x');
    expect(s.pending).toEqual([]);
    expect(s.changed).toEqual([]);
    expect(s.missing).toEqual([]);
    expect(s.applied.map((a: { name: string }) => a.name)).toEqual(all);
    for (const a of s.applied) {
      expect(Object.keys(a).sort()).toEqual(['appliedAt', 'appliedBy', 'checksum', 'durationMs', 'name']);
      expect(a.checksum).toMatch(/^[0-9a-f]{64}$/);
      expect(new Date(a.appliedAt).getTime()).not.toBeNaN();
      expect(typeof a.durationMs).toBe('number');
      expect(a.appliedBy).toMatch(/^cli /);
    }

    const where = await db.query(
      `SELECT table_schema, count(*)::int AS n FROM information_schema.tables WHERE table_name IN ('migrations', 'users', 'extra') GROUP BY 1`,
    );
    expect(where.rows).toEqual([{ table_schema: 'tenant_x', n: 3 }]);
    expect((await db.query('SELECT count(*)::int AS n FROM tenant_x.migrations')).rows[0].n).toBe(9);
  });
});

describe('several runners at once', () => {
  it('5 `pending` processes on one fresh database: all succeed, each migration applied exactly once', { timeout: 180_000 }, async () => {
    const db = await createTestDatabase('cli');
    const d = dir({ ...REPO_FILES, '009_count_runs.sql': 'CREATE TABLE run_marker (id int);\nINSERT INTO run_marker VALUES (1);\n' });
    // Exit 3 means "could not reach the database, try again": on a starved 2-core machine five Node
    // processes starting at once can exceed the CLI's 10 s connect timeout. Do what a deploy script
    // does and retry those (and only those); anything else must succeed the first time.
    const runner = async (): Promise<CliResult> => {
      for (let attempt = 1; ; attempt++) {
        const r = await runCli(['pending', '--dir', d], { env: { DATABASE_URL: db.url }, timeoutMs: 150_000 });
        if (r.code !== 3 || !r.stderr.includes('cannot connect to PostgreSQL') || attempt === 3) return r;
      }
    };
    const results = await Promise.all(Array.from({ length: 5 }, runner));
    for (const r of results) {
      expect(r.code, show(r)).toBe(0);
      expect(r.stderr, show(r)).toBe('');
    }
    const appliedCounts = results.map((r) => Number(/✓ Completed: (\d+) applied, 0 failed/.exec(r.stdout)?.[1]));
    const all = results.map(show).join('\n=====\n');
    expect(
      appliedCounts.reduce((a, b) => a + b, 0),
      all,
    ).toBe(9);
    expect(
      appliedCounts.filter((n) => n > 0),
      all,
    ).toEqual([9]);

    const rows = await db.query('SELECT name FROM migrations ORDER BY name');
    expect(rows.rows.map((x) => x.name)).toEqual([...GUIDE_NAMES, '009_count_runs.sql']);
    expect((await db.query('SELECT count(*)::int AS n FROM run_marker')).rows[0].n).toBe(1);
    const tables = await db.query(
      `SELECT table_name, count(*)::int AS n FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') GROUP BY 1 ORDER BY 1`,
    );
    expect(tables.rows).toEqual(
      ['audit_log', 'contracts', 'invoices', 'migrations', 'products', 'roles', 'run_marker', 'user_roles', 'users'].map((t) => ({ table_name: t, n: 1 })),
    );
  });
});
