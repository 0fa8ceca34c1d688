/**
 * Issue 9, section 6: other tools' tables and the target's own rules, through
 * the CLI as a user runs it, against real Postgres. Every refusal must change
 * nothing, name the thing and say what to do, and never read "This is a bug".
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { MigrationFailedError } from '../../src/core/errors.js';
import { buildMigrationSet } from '../../src/core/migration-set.js';
import { Migrator } from '../../src/migrator.js';
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
  '001_create_t1.sql': 'CREATE TABLE t1 (id int PRIMARY KEY);',
  '002_add_t2.sql': 'CREATE TABLE t2 (id int);',
};

function dir(files: Record<string, string> = FILES): string {
  const d = migrationDir(files);
  dirs.push(d);
  return d.dir;
}

function cli(db: TestDatabase | string, args: string[], files?: Record<string, string>): Promise<CliResult> {
  const url = typeof db === 'string' ? db : db.url;
  return runCli(['--dir', dir(files), '--database-url', url, ...args]);
}

/** Not a defect: no "bug" wording, and an exit code of our table. */
function explained(r: CliResult): void {
  expect(r.stdout + r.stderr).not.toMatch(/This is a bug|unexpected error/);
}

/** Everything about a table a migration tool could have changed: columns, constraints, indexes, rows. */
async function tableState(db: TestDatabase, table = 'public.migrations'): Promise<unknown> {
  const cols = await db.query(
    `SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull, pg_get_expr(adbin, adrelid) AS def
       FROM pg_attribute LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum
      WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [table],
  );
  const cons = await db.query(`SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1::regclass ORDER BY conname`, [table]);
  const idx = await db.query(
    `SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def FROM pg_index WHERE indrelid = $1::regclass ORDER BY 1`,
    [table],
  );
  const rows = await db.query(`SELECT to_jsonb(t)::text AS row FROM ${table} t ORDER BY 1`);
  return { cols: cols.rows, cons: cons.rows, idx: idx.rows, rows: rows.rows.map((r) => r.row) };
}

async function relation(db: TestDatabase, name: string): Promise<string | null> {
  return (await db.query('SELECT to_regclass($1)::text AS r', [name])).rows[0].r;
}

const OTHER_TOOLS: Record<string, { ddl: string; rows: string }> = {
  TypeORM: {
    ddl: 'CREATE TABLE migrations (id SERIAL NOT NULL, "timestamp" bigint NOT NULL, name character varying NOT NULL, CONSTRAINT "PK_8c82d7f526340ab734260ea46be" PRIMARY KEY (id))',
    rows: `INSERT INTO migrations ("timestamp", name) VALUES (1612345678901, 'CreateUsers1612345678901'), (1612345678999, 'AddEmail1612345678999')`,
  },
  Laravel: {
    ddl: 'CREATE TABLE migrations (id serial PRIMARY KEY, migration varchar(255) NOT NULL, batch integer NOT NULL)',
    rows: `INSERT INTO migrations (migration, batch) VALUES ('2014_10_12_000000_create_users_table', 1), ('2019_08_19_000000_create_failed_jobs_table', 1)`,
  },
  Knex: {
    ddl: 'CREATE TABLE migrations (id serial PRIMARY KEY, name varchar(255), batch integer, migration_time timestamptz)',
    rows: `INSERT INTO migrations (name, batch, migration_time) VALUES ('20240101_init.js', 1, '2024-01-01T00:00:00Z')`,
  },
  'node-pg-migrate': {
    ddl: 'CREATE TABLE migrations (id SERIAL PRIMARY KEY, name varchar(255) NOT NULL, run_on timestamp NOT NULL)',
    rows: `INSERT INTO migrations (name, run_on) VALUES ('1700000000000_init', '2024-01-01 00:00:00')`,
  },
};

describe("O: another tool's `migrations` table", () => {
  for (const [tool, t] of Object.entries(OTHER_TOOLS)) {
    it(`${tool}'s table is refused with exit 2 and --tracking-table, and comes out byte for byte unchanged`, async () => {
      const db = await createTestDatabase('tt');
      await db.query(t.ddl);
      await db.query(t.rows);
      const before = await tableState(db);

      for (const args of [['pending'], ['status'], ['pending', '--dry-run'], ['run', '001_create_t1.sql']]) {
        const r = await cli(db, args);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toContain('--tracking-table');
        expect(r.stderr).toContain(`${tool}'s`);
        explained(r);
      }
      const json = await cli(db, ['pending', '--json']);
      expect(json.code).toBe(2);
      expect(JSON.parse(json.stdout).error).toMatchObject({ code: 'foreign_tracking_table', kind: 'input', table: 'public.migrations' });
      expect(await tableState(db)).toEqual(before);
      expect(await relation(db, 't1')).toBeNull();

      // its own table beside it: everything applies, the other tool's table is still untouched
      const ok = await cli(db, ['--tracking-table', 'flotilla_migrations', 'pending']);
      expect(ok.code, ok.stderr).toBe(0);
      expect((await db.query('SELECT name FROM flotilla_migrations ORDER BY name')).rows.map((r) => r.name)).toEqual(Object.keys(FILES));
      expect(await tableState(db)).toEqual(before);
    });
  }

  it("the guide's table and Flotilla's own are still recognised", async () => {
    const db = await createTestDatabase('tt');
    await db.query('CREATE TABLE migrations (id SERIAL PRIMARY KEY, name VARCHAR(255) UNIQUE NOT NULL, executed_at TIMESTAMP DEFAULT NOW())');
    await db.query(`INSERT INTO migrations (name) VALUES ('001_create_t1.sql')`);
    const r = await cli(db, ['pending']);
    expect(r.code, r.stderr).toBe(0);
    expect((await db.query('SELECT name, checksum IS NULL AS old FROM migrations ORDER BY name')).rows).toEqual([
      { name: '001_create_t1.sql', old: true },
      { name: '002_add_t2.sql', old: false },
    ]);
    expect(await relation(db, 't1')).toBeNull();
    expect((await cli(db, ['status'])).code).toBe(0);
  });

  it('the tracking-table DDL runs in one transaction: a refused CREATE TABLE leaves no schema behind', async () => {
    const db = await createTestDatabase('tt');
    await db.query(`CREATE FUNCTION no_tables() RETURNS event_trigger LANGUAGE plpgsql AS $$
      BEGIN IF tg_tag = 'CREATE TABLE' THEN RAISE EXCEPTION 'tables are created by the DBA only'; END IF; END $$`);
    await db.query('CREATE EVENT TRIGGER no_tables ON ddl_command_end EXECUTE FUNCTION no_tables()');
    const r = await cli(db, ['--schema', 'tenant_new', 'pending']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('tables are created by the DBA only');
    explained(r);
    expect((await db.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'tenant_new'`)).rows[0].n).toBe(0);
  });
});

describe('O: schema names that differ only by case', () => {
  it('--schema Acme when acme exists: refused with exit 2, no twin schema, nothing applied', async () => {
    const db = await createTestDatabase('tt');
    await db.query('CREATE SCHEMA Acme'); // folded: acme
    for (const args of [['pending'], ['status'], ['pending', '--dry-run']]) {
      const r = await cli(db, ['--schema', 'Acme', ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(2);
      expect(r.stderr).toContain('--schema acme');
      expect(r.stdout).not.toContain('Completed');
      explained(r);
    }
    expect((await db.query(`SELECT nspname FROM pg_namespace WHERE lower(nspname) = 'acme'`)).rows).toEqual([{ nspname: 'acme' }]);
    expect(await relation(db, 'acme.t1')).toBeNull();
    // the exact name works
    expect((await cli(db, ['--schema', 'acme', 'pending'])).code).toBe(0);
    expect(await relation(db, 'acme.t1')).toBe('acme.t1');
  });

  it('two runners racing with "Acme" and "acme" on a fresh database: one schema, the other refused', async () => {
    const db = await createTestDatabase('tt');
    const set = await buildMigrationSet([{ name: '001_create_t1.sql', sql: FILES['001_create_t1.sql'] }]);
    for (let round = 0; round < 5; round++) {
      const [a, b] = [`Race${round}`, `race${round}`];
      const clients = await Promise.all([db.client(), db.client()]);
      try {
        const results = await Promise.allSettled(clients.map((c, i) => new Migrator(c, { appliedBy: 'test', schema: i ? b : a }).migrate(set)));
        const ok = results.filter((r) => r.status === 'fulfilled');
        const refused = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
        expect(ok).toHaveLength(1);
        expect(refused.map((r) => r.reason?.code)).toEqual(['schema_case']);
        expect((await db.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE lower(nspname) = $1`, [b])).rows[0].n).toBe(1);
      } finally {
        await Promise.all(clients.map((c) => c.end().catch(() => {})));
      }
    }
  });

  it('creating a new tenant schema is reported (human and --json), once', async () => {
    const db = await createTestDatabase('tt');
    const r = await cli(db, ['--schema', 'brand_new', 'pending']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Created schema brand_new');
    const again = await cli(db, ['--schema', 'brand_new', 'pending']);
    expect(again.stdout).not.toContain('Created schema');
    const j = await cli(db, ['--schema', 'other_new', 'pending', '--json']);
    expect(JSON.parse(j.stdout)).toMatchObject({ schema: 'other_new', createdSchema: true });
  });
});

