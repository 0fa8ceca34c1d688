/**
 * Issue 9 follow-up (outside trial): where the tracking table is, and which
 * tables may be it. Without --schema the ledger must not follow the session's
 * search_path around (a `$user` schema created later, ALTER DATABASE/ROLE SET
 * search_path), must not be another tool's table, a view or a partitioned
 * table, and must not get a case twin. Promises 1, 4, 9, 11. Through the CLI.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { adminQuery, createTestDatabase, dropAllTestDatabases, type TestDatabase } from '../helpers/db.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { migrationDir } from '../helpers/migrations.js';

const dirs: { cleanup(): void }[] = [];
const roles: string[] = [];
afterAll(async () => {
  for (const d of dirs) d.cleanup();
  await dropAllTestDatabases();
  for (const r of roles) await adminQuery(`DROP ROLE IF EXISTS ${r}`).catch(() => {});
});

const FILES = {
  '001_create_t1.sql': 'CREATE TABLE public.t1 (id int PRIMARY KEY);',
  '002_add_t2.sql': 'CREATE TABLE public.t2 (id int);',
};

function cli(url: string, args: string[], files: Record<string, string> = FILES): Promise<CliResult> {
  const d = migrationDir(files);
  dirs.push(d);
  return runCli(['--dir', d.dir, '--database-url', url, ...args]);
}

function explained(r: CliResult): void {
  expect(r.stdout + r.stderr).not.toMatch(/This is a bug|unexpected error/);
}

/** Every relation named like a tracking table, schema-qualified. */
async function ledgers(db: TestDatabase): Promise<string[]> {
  const r = await db.query(`SELECT n.nspname || '.' || c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE lower(c.relname) = 'migrations' ORDER BY 1`);
  return r.rows.map((x) => x.t);
}

/** A role of its own (superuser, so grants do not get in the way), dropped after the file. */
async function role(): Promise<string> {
  const name = `fl_ledger_${randomBytes(4).toString('hex')}`;
  await adminQuery(`CREATE ROLE ${name} LOGIN SUPERUSER`);
  roles.push(name);
  return name;
}

function as(db: TestDatabase, user: string): string {
  const u = new URL(db.url);
  u.username = user;
  return u.toString();
}

