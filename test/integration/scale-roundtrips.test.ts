/**
 * Issue 11, item 3: fewer round trips per tenant, every guarantee kept. A
 * transactional file goes out as one batch (engine/apply.ts runFile), a
 * worker's COMMIT travels with the next file (deferCommits) and the post-commit
 * checks with the last COMMIT (postChecks), a warm tracking table is read once
 * under the lock. Each cut is tried here against what it must keep: a failure
 * in a batch rolls the file back and records nothing, a carried COMMIT still
 * carries the lock check, the scope guard stops a file before its statements
 * run, a warm ledger is not re-created. Engine in-process, real PostgreSQL.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readMigrationFiles } from '../../src/adapters/fs-source.js';
import { inline } from '../../src/adapters/pg/batch.js';
import type { LockConnection, LockSessions } from '../../src/adapters/pg/lock.js';
import { postChecks } from '../../src/adapters/pg/post-checks.js';
import { LockLostError, MigrationFailedError, ValidationFailedError } from '../../src/core/errors.js';
import { buildMigrationSet } from '../../src/core/migration-set.js';
import { Migrator } from '../../src/migrator.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { counted, engineClients, fileSet, WORKER } from '../helpers/engine.js';

const client = engineClients();
const set = fileSet;

async function ledger(db: TestDatabase): Promise<string[]> {
  return (await db.query<{ name: string }>('SELECT name FROM public.migrations ORDER BY name')).rows.map((r) => r.name);
}

async function tables(db: TestDatabase): Promise<string[]> {
  const r = await db.query<{ t: string }>(
    `SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'migrations' ORDER BY 1`,
  );
  return r.rows.map((x) => x.t);
}

const TERMINATE = `SELECT pg_terminate_backend(pid, 5000) FROM pg_locks
  WHERE locktype = 'advisory' AND classid = 1179405140 AND pid <> pg_backend_pid()
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database());\n`;

describe('round trips', () => {
  it("the guide's 8 files on a fresh database, as a worker runs them: one round trip per file, the checks with the last COMMIT", async () => {
    const db = await createTestDatabase('rt');
    const c = await client(db);
    const sent = counted(c);
    const guide = await buildMigrationSet(await readMigrationFiles(fileURLToPath(new URL('../../migrations/', import.meta.url))));
    const r = await new Migrator(c).migrate(guide, WORKER);
    expect(r.failed).toBeUndefined();
    expect(r.applied).toHaveLength(8);
    // resolve with the read of public.migrations (none yet: it fails), resolve alone, pooler pid, tracking table:
    // check + locks + DDL and COMMIT, read; 8 files; last COMMIT + checks
    expect(sent.length).toBeLessThanOrEqual(16);
    // each file's guard, in its batch: index probes while no user code is within reach (scale-code-free-guard.test.ts)
    expect(sent.filter((q) => q.includes('flotilla_code_free')).length).toBe(8);
    // the checks taken right after the last COMMIT are the checks
    const { ms, ...checks } = r.postChecks!;
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(checks).toEqual(await postChecks(c, 'public', 'migrations'));
    expect(checks.invalidIndexes).toEqual([]);
    expect((await ledger(db)).length).toBe(8);
    const durations = await db.query<{ d: number }>('SELECT duration_ms AS d FROM public.migrations');
    expect(durations.rows.every((x) => Number.isInteger(x.d) && x.d >= 0)).toBe(true);
  });

  it('a warm tracking table is read once under the lock: no CREATE, no ensure query, nothing but the read', async () => {
    const db = await createTestDatabase('rt');
    const c = await client(db);
    const files = { '001_a.sql': 'CREATE TABLE a (id int);', '002_b.sql': 'CREATE TABLE b (id int);' };
    await new Migrator(c).migrate(await set(files));
    const sent = counted(c);
    const r = await new Migrator(c).migrate(await set({ ...files, '003_c.sql': 'CREATE TABLE c (id int);' }), WORKER);
    expect(r.applied.map((a) => a.name)).toEqual(['003_c.sql']);
    expect(sent.some((q) => /CREATE TABLE IF NOT EXISTS "public"."migrations"|CREATE SCHEMA/.test(q))).toBe(false);
    expect(sent.some((q) => q.includes('SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS schema'))).toBe(false);
    // resolve + read (one message); pooler pid; read under the lock; the file; its COMMIT + checks
    expect(sent.length).toBe(5);
    expect(sent.filter((q) => q.includes('ORDER BY name')).length).toBe(2);
  });

  it('an up-to-date database: one query, where the tracking table is and what it holds', async () => {
    const db = await createTestDatabase('rt');
    const c = await client(db);
    const files = await set({ '001_a.sql': 'CREATE TABLE a (id int);' });
    await new Migrator(c).migrate(files);
    const sent = counted(c);
    const r = await new Migrator(c).migrate(files, WORKER);
    expect(r.applied).toEqual([]);
    expect(sent).toHaveLength(1);
    expect((await new Migrator(c).status(files)).applied.map((a) => a.name)).toEqual(['001_a.sql']);
    expect(sent).toHaveLength(2);
  });

  it('the tracking table found elsewhere than public: its rows are used, never the public table read alongside', async () => {
    const db = await createTestDatabase('rt');
    await db.query(`CREATE SCHEMA app; ALTER DATABASE "${db.name}" SET search_path = app, public`);
    const c = await client(db);
    const files = { '001_a.sql': 'CREATE TABLE a (id int);', '002_b.sql': 'CREATE TABLE b (id int);' };
    await new Migrator(c).migrate(await set(files));
    expect((await db.query(`SELECT count(*)::int AS n FROM app.migrations`)).rows[0].n).toBe(2);
    // another tool's table named migrations in public (TypeORM's), read alongside: never used for app's
    // (one of ours there would make the path ambiguous: trust-search-path.test.ts)
    await db.query(`CREATE TABLE public.migrations (id serial PRIMARY KEY, "timestamp" bigint NOT NULL, name varchar NOT NULL);
      INSERT INTO public.migrations ("timestamp", name) VALUES (1, '001_a.sql')`);
    const sent = counted(c);
    const r = await new Migrator(c).migrate(await set(files), WORKER);
    expect(r.failed).toBeUndefined();
    expect(r.applied).toEqual([]);
    expect(r.schema).toBe('app');
    // one message that also read public's table, then app's read
    expect(sent).toHaveLength(2);
    const status = await new Migrator(c).status(await set(files));
    expect(status.applied.map((a) => a.name)).toEqual(['001_a.sql', '002_b.sql']);
    expect(status.pending).toEqual([]);
  });

  it('no tracking table yet, or one of another tool in public: the two steps, with their answers', async () => {
    const db = await createTestDatabase('rt');
    const c = await client(db);
    const files = await set({ '001_a.sql': 'CREATE TABLE a (id int);' });
    expect((await new Migrator(c).status(files)).pending).toEqual(['001_a.sql']);
    // TypeORM's table: id, timestamp, name (a `name` column, so the read itself works)
    await db.query(`CREATE TABLE public.migrations (id serial PRIMARY KEY, "timestamp" bigint NOT NULL, name varchar NOT NULL)`);
    await expect(new Migrator(c).migrate(files)).rejects.toMatchObject({ code: 'foreign_tracking_table', tool: 'TypeORM' });
    await expect(new Migrator(c).status(files)).rejects.toMatchObject({ code: 'foreign_tracking_table' });
    expect((await db.query(`SELECT to_regclass('public.a') AS t`)).rows[0].t).toBeNull();
  });
});

describe('a failure in a batch', () => {
  it('a failing statement: the file is rolled back, nothing recorded, the error names the statement; the file before it committed', async () => {
    const db = await createTestDatabase('rt');
    const r = await new Migrator(await client(db)).migrate(
      await set({
        '001_ok.sql': 'CREATE TABLE ok (id int);',
        '002_breaks.sql': 'CREATE TABLE partial (id int);\nINSERT INTO partial VALUES (1);\n\nINSERT INTO no_such_table SELECT * FROM partial;\n',
        '003_after.sql': 'CREATE TABLE after_failure (id int);',
      }),
      WORKER,
    );
    expect(r.applied.map((a) => a.name)).toEqual(['001_ok.sql']);
    const e = r.failed?.error as MigrationFailedError;
    expect(r.failed?.name).toBe('002_breaks.sql');
    expect(e).toBeInstanceOf(MigrationFailedError);
    expect(e.statement).toMatchObject({ index: 2, line: 4 });
    expect(e.pg.code).toBe('42P01');
    expect(r.postChecks).toBeUndefined();
    expect(await ledger(db)).toEqual(['001_ok.sql']);
    expect(await tables(db)).toEqual(['ok']);
  });

  it('the tracking row fails (a trigger on the tracking table): the file is rolled back and not recorded, the one before stays', async () => {
    const db = await createTestDatabase('rt');
    const c = await client(db);
    await new Migrator(c).migrate(await set({ '001_a.sql': 'CREATE TABLE a (id int);' }));
    await db.query(`CREATE FUNCTION public.no_b() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        IF NEW.name LIKE '003%' THEN RAISE EXCEPTION 'no 003 here'; END IF; RETURN NEW; END $$;
      CREATE TRIGGER no_b BEFORE INSERT ON public.migrations FOR EACH ROW EXECUTE FUNCTION public.no_b()`);
    const r = await new Migrator(c).migrate(
      await set({ '001_a.sql': 'CREATE TABLE a (id int);', '002_b.sql': 'CREATE TABLE b (id int);', '003_c.sql': 'CREATE TABLE c (id int);' }),
      WORKER,
    );
    expect(r.applied.map((a) => a.name)).toEqual(['002_b.sql']);
    expect(r.failed?.name).toBe('003_c.sql');
    expect((r.failed!.error as MigrationFailedError).pg.message).toBe('no 003 here');
    expect(await ledger(db)).toEqual(['001_a.sql', '002_b.sql']);
    expect(await tables(db)).toEqual(['a', 'b']);
  });

  it('a file the validator refuses (a column dropped) is rolled back in its batch; the file before it committed', async () => {
    const db = await createTestDatabase('rt');
    const r = await new Migrator(await client(db)).migrate(
      await set({ '001_t.sql': 'CREATE TABLE t (id int, name text);', '002_drop.sql': 'ALTER TABLE t DROP COLUMN name;' }),
      WORKER,
    );
    expect(r.applied.map((a) => a.name)).toEqual(['001_t.sql']);
    expect(r.failed?.error).toBeInstanceOf(ValidationFailedError);
    expect(await ledger(db)).toEqual(['001_t.sql']);
    const cols = await db.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 't' ORDER BY 1`);
    expect(cols.rows.map((x) => x.column_name)).toEqual(['id', 'name']);
  });
});

describe('the COMMIT carried with the next file', () => {
  it('still carries the lock check: a file that ends the lock session is not committed, and the next file never runs', async () => {
    const db = await createTestDatabase('rt');
    const r = await new Migrator(await client(db)).migrate(
      await set({ '001_kill.sql': `${TERMINATE}CREATE TABLE a (id int);`, '002_b.sql': 'CREATE TABLE b (id int);' }),
      WORKER,
    );
    expect(r.applied).toEqual([]);
    expect(r.failed?.name).toBe('001_kill.sql');
    expect(r.failed?.error).toBeInstanceOf(LockLostError);
    expect(await tables(db)).toEqual([]);
    expect((await db.query(`SELECT to_regclass('public.migrations') IS NULL OR NOT EXISTS (SELECT 1 FROM public.migrations) AS empty`)).rows[0].empty).toBe(
      true,
    );
  });

  it('the check runs on the server, in the batch: a lock session whose client cannot report its end is still caught', async () => {
    const db = await createTestDatabase('rt');
    // plain query objects: the engine cannot see the lock connection end, only the server can tell
    const lockSessions: LockSessions = {
      target: 'test',
      async open() {
        const c = await client(db);
        return { processID: (c as unknown as { processID: number }).processID, query: (t: string, v?: unknown[]) => c.query(t, v) } as LockConnection;
      },
      release: async () => {},
    };
    const c = await client(db);
    const sent = counted(c);
    const r = await new Migrator(c, {}, undefined, { lockSessions }).migrate(
      await set({ '001_a.sql': 'CREATE TABLE a (id int);', '002_kill.sql': `${TERMINATE}CREATE TABLE b (id int);`, '003_c.sql': 'CREATE TABLE c (id int);' }),
      WORKER,
    );
    expect(r.applied.map((a) => a.name)).toEqual(['001_a.sql']);
    expect(r.failed?.name).toBe('002_kill.sql');
    expect(r.failed?.error).toBeInstanceOf(LockLostError);
    expect(await ledger(db)).toEqual(['001_a.sql']);
    expect(await tables(db)).toEqual(['a']);
    // 001's COMMIT went out in front of 002's statements, 002's in front of 003's: the check failed there
    const batch = sent.find((q) => q.includes('-- flotilla: 003_c.sql'))!;
    expect(batch.indexOf('flotilla_lock_held')).toBeLessThan(batch.lastIndexOf('CREATE TABLE c'));
  });
});

describe('the scope guard', () => {
  it('a file that could run user code is stopped before its statements run, then validated the careful way (a sequence shows they ran once)', async () => {
    const db = await createTestDatabase('rt');
    await db.query(`CREATE SEQUENCE public.s; CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
      CREATE TABLE public.t (id int DEFAULT public.f())`);
    const c = await client(db);
    const sent = counted(c);
    const r = await new Migrator(c).migrate(await set({ '001_alter.sql': "SELECT nextval('public.s');\nALTER TABLE t ADD COLUMN y int;" }), WORKER);
    expect(r.failed).toBeUndefined();
    expect(r.applied.map((a) => a.name)).toEqual(['001_alter.sql']);
    // nextval is not transactional: had the statements run in the guessed batch, the sequence would be at 2
    expect((await db.query('SELECT last_value FROM public.s')).rows[0].last_value).toBe('1');
    // the careful path asked the scope in a round trip of its own, and counted every table
    expect(sent.filter((q) => q.includes('WITH RECURSIVE path')).length).toBe(2);
  });
});

describe('schema tenants', () => {
  it('a schema named with "; " and quotes: the batch reads the right results, a destructive file is still refused', async () => {
    const db = await createTestDatabase('rt');
    const schema = 't; x "y"';
    const c = await client(db);
    const files = { '001_t.sql': 'CREATE TABLE t (id int, name text);', '002_idx.sql': 'CREATE INDEX t_id ON t (id);' };
    const r = await new Migrator(c, { schema }).migrate(await set(files), WORKER);
    expect(r.failed).toBeUndefined();
    expect(r.applied.map((a) => a.name)).toEqual(['001_t.sql', '002_idx.sql']);
    expect(r.postChecks?.invalidIndexes).toEqual([]);
    const bad = await new Migrator(c, { schema }).migrate(await set({ ...files, '003_drop.sql': 'ALTER TABLE t DROP COLUMN name;' }), WORKER);
    expect(bad.failed?.error).toBeInstanceOf(ValidationFailedError);
    const rows = await db.query(`SELECT name FROM "t; x ""y"""."migrations" ORDER BY name`);
    expect(rows.rows.map((x) => x.name)).toEqual(['001_t.sql', '002_idx.sql']);
  });
});

describe('inline()', () => {
  it('writes parameters as literals that the server reads as it reads the parameters', async () => {
    const db = await createTestDatabase('rt');
    const c = await client(db);
    const values = [["it's", 'back\\slash', 'quo"te', 'comma,brace}{', 'NULL', '', 'ünï'], "O'Brien \\ E'x'", 42, true, null, ['a']];
    const text = 'SELECT $1::text[] AS a, $2::text AS b, $3::int AS c, $4::boolean AS d, $5::text AS e, $6::text[] AS f, $1::text[] = $1::text[] AS g';
    const direct = (await c.query(text, values)).rows[0];
    const inlined = (await c.query(inline({ text, values }))).rows[0];
    expect(inlined).toEqual(direct);
    await c.query('SET standard_conforming_strings = off');
    expect((await c.query(inline({ text, values }))).rows[0]).toEqual(direct);
  });
});