async function role(db: TestDatabase, grants: string[] = []): Promise<string> {
  const name = `flotilla_r_${randomBytes(4).toString('hex')}`;
  roles.push(name);
  await adminQuery(`CREATE ROLE ${name} LOGIN`);
  for (const g of grants) await db.query(g.replaceAll('$ROLE', name));
  return name;
}

function urlAs(db: TestDatabase, user: string): string {
  const u = new URL(db.url);
  u.username = user;
  u.password = '';
  return u.toString();
}

describe("O: the target's privileges", () => {
  it('no CREATE on schema public: exit 2 with the GRANT to run; nothing created', async () => {
    const db = await createTestDatabase('tt');
    const r0 = await role(db);
    const r = await cli(urlAs(db, r0), ['pending']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`GRANT USAGE, CREATE ON SCHEMA public TO ${r0}`);
    explained(r);
    expect(await relation(db, 'public.migrations')).toBeNull();
    // status only reads: it works
    expect((await cli(urlAs(db, r0), ['status'])).code).toBe(0);
  });

  it('no CREATE on the database for a new tenant schema: exit 2 with GRANT CREATE ON DATABASE', async () => {
    const db = await createTestDatabase('tt');
    const r0 = await role(db);
    const r = await cli(urlAs(db, r0), ['--schema', 'tenant_x', 'pending', '--json']);
    expect(r.code, r.stdout).toBe(2);
    const error = JSON.parse(r.stdout).error;
    expect(error).toMatchObject({ code: 'target_refused', kind: 'input', reason: 'privilege' });
    expect(error.hint).toContain(`GRANT CREATE ON DATABASE ${db.name} TO ${r0}`);
    expect((await db.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'tenant_x'`)).rows[0].n).toBe(0);
  });

  it('a migration touching a table the role does not own: exit 2, rolled back, the owner named', async () => {
    const db = await createTestDatabase('tt');
    await db.query('CREATE TABLE accounts (id int)');
    const r0 = await role(db, ['GRANT CREATE ON SCHEMA public TO $ROLE']);
    const files = {
      '001_create_t1.sql': 'CREATE TABLE t1 (id int);',
      '002_alter.sql': 'CREATE TABLE t2 (id int);\nALTER TABLE accounts ADD COLUMN note text;',
    };
    const r = await cli(urlAs(db, r0), ['pending'], files);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stdout).toContain('must be owner of table accounts');
    expect(r.stdout).toContain('rolled back');
    expect(r.stdout).toMatch(/run as that owner/);
    explained(r);
    expect((await db.query('SELECT name FROM migrations')).rows.map((x) => x.name)).toEqual(['001_create_t1.sql']);
    expect(await relation(db, 't2')).toBeNull();
  });
});

describe('O: a read-only target', () => {
  it('default_transaction_read_only = on: exit 2 saying read-only, with the ALTER DATABASE to run; nothing created', async () => {
    const db = await createTestDatabase('tt');
    await db.query(`ALTER DATABASE ${db.name} SET default_transaction_read_only = on`);
    const r = await cli(db, ['pending']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('read-only');
    expect(r.stderr).toContain(`ALTER DATABASE ${db.name} SET default_transaction_read_only = off`);
    expect(r.stderr).not.toContain('standby');
    explained(r);
    expect(await relation(db, 'public.migrations')).toBeNull();
    const s = await cli(db, ['status']);
    expect(s.code).toBe(0);
    expect(s.stdout).toContain('Total: 0 applied, 2 pending');
  });

  it('a file that makes its own transaction read-only: exit 1 (the SQL, not the database), rolled back', async () => {
    const db = await createTestDatabase('tt');
    const files = { '001_ro.sql': 'CREATE TABLE t1 (id int);\nSET LOCAL transaction_read_only = on;\nCREATE TABLE t2 (id int);' };
    const r = await cli(db, ['pending'], files);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toContain('the SQL made its transaction read-only');
    explained(r);
    expect(await relation(db, 't1')).toBeNull();
  });
});

describe('O: a migration that terminates its own session', () => {
  it('pg_terminate_backend(pg_backend_pid()) in a file: exit 1, explained, rolled back, not retryable', async () => {
    const db = await createTestDatabase('tt');
    const files = { '001_kill.sql': 'CREATE TABLE t1 (id int);\nSELECT pg_terminate_backend(pg_backend_pid());\nCREATE TABLE t2 (id int);' };
    const r = await cli(db, ['pending'], files);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toContain('pg_backend_pid()');
    explained(r);
    expect(await relation(db, 't1')).toBeNull();
    expect((await db.query('SELECT count(*)::int AS n FROM migrations')).rows[0].n).toBe(0);

    // the engine as a worker runs it: a final failure (kind migration), never a retry
    const client = await db.client();
    try {
      const report = await new Migrator(client, { appliedBy: 'test' }).migrate(await buildMigrationSet([{ name: '001_kill.sql', sql: files['001_kill.sql'] }]));
      expect(report.failed?.error).toBeInstanceOf(MigrationFailedError);
      expect(report.failed?.error.kind).toBe('migration');
    } finally {
      await client.end().catch(() => {});
    }
  });

  it('a session terminated by someone else mid-migration: exit 3 (retry can help), rolled back', async () => {
    const db = await createTestDatabase('tt');
    const files = { '001_slow.sql': 'CREATE TABLE t1 (id int);\nSELECT pg_sleep(20) /* flotilla-slow */;' };
    const killer = (async () => {
      for (let i = 0; i < 200; i++) {
        const k = await adminQuery(
          `SELECT pg_terminate_backend(pid) AS k FROM pg_stat_activity WHERE datname = $1 AND query LIKE '%flotilla-slow%' AND pid <> pg_backend_pid()`,
          [db.name],
        );
        if (k.rowCount) return;
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    const r = await cli(db, ['pending'], files);
    await killer;
    expect(r.code, r.stdout + r.stderr).toBe(3);
    explained(r);
    expect(await relation(db, 't1')).toBeNull();
  });
});

describe('O: COPY ... FROM STDIN', () => {
  const cases: Record<string, string> = {
    'psql dump data': 'CREATE TABLE t (id int, name text);\nCOPY t (id, name) FROM stdin;\n1\talpha\n2\tbeta\n\\.\n',
    'no data': 'CREATE TABLE t (id int);\nCOPY t FROM STDIN;\n',
    'csv options': 'CREATE TABLE t (id int);\nCOPY t FROM STDIN WITH (FORMAT csv, HEADER true);\n',
  };
  for (const [label, sql] of Object.entries(cases)) {
    it(`refused when the directory is loaded, before anything runs (${label})`, async () => {
      const db = await createTestDatabase('tt');
      const files = { '001_create_t1.sql': 'CREATE TABLE t1 (id int);', '002_copy.sql': sql };
      for (const args of [['list'], ['pending']]) {
        const r = await cli(db, args, files);
        expect(r.code, r.stdout + r.stderr).toBe(2);
        expect(r.stderr).toContain('002_copy.sql:2: COPY FROM STDIN is not allowed');
        expect(r.stderr).toContain('INSERT');
        explained(r);
      }
      expect(await relation(db, 't1')).toBeNull();
      expect(await relation(db, 'public.migrations')).toBeNull();
    });
  }

  it('COPY from a server file or TO STDOUT is not refused at load time', async () => {
    const r = await runCli(['--dir', dir({ '001_copy.sql': "CREATE TABLE t (id int);\nCOPY t FROM '/nonexistent/file.csv';\nCOPY t TO STDOUT;" }), 'list']);
    expect(r.code, r.stderr).toBe(0);
  });
});