describe('O: the tracking table does not follow the search_path', () => {
  it('a schema named after the role ($user), created after the first run: same ledger, nothing applied again', async () => {
    const db = await createTestDatabase('fl');
    const user = await role();
    const url = as(db, user);
    expect((await cli(url, ['pending'])).code).toBe(0);
    await db.query(`CREATE SCHEMA ${user} AUTHORIZATION ${user}`);
    const status = await cli(url, ['status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ schema: 'public', pending: [] });
    const again = await cli(url, ['pending']);
    expect(again.code, again.stderr).toBe(0);
    expect(await ledgers(db)).toEqual(['public.migrations']);
    expect((await db.query('SELECT count(*)::int AS n FROM public.migrations')).rows[0].n).toBe(2);
  });

  it('ALTER DATABASE / ALTER ROLE ... SET search_path after the first run: same ledger', async () => {
    const db = await createTestDatabase('fl');
    expect((await cli(db.url, ['pending'])).code).toBe(0);
    await db.query('CREATE SCHEMA app; CREATE SCHEMA other');
    await db.query(`ALTER DATABASE "${db.name}" SET search_path = app, public`);
    const more = { ...FILES, '003_t3.sql': 'CREATE TABLE t3 (id int);' };
    const r = await cli(db.url, ['pending'], more);
    expect(r.code, r.stderr).toBe(0);
    expect((await db.query('SELECT name FROM public.migrations ORDER BY name')).rows.map((x) => x.name)).toEqual(Object.keys(more));
    expect(await ledgers(db)).toEqual(['public.migrations']);
    // t3 went where the session's path says (app), the ledger stayed put
    expect((await db.query(`SELECT schemaname FROM pg_tables WHERE tablename = 't3'`)).rows).toEqual([{ schemaname: 'app' }]);

    // a path that no longer reaches the ledger: refused, naming it (never a second ledger, never used silently)
    const user = await role();
    await adminQuery(`ALTER ROLE ${user} IN DATABASE "${db.name}" SET search_path = other`);
    for (const args of [['status'], ['pending']]) {
      const r = await cli(as(db, user), args, more);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('schema public holds a tracking table migrations');
      expect(r.stderr).toContain('--schema public');
      explained(r);
    }
    expect(await ledgers(db)).toEqual(['public.migrations']);
    const s = await cli(as(db, user), ['--schema', 'public', 'status', '--json'], more);
    expect(s.code, s.stderr).toBe(0);
    expect(JSON.parse(s.stdout)).toMatchObject({ schema: 'public', pending: [] });
  });

  it("a tenant schema's ledger, the only one, is not taken for a run without --schema", async () => {
    const db = await createTestDatabase('fl');
    const tenant = { '001_t.sql': 'CREATE TABLE t (id int);' };
    expect((await cli(db.url, ['--schema', 'tenant_a', 'pending'], tenant)).code).toBe(0);
    const r = await cli(db.url, ['pending'], tenant);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('tenant_a');
    expect(await ledgers(db)).toEqual(['tenant_a.migrations']);
    expect((await db.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'`)).rows[0].n).toBe(0);
  });

  it('two runners with different search_paths on a fresh database: one ledger, each file applied once', async () => {
    const db = await createTestDatabase('fl');
    await db.query('CREATE SCHEMA a; CREATE SCHEMA b');
    const slow = { '001_once.sql': 'SELECT pg_sleep(0.5); CREATE TABLE public.once (id int);', '002_t2.sql': 'CREATE TABLE public.t2 (id int);' };
    const [ua, ub] = [await role(), await role()];
    await adminQuery(`ALTER ROLE ${ua} IN DATABASE "${db.name}" SET search_path = a`);
    await adminQuery(`ALTER ROLE ${ub} IN DATABASE "${db.name}" SET search_path = b`);
    const results = await Promise.all([cli(as(db, ua), ['pending'], slow), cli(as(db, ub), ['pending'], slow)]);
    for (const r of results) {
      explained(r);
      // 3: the other runner created the ledger first in its own schema while this one was starting;
      // 2: it had already, off this runner's path (refused, --schema asked for)
      expect([0, 2, 3], r.stderr).toContain(r.code);
    }
    expect(results.filter((r) => r.code === 0)).toHaveLength(1);
    // the loser's path does not reach the winner's ledger: its retry is refused, asking for --schema (never a second ledger)
    for (const [i, r] of results.entries()) {
      if (r.code !== 3) continue;
      const again = await cli(as(db, i === 0 ? ua : ub), ['pending'], slow);
      expect(again.code, again.stderr).toBe(2);
      expect(again.stderr).toContain('--schema');
    }
    const found = await ledgers(db);
    expect(found.length).toBe(1);
    expect((await db.query(`SELECT count(*)::int AS n FROM ${found[0]}`)).rows[0].n).toBe(2);
  });

  it('several schemas hold one and the current schema none: refused (exit 2), naming them; --schema picks one', async () => {
    const db = await createTestDatabase('fl');
    const tenant = { '001_t.sql': 'CREATE TABLE t (id int);' };
    for (const s of ['tenant_a', 'tenant_b']) expect((await cli(db.url, ['--schema', s, 'pending'], tenant)).code).toBe(0);
    for (const args of [['status'], ['pending']]) {
      const r = await cli(db.url, args, tenant);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('tenant_a');
      expect(r.stderr).toContain('tenant_b');
      expect(r.stderr).toContain('--schema');
      explained(r);
    }
    expect(await ledgers(db)).toEqual(['tenant_a.migrations', 'tenant_b.migrations']);
    expect((await cli(db.url, ['--schema', 'tenant_a', 'status'], tenant)).code).toBe(0);
  });
});

/** Columns, constraints and rows of a relation: what a runner could have changed. */
async function state(db: TestDatabase, rel = 'public.migrations'): Promise<unknown> {
  const cols = await db.query(
    `SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [rel],
  );
  const cons = await db.query(`SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1::regclass ORDER BY 1`, [rel]);
  const rows = await db.query(`SELECT to_jsonb(t)::text AS row FROM ${rel} t ORDER BY 1`);
  return { cols: cols.rows, cons: cons.rows, rows: rows.rows.map((r) => r.row) };
}

const NOT_OURS: Record<string, string[]> = {
  "umzug's (name varchar primary key)": ['CREATE TABLE migrations (name varchar(255) PRIMARY KEY)', `INSERT INTO migrations VALUES ('20240101-init.js')`],
  'name int': ['CREATE TABLE migrations (id serial, name int, executed_at timestamp DEFAULT now())', 'INSERT INTO migrations (name) VALUES (1)'],
  'a view over another table': [
    'CREATE TABLE real_m (id serial PRIMARY KEY, name varchar(255) UNIQUE NOT NULL, executed_at timestamp DEFAULT now())',
    'CREATE VIEW migrations AS SELECT * FROM real_m',
  ],
  "a partitioned table with the guide's columns": [
    'CREATE TABLE migrations (id serial, name varchar(255) NOT NULL, executed_at timestamp DEFAULT now()) PARTITION BY HASH (name)',
    'CREATE TABLE migrations_p0 PARTITION OF migrations FOR VALUES WITH (MODULUS 1, REMAINDER 0)',
  ],
  "the guide's columns, but id NOT NULL without a default": ['CREATE TABLE migrations (id int NOT NULL, name varchar(255), executed_at timestamp)', ''],
};

describe("O: only an ordinary table of Flotilla's or the guide's shape is a tracking table", () => {
  for (const [what, [ddl, more]] of Object.entries(NOT_OURS)) {
    it(`${what}: refused with exit 2 and --tracking-table, untouched`, async () => {
      const db = await createTestDatabase('fl');
      await db.query(ddl!);
      if (more) await db.query(more);
      const before = await state(db);
      for (const args of [['pending'], ['status'], ['pending', '--dry-run']]) {
        const r = await cli(db.url, args);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toContain('--tracking-table');
        explained(r);
      }
      expect(await state(db)).toEqual(before);
      expect((await db.query(`SELECT to_regclass('public.t1')::text AS t`)).rows[0].t).toBeNull();
    });
  }
});

describe('O: tracking-table case twins', () => {
  it('--tracking-table Migrations beside migrations, and a plain run beside "Migrations": refused, nothing created', async () => {
    const db = await createTestDatabase('fl');
    expect((await cli(db.url, ['pending'])).code).toBe(0);
    for (const args of [
      ['--tracking-table', 'Migrations', 'pending'],
      ['--tracking-table', 'Migrations', 'status'],
      ['--tracking-table', 'MIGRATIONS', 'pending', '--dry-run'],
    ]) {
      const r = await cli(db.url, args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain('--tracking-table migrations');
      explained(r);
    }
    expect(await ledgers(db)).toEqual(['public.migrations']);

    const other = await createTestDatabase('fl');
    expect((await cli(other.url, ['--tracking-table', 'Migrations', 'pending'])).code).toBe(0);
    const r = await cli(other.url, ['status']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('--tracking-table Migrations');
    expect((await cli(other.url, ['pending'])).code).toBe(2);
    expect(await ledgers(other)).toEqual(['public.Migrations']);
  });
});

describe('O: a version recorded twice in the ledger', () => {
  it('status counts one applied migration per file, no false rename; pending applies nothing', async () => {
    const db = await createTestDatabase('fl');
    expect((await cli(db.url, ['pending'])).code).toBe(0);
    await db.query(`INSERT INTO migrations (name, checksum) SELECT '1_create_t1.sql', checksum FROM migrations WHERE name = '001_create_t1.sql'`);
    const s = await cli(db.url, ['status', '--json']);
    expect(s.code, s.stderr).toBe(0);
    const report = JSON.parse(s.stdout);
    expect(report.applied.map((r: { name: string }) => r.name)).toEqual(['001_create_t1.sql', '002_add_t2.sql']);
    expect(report.renamed).toEqual([]);
    expect(report.duplicates).toEqual([{ version: '1', kept: '001_create_t1.sql', extra: ['1_create_t1.sql'] }]);
    expect((await cli(db.url, ['status'])).stdout).toContain('Total: 2 applied, 0 pending');
    const again = await cli(db.url, ['pending']);
    expect(again.code, again.stderr).toBe(0);
    expect((await db.query('SELECT count(*)::int AS n FROM migrations')).rows[0].n).toBe(3);
  });
});
