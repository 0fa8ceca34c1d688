/**
 * A migration that puts its own schema before pg_catalog in the search_path
 * (`SET search_path = public, pg_catalog`, or ALTER DATABASE ... SET) makes
 * unqualified function and operator names resolve to its objects first; an
 * overload matching the arguments better than the built-in wins even with
 * pg_catalog first (adapters/pg/safe-path.ts). The
 * engine's own statements in a file's batch (the tracking row, the guards, the
 * snapshots) must not run them: INVARIANTS 8, each route a file that changed
 * rows or structure of an existing table and must fail and roll back, on a
 * database tenant (the code-free probe) and through the scope query.
 */
import { describe, expect, it } from 'vitest';
import { ValidationFailedError } from '../../src/core/errors.js';
import { Migrator } from '../../src/migrator.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { countRows, engineClients, fileSet, GUARDS, runFiles, USERS_SETUP, WORKER } from '../helpers/engine.js';

const client = engineClients();
const run = (setup: string, files: Record<string, string>) => runFiles(client, 'sp', setup, files);
const count = countRows;

/** A function named like a built-in the engine calls, that deletes every user first. */
const SHADOW = (name: string, returns: string, value: string) =>
  `CREATE FUNCTION public.${name}() RETURNS ${returns} LANGUAGE sql VOLATILE AS $$ DELETE FROM public.users; SELECT ${value} $$;`;

describe.each(GUARDS)('through %s', (_, extra) => {
  const setup = (more = '') => [USERS_SETUP, extra, more].filter(Boolean).join(';\n');

  it('a function named clock_timestamp before pg_catalog in the path: the tracking row never calls it', async () => {
    const { db, failed } = await run(setup(), {
      '001_shadow.sql': `${SHADOW('clock_timestamp', 'timestamptz', 'pg_catalog.now()')}\nSET search_path = public, pg_catalog;\n`,
      '002_next.sql': 'CREATE TABLE t2 (id int);\n',
    });
    expect(await count(db, 'public.users')).toBe(100);
    if (failed) expect(failed.error).toBeInstanceOf(ValidationFailedError);
  });

  it('with the default path, an overload that matches better than the built-in (format(text, name, name)) does not count the rows', async () => {
    // pg_catalog comes first, but format(text, VARIADIC "any") is a worse match for (text, name, name) than this one
    const { db, failed } = await run(
      setup(`CREATE FUNCTION public.format(text, name, name) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'SELECT 100 AS c' $$`),
      { '001_purge.sql': 'DELETE FROM users WHERE id > 50;\n' },
    );
    expect(failed?.name).toBe('001_purge.sql');
    expect(failed?.error).toBeInstanceOf(ValidationFailedError);
    expect(await count(db, 'public.users')).toBe(100);
  });

  it('an = operator on oid and name that is always false, before pg_catalog in the path: a later DELETE is still seen', async () => {
    const db = await createTestDatabase('sp');
    await db.query(setup());
    await db.query(`CREATE FUNCTION public.never(oid, oid) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false';
      CREATE FUNCTION public.never(name, name) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false';
      CREATE FUNCTION public.never(text, text) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false';
      CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = public.never);
      CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = name, FUNCTION = public.never);
      CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.never);
      ALTER DATABASE "${db.name}" SET search_path = public, pg_catalog`);
    const r = await new Migrator(await client(db)).migrate(await fileSet({ '001_purge.sql': 'DELETE FROM users WHERE id > 50;\n' }), WORKER);
    expect(r.failed?.name).toBe('001_purge.sql');
    expect(r.failed?.error).toBeInstanceOf(ValidationFailedError);
    expect(await count(db, 'public.users')).toBe(100);
  });
});

/**
 * From the outside trial of this change: the tracking table's setup (finding
 * case twins, creating it, its advisory locks) and the explanation of a refused
 * file ran the database's functions too. Each shadow here records that it ran.
 */
