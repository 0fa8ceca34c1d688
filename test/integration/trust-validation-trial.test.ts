/**
 * Routes past validation found by an outside trial of the cheaper validation
 * (issue 11): each a file that changed rows or structure of an existing table
 * and was recorded as applied. INVARIANTS 8: each must fail and roll back, on a
 * database tenant (the code-free probe) and, where it differs, through the
 * scope query (a user function in a default elsewhere forces it).
 */
import { describe, expect, it } from 'vitest';
import { ValidationFailedError } from '../../src/core/errors.js';
import type { TestDatabase } from '../helpers/db.js';
import { countRows, engineClients, GUARDS, runFiles, USERS_SETUP } from '../helpers/engine.js';

const client = engineClients();
const run = (setup: string, files: Record<string, string>) => runFiles(client, 'vt', setup, files);
const count = countRows;
const columns = async (db: TestDatabase, t: string) =>
  (
    await db.query(
      `SELECT array_agg(attname::text ORDER BY attnum) AS c FROM pg_attribute WHERE attrelid = '${t}'::regclass AND attnum > 0 AND NOT attisdropped`,
    )
  ).rows[0].c as string[];

describe.each(GUARDS)('through %s', (_, extra) => {
  const setup = (more = '') => [USERS_SETUP, extra, more].filter(Boolean).join(';\n');

  it('an index ON ONLY a partitioned table is left INVALID: the file fails', async () => {
    const { db, failed } = await run(
      setup(`CREATE TABLE public.events (id int, ts date NOT NULL) PARTITION BY RANGE (ts);
        CREATE TABLE public.events_2026 PARTITION OF public.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`),
      { '001_idx.sql': 'CREATE INDEX events_ts_idx ON ONLY events (ts);' },
    );
    expect(failed?.name).toBe('001_idx.sql');
    expect(String((failed!.error as Error).message)).toMatch(/events_ts_idx is INVALID/);
    expect((await db.query(`SELECT to_regclass('public.events_ts_idx') AS i`)).rows[0].i).toBeNull();
  });

  it('CREATE TABLE IF NOT EXISTS of an existing partitioned table, then an index ON ONLY it: compared, left INVALID, fails', async () => {
    const { db, failed } = await run(
      setup(`CREATE TABLE public.events (id int, ts date NOT NULL) PARTITION BY RANGE (ts);
        CREATE TABLE public.events_2026 PARTITION OF public.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`),
      {
        '001_idx.sql':
          'CREATE TABLE IF NOT EXISTS events (id int, ts date NOT NULL) PARTITION BY RANGE (ts);\nCREATE INDEX events_ts_idx ON ONLY events (ts);\n',
      },
    );
    expect(failed?.name).toBe('001_idx.sql');
    expect(String((failed!.error as Error).message)).toMatch(/events_ts_idx is INVALID/);
    expect((await db.query(`SELECT to_regclass('public.events_ts_idx') AS i`)).rows[0].i).toBeNull();
  });

  it('a function called in functional notation (users.sort_key) while an index builds: rows and a column of another table kept', async () => {
    const { db, failed } = await run(
      setup(`CREATE TABLE public.orders (id int PRIMARY KEY, note text); INSERT INTO public.orders SELECT g, 'n' FROM generate_series(1, 10) g;
        CREATE FUNCTION public.purge() RETURNS int LANGUAGE plpgsql AS $$ BEGIN DELETE FROM public.orders; ALTER TABLE public.orders DROP COLUMN IF EXISTS note; RETURN 1; END $$;
        CREATE FUNCTION public.sort_key(public.users) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN PERFORM public.purge(); RETURN 1; END $$`),
      { '001_index.sql': 'CREATE INDEX users_sort_key ON users ((users.sort_key));' },
    );
    expect(failed?.name).toBe('001_index.sql');
    expect(failed?.error).toBeInstanceOf(ValidationFailedError);
    expect(await count(db, 'public.orders')).toBe(10);
    expect(await columns(db, 'public.orders')).toEqual(['id', 'note']);
  });

  it('functional notation in CREATE TABLE AS, with the function made in the same file', async () => {
    const { db, failed } = await run(setup(), {
      '001_scores.sql': `CREATE FUNCTION user_score(users) RETURNS int LANGUAGE plpgsql AS $$ BEGIN DELETE FROM users WHERE id > 50; RETURN 1; END $$;
CREATE TABLE user_scores AS SELECT u.id, u.user_score AS score FROM users u LIMIT 1;`,
    });
    expect(failed?.name).toBe('001_scores.sql');
    expect(failed?.error).toBeInstanceOf(ValidationFailedError);
    expect(await count(db, 'public.users')).toBe(100);
  });

  it('a function made in pg_catalog and called with that prefix', async () => {
    const { db, failed } = await run(setup(), {
      '001_k.sql': `CREATE FUNCTION pg_catalog.user_rank(int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN DELETE FROM public.users WHERE id > 50; RETURN 1; END $$;
CREATE TABLE user_ranks AS SELECT pg_catalog.user_rank(1) AS r;`,
    });
    expect(failed?.name).toBe('001_k.sql');
    expect(failed?.error).toBeInstanceOf(ValidationFailedError);
    expect(await count(db, 'public.users')).toBe(100);
  });

  it('a trigger the file puts on the tracking table that deletes rows and drops a column when the tracking row is written', async () => {
    const { db, failed } = await run(setup(), {
      '001_audit.sql': `CREATE FUNCTION audit_migration() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN DELETE FROM users WHERE id > 50; ALTER TABLE users DROP COLUMN email; RETURN NEW; END $$;
CREATE TRIGGER audit_migration AFTER INSERT ON migrations FOR EACH ROW EXECUTE FUNCTION audit_migration();`,
    });
    expect(failed?.name).toBe('001_audit.sql');
    expect(failed?.error).toBeInstanceOf(ValidationFailedError);
    expect(await count(db, 'public.users')).toBe(100);
    expect(await columns(db, 'public.users')).toEqual(['id', 'email']);
  });

  it('temporary tables named like the catalogs do not blind the validator for the files after them', async () => {
    const { db, failed } = await run(setup(), {
      '001_scratch.sql': `CREATE TEMP TABLE pg_class (oid oid, relname name, relnamespace oid, relkind "char");
CREATE TEMP TABLE pg_attribute (attrelid oid, attname name, attnum int2, attisdropped bool, atttypid oid, atttypmod int4, attnotnull bool);
CREATE TEMP TABLE pg_index (indexrelid oid, indrelid oid);
CREATE TEMP TABLE pg_constraint (oid oid, conname name, conrelid oid, contype "char");`,
      '002_purge.sql': 'DELETE FROM users WHERE id > 50;',
    });
    expect(failed?.name).toBe('002_purge.sql');
    expect(String((failed!.error as Error).message)).toMatch(/users: row count changed from 100 to 50/);
    expect(await count(db, 'public.users')).toBe(100);
  });

  it('temporary catalogs, then a file that drops a column and a constraint: compared against the real catalog', async () => {
    const { db, failed } = await run(setup(), {
      '001_scratch.sql': `CREATE TEMP TABLE pg_attribute (attrelid oid, attname name, attnum int2, attisdropped bool, atttypid oid, atttypmod int4, attnotnull bool);
CREATE TEMP TABLE pg_index (indexrelid oid, indrelid oid, indisvalid bool);
CREATE TEMP TABLE pg_constraint (oid oid, conname name, conrelid oid, contype "char", convalidated bool);`,
      '002_cleanup.sql': 'ALTER TABLE users DROP COLUMN email;\nALTER TABLE users DROP CONSTRAINT users_pkey;\n',
    });
    expect(failed?.name).toBe('002_cleanup.sql');
    expect(String((failed!.error as Error).message)).toMatch(/column email removed/);
    expect(await columns(db, 'public.users')).toEqual(['id', 'email']);
  });

  const PURGE = 'CREATE FUNCTION public.purge_users() RETURNS int LANGUAGE plpgsql AS $$ BEGIN DELETE FROM public.users WHERE id > 50; RETURN 1; END $$';

  it('REFRESH of a materialized view whose body runs SQL text (query_to_xml) that deletes rows', async () => {
    const { db, failed } = await run(
      setup(`${PURGE}; CREATE MATERIALIZED VIEW public.report AS SELECT query_to_xml('select public.purge_users()', false, false, '') AS x WITH NO DATA`),
      { '001_refresh.sql': 'REFRESH MATERIALIZED VIEW report;' },
    );
    expect(failed?.name).toBe('001_refresh.sql');
    expect(String((failed!.error as Error).message)).toMatch(/users: row count changed from 100 to 50/);
    expect(await count(db, 'public.users')).toBe(100);
  });

  it('a CHECK on the tracking table that runs SQL text (query_to_xml) when the tracking row is written', async () => {
    const { db, failed } = await run(
      setup(
        `${PURGE}; ALTER TABLE public.migrations ADD CONSTRAINT migrations_audit CHECK (query_to_xml('select public.purge_users()', false, false, '') IS NOT NULL) NOT VALID`,
      ),
      { '001_t.sql': 'CREATE TABLE tags (id int PRIMARY KEY, name text);' },
    );
    expect(failed?.name).toBe('001_t.sql');
    expect(String((failed!.error as Error).message)).toMatch(/users: row count changed from 100 to 50/);
    expect(await count(db, 'public.users')).toBe(100);
  });

  it('a view calling query_to_xml made by an earlier file of the same run, then read by a later file', async () => {
    const { db, failed } = await run(setup(PURGE), {
      '001_a.sql': 'CREATE TABLE a (id int);', // the probe, with its expression-tree checks, holds: later probes may skip them
      '002_view.sql': "CREATE VIEW report AS SELECT query_to_xml('select public.purge_users()', false, false, '') AS x;",
      '003_snap.sql': 'CREATE TABLE snap AS SELECT * FROM report;',
    });
    expect(failed?.name).toBe('003_snap.sql');
    expect(String((failed!.error as Error).message)).toMatch(/users: row count changed from 100 to 50/);
    expect(await count(db, 'public.users')).toBe(100);
  });
});
