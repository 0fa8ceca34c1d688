/**
 * Issue 11, item 3: a file's batch asks the scope query (row-scope.ts, 5 to 40 ms
 * of catalog work per file) only when the database holds user code. On a
 * database with none, index probes stand for it (codeFreeQuery). The probe must
 * be false for every kind of object the scope query could find, or validation
 * would miss a change (INVARIANTS 8): one case per route below, each made the
 * way a user would, on real PostgreSQL.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readMigrationFiles } from '../../src/adapters/fs-source.js';
import { codeFreeQuery } from '../../src/adapters/pg/row-scope.js';
import { ValidationFailedError } from '../../src/core/errors.js';
import { buildMigrationSet } from '../../src/core/migration-set.js';
import { Migrator } from '../../src/migrator.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { counted, engineClients, fileSet, WORKER } from '../helpers/engine.js';

const client = engineClients();
const set = fileSet;

async function codeFree(db: TestDatabase, functions: string[] = []): Promise<boolean> {
  return (await db.query<{ code_free: boolean }>(codeFreeQuery('"public"."migrations"', functions))).rows[0]!.code_free;
}

const F = 'CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$';
const TRACKING = 'CREATE TABLE public.migrations (name text PRIMARY KEY, checksum text, applied_at timestamp DEFAULT now(), duration_ms int, applied_by text)';

/** Each route by which code could run during a file, or rows change through the tracking table, made beforehand. */
const ROUTES: Record<string, string> = {
  'a function in a column default': `${F}; CREATE TABLE public.a (x int DEFAULT public.f())`,
  'a function in a generated column': `CREATE FUNCTION public.f(int) RETURNS int IMMUTABLE LANGUAGE sql AS $$ SELECT $1 $$; CREATE TABLE public.a (x int, y int GENERATED ALWAYS AS (public.f(x)) STORED)`,
  'a function in a CHECK constraint': `${F}; CREATE TABLE public.a (x int CHECK (x > public.f()))`,
  "a function in a domain's CHECK": `${F}; CREATE DOMAIN public.d AS int CHECK (VALUE > public.f())`,
  'a function in an index expression': `CREATE FUNCTION public.f(int) RETURNS int IMMUTABLE LANGUAGE sql AS $$ SELECT $1 $$; CREATE TABLE public.a (x int); CREATE INDEX ON public.a (public.f(x))`,
  'a function in a view': `${F}; CREATE VIEW public.v AS SELECT public.f() AS x`,
  'a function in a policy': `${F}; CREATE TABLE public.a (x int); CREATE POLICY p ON public.a USING (x > public.f())`,
  'a function called by a function with a SQL-standard body': `${F}; CREATE FUNCTION public.g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT public.f(); END`,
  'a procedural language': `CREATE FUNCTION public.h() RETURNS language_handler AS '$libdir/plpgsql', 'plpgsql_call_handler' LANGUAGE c; CREATE LANGUAGE mine HANDLER public.h`,
  'an operator over a built-in function': 'CREATE OPERATOR public.=== (LEFTARG = int4, RIGHTARG = int4, FUNCTION = int4eq)',
  'an operator class over built-in operators':
    'CREATE OPERATOR CLASS public.my_int_ops FOR TYPE int4 USING btree AS OPERATOR 1 <, OPERATOR 3 =, FUNCTION 1 btint4cmp(int4, int4)',
  'a cast without a function': `CREATE DOMAIN public.d1 AS int; CREATE TYPE public.e1 AS ENUM ('x'); CREATE CAST (public.e1 AS int4) WITH INOUT`,
  'a range type': 'CREATE TYPE public.floatrange AS RANGE (subtype = float8)',
  'a foreign table without a handler':
    'CREATE FOREIGN DATA WRAPPER w; CREATE SERVER s FOREIGN DATA WRAPPER w; CREATE FOREIGN TABLE public.ft (id int) SERVER s',
  'a trigger on the tracking table over a built-in function': `${TRACKING}; CREATE TRIGGER t BEFORE UPDATE ON public.migrations FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()`,
  'a rule on the tracking table (no function)': `${TRACKING}; CREATE TABLE public.users (id int); CREATE RULE r AS ON INSERT TO public.migrations DO ALSO DELETE FROM public.users`,
  'the tracking table an inheritance child': `CREATE TABLE public.parent (name text); CREATE TABLE public.migrations (checksum text, applied_at timestamp DEFAULT now(), duration_ms int, applied_by text) INHERITS (public.parent); ALTER TABLE public.migrations ADD PRIMARY KEY (name)`,
  'a foreign key pointing at the tracking table': `${TRACKING}; CREATE TABLE public.notes (m text REFERENCES public.migrations (name) ON DELETE CASCADE)`,
  'an extension': 'CREATE EXTENSION IF NOT EXISTS pg_trgm',
};