describe("the engine's setup and explanations run none of the database's functions", () => {
  const HITS = 'CREATE TABLE public.hits (f text)';
  const shadow = (sig: string, returns: string, call: string) =>
    `CREATE FUNCTION public.${sig} RETURNS ${returns} LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.hits VALUES ('${sig}'); RETURN ${call}; END $$`;
  const SHADOWS = [
    HITS,
    shadow('lower(n name)', 'text', 'pg_catalog.lower(n::text)'),
    shadow('hashtext(t text)', 'int4', 'pg_catalog.hashtext(t)'),
    shadow('to_regclass(t text)', 'regclass', 'pg_catalog.to_regclass(t)'),
    shadow('now()', 'timestamptz', 'pg_catalog.now()'),
    shadow('current_database()', 'name', 'pg_catalog.current_database()'),
    shadow('current_setting(t text)', 'text', 'pg_catalog.current_setting(t)'),
    shadow('pg_is_in_recovery()', 'boolean', 'pg_catalog.pg_is_in_recovery()'),
    shadow('format_type(o oid, m int4)', 'text', 'pg_catalog.format_type(o, m)'),
  ].join(';\n');
  const hits = async (db: TestDatabase) => (await db.query('SELECT array_agg(DISTINCT f ORDER BY f) AS f FROM public.hits')).rows[0].f as string[] | null;

  for (const path of ['the default path', 'public before pg_catalog']) {
    it(`${path}: a new tenant schema, status of a schema and of another tracking table, a dry run`, async () => {
      const db = await createTestDatabase('sp');
      await db.query(SHADOWS);
      if (path !== 'the default path') await db.query(`ALTER DATABASE "${db.name}" SET search_path = public, pg_catalog`);
      const files = await fileSet({ '001_tt.sql': 'CREATE TABLE tt (id int);\n' });
      await new Migrator(await client(db)).migrate(files, { dryRun: true });
      const created = await new Migrator(await client(db)).migrate(files, WORKER);
      expect(created.applied.map((a) => a.name)).toEqual(['001_tt.sql']);
      const r = await new Migrator(await client(db), { schema: 'acme' }).migrate(files, WORKER);
      expect(r.failed).toBeUndefined();
      expect(r.applied.map((a) => a.name)).toEqual(['001_tt.sql']);
      await new Migrator(await client(db), { schema: 'beta' }).status(files);
      await new Migrator(await client(db), { trackingTable: 'other_history' }).status(files);
      expect(await hits(db)).toBeNull();
      // the tracking table's default is pg_catalog's now(), whatever the path said when it was made
      const def = await db.query(`SELECT pg_get_expr(adbin, adrelid) AS d FROM pg_attrdef WHERE adrelid = 'acme.migrations'::regclass`);
      expect(def.rows[0].d).not.toMatch(/public\./);
    });

    it(`${path}: a file refused for lack of privilege is explained without running them`, async () => {
      const db = await createTestDatabase('sp');
      await db.query(SHADOWS);
      if (path !== 'the default path') await db.query(`ALTER DATABASE "${db.name}" SET search_path = public, pg_catalog`);
      const r = await new Migrator(await client(db))
        .migrate(await fileSet({ '001_no.sql': "DO $$BEGIN RAISE EXCEPTION 'nope' USING ERRCODE = '42501'; END$$;\n" }), WORKER)
        .catch((e: unknown) => ({ failed: { error: e } }));
      expect(r.failed).toBeDefined();
      expect(await hits(db)).toBeNull();
    });
  }
});

describe('a tracking table in a schema named after the role, made later', () => {
  it('is not taken over the one further along the path: refused, nothing applied again', async () => {
    const db = await createTestDatabase('sp');
    const files = await fileSet({ '001_items.sql': 'CREATE TABLE items (id int);\n', '002_audit.sql': 'CREATE TABLE public.audit (id int);\n' });
    expect((await new Migrator(await client(db)).migrate(files, WORKER)).applied).toHaveLength(2);
    // a tenant onboarded with --schema named like the role: "$user" on the default path now names a schema with a ledger
    const role = (await db.query('SELECT current_user AS u')).rows[0].u as string;
    const tenant = await new Migrator(await client(db), { schema: role }).migrate(await fileSet({ '100_t.sql': 'CREATE TABLE t (id int);\n' }), WORKER);
    expect(tenant.applied.map((a) => a.name)).toEqual(['100_t.sql']);
    const again = await new Migrator(await client(db)).migrate(files, WORKER).then(
      (r) => r,
      (e: unknown) => e,
    );
    expect(again).toMatchObject({ code: 'ambiguous_tracking_table', onPath: true });
    expect(String((again as Error).message)).toContain(`${role}, public`);
    expect((await db.query(`SELECT to_regclass('"${role}".items') AS t`)).rows[0].t).toBeNull();
    // with --schema, each is its own
    expect((await new Migrator(await client(db), { schema: 'public' }).status(files)).pending).toEqual([]);
  });
});