describe('the code-free probe', () => {
  it('is true on a fresh database whose tracking table is plain, and stays true through tables, indexes, views, enums, domains', async () => {
    const db = await createTestDatabase('cf');
    await db.query(TRACKING);
    expect(await codeFree(db)).toBe(true);
    await db.query(`CREATE TABLE public.users (id serial PRIMARY KEY, email text UNIQUE CHECK (email <> ''), created timestamp DEFAULT now());
      CREATE INDEX ON public.users (lower(email)); CREATE VIEW public.v AS SELECT id FROM public.users;
      CREATE TYPE public.mood AS ENUM ('a', 'b'); CREATE DOMAIN public.pos AS int CHECK (VALUE > 0);
      CREATE TABLE public.orders (id int REFERENCES public.users (id) ON DELETE CASCADE, m public.mood, p public.pos)`);
    expect(await codeFree(db)).toBe(true);
  });

  it('is true with trigger functions on other tables ("set updated_at") and functions nothing uses, false once the file names one', async () => {
    const db = await createTestDatabase('cf');
    await db.query(`${TRACKING}; ${F}; CREATE TABLE public.a (x int, updated_at timestamp);
      CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated_at = now(); RETURN NEW; END $$;
      CREATE TRIGGER touch BEFORE UPDATE ON public.a FOR EACH ROW EXECUTE FUNCTION public.touch()`);
    expect(await codeFree(db, ['now', 'lower'])).toBe(true);
    expect(await codeFree(db, ['now', 'f'])).toBe(false);
    expect(await codeFree(db, ['touch'])).toBe(false);
  });

  for (const [route, sql] of Object.entries(ROUTES)) {
    it(`is false with ${route}`, async () => {
      const db = await createTestDatabase('cf');
      await db.query(sql);
      await db.query(`${TRACKING.replace('CREATE TABLE', 'CREATE TABLE IF NOT EXISTS')}`);
      expect(await codeFree(db)).toBe(false);
    });
  }

  it('is false with an enabled event trigger, true again once it is disabled and its function dropped', async () => {
    const db = await createTestDatabase('cf');
    await db.query(`${TRACKING}; CREATE FUNCTION public.ev() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
      CREATE EVENT TRIGGER ev ON ddl_command_end EXECUTE FUNCTION public.ev()`);
    expect(await codeFree(db)).toBe(false);
    await db.query('DROP EVENT TRIGGER ev; DROP FUNCTION public.ev()');
    expect(await codeFree(db)).toBe(true);
  });
});

describe('the engine', () => {
  it("the guide's files on a fresh database: the probe for every file (004's trigger function runs only for DML)", async () => {
    const db = await createTestDatabase('cf');
    const c = await client(db);
    const sent = counted(c);
    const guide = await buildMigrationSet(await readMigrationFiles(fileURLToPath(new URL('../../migrations/', import.meta.url))));
    const r = await new Migrator(c).migrate(guide, WORKER);
    expect(r.failed).toBeUndefined();
    expect(r.applied).toHaveLength(8);
    const batches = sent.filter((q) => q.includes('-- flotilla: 0'));
    expect(batches.map((q) => (q.includes('flotilla_code_free') ? 'probe' : q.includes('WITH RECURSIVE path') ? 'scope' : 'none'))).toEqual([
      'probe',
      'probe',
      'probe',
      'probe',
      'probe',
      'probe',
      'probe',
      'probe',
    ]);
  });

  it('a database with user code: the first file falls back to the scope query in the same run, the rest ask it directly', async () => {
    const db = await createTestDatabase('cf');
    await db.query(ROUTES['a function in a column default']!);
    const c = await client(db);
    const sent = counted(c);
    const r = await new Migrator(c).migrate(
      await set({ '001_p.sql': 'CREATE TABLE p (id int);', '002_q.sql': 'CREATE TABLE q (id int);', '003_r.sql': 'CREATE INDEX ON p (id);' }),
      WORKER,
    );
    expect(r.failed).toBeUndefined();
    expect(r.applied.map((a) => a.name)).toEqual(['001_p.sql', '002_q.sql', '003_r.sql']);
    const batches = sent.filter((q) => q.includes('-- flotilla: 0'));
    expect(batches.filter((q) => q.includes('flotilla_code_free'))).toHaveLength(1);
    expect(batches.filter((q) => q.includes('WITH RECURSIVE path'))).toHaveLength(3);
  });

  it('a rule on the tracking table that deletes rows (no function anywhere) still fails the file, rolled back', async () => {
    const db = await createTestDatabase('cf');
    await db.query(`${TRACKING}; CREATE TABLE public.users (id int); INSERT INTO public.users SELECT generate_series(1, 5);
      CREATE RULE r AS ON INSERT TO public.migrations DO ALSO DELETE FROM public.users WHERE id > 3`);
    const r = await new Migrator(await client(db)).migrate(await set({ '001_t.sql': 'CREATE TABLE t (id int);' }), WORKER);
    expect(r.failed?.name).toBe('001_t.sql');
    expect(r.failed?.error).toBeInstanceOf(ValidationFailedError);
    expect(String((r.failed!.error as Error).message)).toMatch(/users/);
    expect((await db.query('SELECT count(*)::int AS n FROM public.users')).rows[0].n).toBe(5);
    expect((await db.query(`SELECT to_regclass('public.t') AS t`)).rows[0].t).toBeNull();
  });

  it('a function made after a code-free file, between two runs, is found by the next run', async () => {
    const db = await createTestDatabase('cf');
    const c = await client(db);
    await new Migrator(c).migrate(await set({ '001_users.sql': 'CREATE TABLE users (id int); INSERT INTO users VALUES (1), (2);' }), WORKER);
    await db.query(`CREATE FUNCTION public.wipe() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM public.users; RETURN NULL; END $$;
      CREATE TRIGGER wipe AFTER INSERT ON public.migrations FOR EACH ROW EXECUTE FUNCTION public.wipe()`);
    const r = await new Migrator(c).migrate(
      await set({ '001_users.sql': 'CREATE TABLE users (id int); INSERT INTO users VALUES (1), (2);', '002_t.sql': 'CREATE TABLE t (id int);' }),
      WORKER,
    );
    expect(r.failed?.name).toBe('002_t.sql');
    expect(r.failed?.error).toBeInstanceOf(ValidationFailedError);
    expect((await db.query('SELECT count(*)::int AS n FROM public.users')).rows[0].n).toBe(2);
  });

  it("no catalog snapshot around a file that only creates: the guide's files take 4 (before and after 006 and 008), not 9", async () => {
    const db = await createTestDatabase('cf');
    const c = await client(db);
    const sent = counted(c);
    const guide = await buildMigrationSet(await readMigrationFiles(fileURLToPath(new URL('../../migrations/', import.meta.url))));
    const r = await new Migrator(c).migrate(guide, WORKER);
    expect(r.failed).toBeUndefined();
    const snapshots = (q: string) => q.split('WITH exclusive AS MATERIALIZED').length - 1;
    const per = sent.filter((q) => q.includes('-- flotilla: 0')).map((q) => `${q.slice(13, 16)}:${snapshots(q)}`);
    expect(per).toEqual(['001:0', '002:0', '003:0', '004:0', '005:0', '006:2', '007:0', '008:2']);
  });

  it('a file that only creates, where creation is not allowed, still fails: the snapshots are taken', async () => {
    const db = await createTestDatabase('cf');
    const r = await new Migrator(await client(db)).migrate(
      await set({ '001_t.sql': '-- flotilla:validate allowTableCreation=false\nCREATE TABLE t (id int);\nCREATE INDEX ON t (id);\n' }),
      WORKER,
    );
    expect(r.failed?.name).toBe('001_t.sql');
    expect(String((r.failed!.error as Error).message)).toMatch(/Table t: created/);
    expect((await db.query(`SELECT to_regclass('public.t') AS t`)).rows[0].t).toBeNull();
  });

  it('a file that creates and also changes an existing table is compared: a dropped column fails it', async () => {
    const db = await createTestDatabase('cf');
    const c = await client(db);
    await new Migrator(c).migrate(await set({ '001_u.sql': 'CREATE TABLE u (id int, note text);' }), WORKER);
    const r = await new Migrator(c).migrate(
      await set({ '001_u.sql': 'CREATE TABLE u (id int, note text);', '002_x.sql': 'CREATE TABLE x (id int);\nALTER TABLE u DROP COLUMN note;\n' }),
      WORKER,
    );
    expect(r.failed?.name).toBe('002_x.sql');
    expect(String((r.failed!.error as Error).message)).toMatch(/column note removed/);
    expect((await db.query(`SELECT to_regclass('public.x') AS t`)).rows[0].t).toBeNull();
  });

  it("under --schema: the scope query's guard (no probe), and a file after one that only creates is not sent down the careful path", async () => {
    const db = await createTestDatabase('cf');
    await db.query('CREATE SCHEMA t1');
    const c = await client(db);
    const sent = counted(c);
    const guide = await buildMigrationSet(await readMigrationFiles(fileURLToPath(new URL('../../migrations/', import.meta.url))));
    const r = await new Migrator(c, { schema: 't1' }).migrate(guide, WORKER);
    expect(r.failed).toBeUndefined();
    expect(r.applied).toHaveLength(8);
    const batches = sent.filter((q) => q.includes('-- flotilla: 0'));
    expect(batches.filter((q) => q.includes('WITH RECURSIVE path'))).toHaveLength(8);
    expect(batches.filter((q) => q.includes('flotilla_code_free'))).toHaveLength(0);
    // the careful path asks the scope in a round trip of its own (validationScope)
    expect(sent.filter((q) => q.includes('flotilla.saved_jit'))).toEqual([]);
  });

  it('a constraint trigger on an existing table is a constraint added: compared, and refused by default', async () => {
    const db = await createTestDatabase('cf');
    const c = await client(db);
    await new Migrator(c).migrate(await set({ '001_u.sql': 'CREATE TABLE u (id int);' }), WORKER);
    const r = await new Migrator(c).migrate(
      await set({
        '001_u.sql': 'CREATE TABLE u (id int);',
        '002_ct.sql': `CREATE FUNCTION public.ct() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER u_ct AFTER INSERT ON u DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.ct();`,
      }),
      WORKER,
    );
    expect(r.failed?.name).toBe('002_ct.sql');
    expect(String((r.failed!.error as Error).message)).toMatch(/constraint u_ct added/);
  });

  // the tracking row is written after the file's statements: what the file puts on the tracking table runs after every guard
  const WIPE = `${TRACKING}; CREATE TABLE public.users (id int); INSERT INTO public.users SELECT generate_series(1, 5);
    CREATE FUNCTION public.wipe() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM public.users; RETURN NULL; END $$`;
  for (const [route, setup] of [
    ['the code-free probe', WIPE],
    ['the scope query (user code in a default)', `${WIPE}; ${F}; CREATE TABLE public.other (x int DEFAULT public.f())`],
  ] as const) {
    for (const [what, sql] of [
      ['a trigger', 'CREATE TRIGGER t AFTER INSERT ON migrations FOR EACH ROW EXECUTE FUNCTION wipe();'],
      ['a rule', 'CREATE RULE r AS ON INSERT TO migrations DO ALSO DELETE FROM users;'],
    ] as const) {
      it(`${what} the file puts on the tracking table, deleting rows when the tracking row is written, fails the file (${route})`, async () => {
        const db = await createTestDatabase('cf');
        await db.query(setup);
        const r = await new Migrator(await client(db)).migrate(await set({ '001_x.sql': sql }), WORKER);
        expect(r.failed?.name).toBe('001_x.sql');
        expect(r.failed?.error).toBeInstanceOf(ValidationFailedError);
        expect(String((r.failed!.error as Error).message)).toMatch(/users: row count changed from 5 to 0/);
        expect((await db.query('SELECT count(*)::int AS n FROM public.users')).rows[0].n).toBe(5);
        expect((await db.query('SELECT count(*)::int AS n FROM public.migrations')).rows[0].n).toBe(0);
      });
    }
  }
});
