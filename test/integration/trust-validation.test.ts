/**
 * Validation has no escape routes (issue 9 §4, promise 8): a file that changes
 * rows the options forbid fails and rolls back whatever route the change takes
 * (search_path changes, --schema writing elsewhere, deferred triggers,
 * operators, casts and domains, views, rules, index expressions). Each route
 * has a harmless twin that must still pass and keep the row-count scope narrow.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ValidationFailedError } from '../../src/core/errors.js';
import { buildMigrationSet, type MigrationFile } from '../../src/core/migration-set.js';
import { rowCountScope } from '../../src/adapters/pg/row-scope.js';
import { Migrator, type EngineSettings, type MigrateReport } from '../../src/migrator.js';
import { createTestDatabase, dropAllTestDatabases, type TestDatabase } from '../helpers/db.js';

afterAll(dropAllTestDatabases);

/** `victims` holds 3 rows; every route below tries to delete them without being noticed. */
const SETUP = `
  CREATE TABLE victims (id int PRIMARY KEY);
  INSERT INTO victims VALUES (1), (2), (3);
  CREATE TABLE t (id int PRIMARY KEY, x int);
  INSERT INTO t VALUES (1, 0);
  CREATE FUNCTION purge_victims() RETURNS int LANGUAGE plpgsql AS $$ BEGIN DELETE FROM victims; RETURN 0; END $$;`;

async function migrate(db: TestDatabase, files: MigrationFile[], settings: Partial<EngineSettings> = {}): Promise<MigrateReport> {
  const c = await db.client();
  try {
    return await new Migrator(c, settings).migrate(await buildMigrationSet(files));
  } finally {
    await c.end();
  }
}

async function scopeOf(db: TestDatabase, sql: string, schema?: string): Promise<string[] | undefined> {
  const set = await buildMigrationSet([{ name: '001_x.sql', sql }]);
  const c = await db.client();
  try {
    if (schema) await c.query(`SET search_path TO "${schema}"`);
    return await rowCountScope(c, set.migrations[0]!.effects);
  } finally {
    await c.end();
  }
}

const count = async (db: TestDatabase, table: string) => (await db.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number;
const tracked = async (db: TestDatabase, table = 'migrations') => (await db.query(`SELECT name FROM ${table} ORDER BY name`)).rows.map((r) => r.name);

/** The file failed validation, naming the table that lost rows, and nothing of it was kept. */
async function expectCaught(db: TestDatabase, report: MigrateReport, table: RegExp, victims = 'victims', ledger = 'migrations') {
  expect(report.failed?.error, JSON.stringify(report.failed)).toBeInstanceOf(ValidationFailedError);
  expect(report.failed!.error.message).toMatch(table);
  expect(await count(db, victims)).toBe(3);
  expect(await tracked(db, ledger)).not.toContain(report.failed!.name);
}

describe('validation routes: name resolution', () => {
  it('SET search_path inside a file: unqualified writes are resolved under the path the file sets', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`CREATE SCHEMA archive; CREATE TABLE archive.events (id int); INSERT INTO archive.events VALUES (1), (2), (3);`);
    const r = await migrate(db, [{ name: '001_path.sql', sql: `SET search_path TO archive;\nDELETE FROM events;` }]);
    await expectCaught(db, r, /archive\.events: row count changed from 3 to 0/, 'archive.events');
  });

  it('set_config(search_path) and SET LOCAL, even when a same-named table exists on the old path', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`CREATE SCHEMA archive; CREATE TABLE archive.events (id int); INSERT INTO archive.events VALUES (1), (2), (3);
                    CREATE TABLE events (id int);`);
    const r = await migrate(db, [{ name: '001_path.sql', sql: `SELECT set_config('search_path', 'archive, public', true);\nDELETE FROM events;` }]);
    await expectCaught(db, r, /archive\.events: row count changed from 3 to 0/, 'archive.events');
    const r2 = await migrate(db, [{ name: '001_path.sql', sql: `SET LOCAL search_path = archive;\nTRUNCATE events;` }]);
    await expectCaught(db, r2, /archive\.events: row count changed from 3 to 0/, 'archive.events');
    // a path the analysis cannot read (RESET, a computed value) widens to the name in every schema
    expect(await scopeOf(db, `SELECT set_config('search_' || 'path', 'archive', true); DELETE FROM events;`)).toEqual(['archive.events', 'public.events']);
  });

  it('harmless: a SET of an unrelated setting or a path change before DDL keeps the scope narrow and passes', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`${SETUP}; CREATE SCHEMA archive; CREATE TABLE archive.events (id int);`);
    expect(await scopeOf(db, `SET statement_timeout = '5min'; CREATE INDEX ON t (x);`)).toEqual([]);
    expect(await scopeOf(db, `SET search_path TO archive; CREATE INDEX ON events (id);`)).toEqual([]);
    expect(await scopeOf(db, `SET search_path TO archive; UPDATE events SET id = id;`)).toEqual(['archive.events']);
    const r = await migrate(db, [{ name: '001_ok.sql', sql: `SET statement_timeout = '5min';\nSET search_path TO archive;\nCREATE INDEX ON events (id);` }]);
    expect(r.failed).toBeUndefined();
  });

  it('--schema: a file writing into another schema (qualified, or after changing search_path) is counted there', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`${SETUP}; CREATE SCHEMA tenant;`);
    const qualified = await migrate(db, [{ name: '001_q.sql', sql: `DELETE FROM public.victims;` }], { schema: 'tenant' });
    await expectCaught(db, qualified, /victims: row count changed from 3 to 0/, 'victims', 'tenant.migrations');
    const path = await migrate(db, [{ name: '001_p.sql', sql: `SET search_path TO public;\nDELETE FROM victims;` }], { schema: 'tenant' });
    await expectCaught(db, path, /victims: row count changed from 3 to 0/, 'victims', 'tenant.migrations');
    const reset = await migrate(db, [{ name: '001_r.sql', sql: `RESET search_path;\nDELETE FROM victims;` }], { schema: 'tenant' });
    await expectCaught(db, reset, /victims: row count changed from 3 to 0/, 'victims', 'tenant.migrations');
    // code the analysis cannot see through, under --schema, counts every schema, not only the tenant's
    const code = await migrate(db, [{ name: '001_c.sql', sql: `DO $$ BEGIN DELETE FROM public.victims; END $$;` }], { schema: 'tenant' });
    await expectCaught(db, code, /victims: row count changed from 3 to 0/, 'victims', 'tenant.migrations');
    // harmless: the tenant's own DDL still counts nothing
    expect(await scopeOf(db, `CREATE TABLE things (id int); CREATE INDEX ON things (id);`, 'tenant')).toEqual([]);
    const ok = await migrate(db, [{ name: '001_ok.sql', sql: `CREATE TABLE things (id int);` }], { schema: 'tenant' });
    expect(ok.failed).toBeUndefined();
  });
});

describe('validation routes: structure outside --schema', () => {
  it('a file under --schema that drops or alters a table in another schema fails, however it names it', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`${SETUP}; CREATE SCHEMA tenant; CREATE TABLE tenant.own (id int);`);
    for (const sql of [
      `ALTER TABLE public.t DROP COLUMN x;`,
      `SET search_path TO public;\nALTER TABLE t ALTER COLUMN x TYPE bigint;`,
      `ALTER TABLE public.victims DROP CONSTRAINT victims_pkey;`,
    ]) {
      const r = await migrate(db, [{ name: '001_elsewhere.sql', sql }], { schema: 'tenant' });
      expect(r.failed?.error, sql).toBeInstanceOf(ValidationFailedError);
      expect(r.failed!.error.message).toMatch(/Table (t|victims): (column x|constraint victims_pkey)/);
    }
    expect(
      (
        await db.query(
          `SELECT count(*)::int AS n FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 't' AND column_name = 'x' AND data_type = 'integer'`,
        )
      ).rows[0].n,
    ).toBe(1);
    // DROP ... CASCADE of a type or a column takes what depends on it, in any schema
    await db.query(`CREATE TYPE tenant.mood AS ENUM ('ok'); ALTER TABLE public.t ADD COLUMN m tenant.mood;
                    CREATE TABLE tenant.parent (id int PRIMARY KEY); CREATE TABLE public.child (p int REFERENCES tenant.parent (id));`);
    for (const sql of [`DROP TYPE mood CASCADE;`, `ALTER TABLE parent DROP COLUMN id CASCADE;`]) {
      const r = await migrate(db, [{ name: '001_cascade.sql', sql }], { schema: 'tenant' });
      expect(r.failed?.error, sql).toBeInstanceOf(ValidationFailedError);
      expect(r.failed!.error.message, sql).toMatch(/Table (t: column m removed|child: constraint child_p_fkey removed)/);
    }
    // harmless: the tenant's own DDL, and allowed changes elsewhere
    expect((await migrate(db, [{ name: '001_own.sql', sql: `ALTER TABLE own ADD COLUMN y int;` }], { schema: 'tenant' })).failed).toBeUndefined();
  });
});

describe('validation routes: what the file itself adds before it writes', () => {
  it('a foreign key with ON DELETE CASCADE added to an existing table, then a DELETE on the parent', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`${SETUP}; CREATE TABLE parent (id int PRIMARY KEY); INSERT INTO parent VALUES (1);
      CREATE TABLE kids (id int, parent_id int); INSERT INTO kids VALUES (1, 1), (2, 1), (3, 1);`);
    const r = await migrate(db, [
      {
        name: '001_fk.sql',
        sql: `-- flotilla:validate allowConstraintModification=true\nALTER TABLE kids ADD CONSTRAINT kids_parent FOREIGN KEY (parent_id) REFERENCES parent ON DELETE CASCADE;\nDELETE FROM parent;\nINSERT INTO parent VALUES (1);`,
      },
    ]);
    await expectCaught(db, r, /kids: row count changed from 3 to 0/, 'kids');
  });

  it('a view the file creates and writes through, and a table renamed (or moved) while it is written', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`${SETUP}; CREATE SCHEMA parking;`);
    for (const sql of [
      `CREATE VIEW window_on_victims AS SELECT * FROM victims;\nDELETE FROM window_on_victims;`,
      `ALTER TABLE victims RENAME TO hidden;\nDELETE FROM hidden;\nALTER TABLE hidden RENAME TO victims;`,
      `ALTER TABLE victims SET SCHEMA parking;\nDELETE FROM parking.victims;\nALTER TABLE parking.victims SET SCHEMA public;`,
      `ALTER SCHEMA public RENAME TO elsewhere;\nDELETE FROM elsewhere.victims;\nALTER SCHEMA elsewhere RENAME TO public;`,
    ]) {
      await expectCaught(db, await migrate(db, [{ name: '001_indirect.sql', sql }]), /victims: row count changed from 3 to 0/);
    }
    // harmless: a view created next to DML on an unrelated table keeps the scope narrow
    expect(await scopeOf(db, `CREATE VIEW w AS SELECT * FROM victims; UPDATE t SET x = 2;`)).toEqual(['public.t']);
  });

  it('a trigger defined inside CREATE SCHEMA, fired by the same file', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`${SETUP}; CREATE FUNCTION purge_trigger() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM public.victims; RETURN NEW; END $$;`);
    const r = await migrate(db, [
      {
        name: '001_schema.sql',
        sql: `CREATE SCHEMA s CREATE TABLE t (id int) CREATE TRIGGER trg AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION purge_trigger();\nINSERT INTO s.t VALUES (1);`,
      },
    ]);
    await expectCaught(db, r, /victims: row count changed from 3 to 0/);
  });

  it('ALTER DOMAIN ... VALIDATE CONSTRAINT re-runs a CHECK that calls a writing function', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`${SETUP};
      CREATE FUNCTION purge_check(int) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN DELETE FROM victims; RETURN true; END $$;
      CREATE DOMAIN checked AS int; CREATE TABLE uses (v checked); INSERT INTO uses VALUES (1);
      ALTER DOMAIN checked ADD CONSTRAINT c CHECK (purge_check(VALUE)) NOT VALID;`);
    expect(await count(db, 'victims')).toBe(3);
    await expectCaught(db, await migrate(db, [{ name: '001_validate.sql', sql: `ALTER DOMAIN checked VALIDATE CONSTRAINT c;` }]), /victims: row count changed/);
  });
});

describe('validation routes: the tracking row', () => {
  it('a trigger on the tracking table fires on our own tracking row, before the after-snapshot (per file, group, dry run)', async () => {
    const db = await createTestDatabase('tv');
    await db.query(SETUP);
    expect((await migrate(db, [{ name: '001_first.sql', sql: `CREATE INDEX t_x ON t (x);` }])).failed).toBeUndefined();
    await db.query(`CREATE FUNCTION purge_on_track() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM victims; RETURN NEW; END $$;
                    CREATE TRIGGER on_track AFTER INSERT ON migrations FOR EACH ROW EXECUTE FUNCTION purge_on_track();`);
    const files = [
      { name: '001_first.sql', sql: `CREATE INDEX t_x ON t (x);` },
      { name: '002_ddl.sql', sql: `CREATE INDEX t_id_x ON t (id, x);` },
    ];
    await expectCaught(db, await migrate(db, files), /victims: row count changed from 3 to 0/);
    await expectCaught(
      db,
      await migrate(db, [...files, { name: '003_more.sql', sql: `CREATE INDEX t_x_id ON t (x, id);` }], { singleTransaction: true }),
      /victims: row count changed from 3 to 0/,
    );
    const c = await db.client();
    try {
      const dry = await new Migrator(c).migrate(await buildMigrationSet(files), { dryRun: true });
      expect(dry.failed?.error).toBeInstanceOf(ValidationFailedError);
    } finally {
      await c.end();
    }
    expect(await count(db, 'victims')).toBe(3);
  });
});

describe('validation routes: deferred triggers', () => {
  const DEFERRED = `
    CREATE FUNCTION purge_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM victims; RETURN NULL; END $$;
    CREATE CONSTRAINT TRIGGER purge_later AFTER UPDATE ON t DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION purge_at_commit();`;

  it('a deferred constraint trigger deleting at COMMIT is seen by the after-snapshot (per-file transaction)', async () => {
    const db = await createTestDatabase('tv');
    await db.query(SETUP + DEFERRED);
    const r = await migrate(db, [{ name: '001_touch.sql', sql: `UPDATE t SET x = 1;` }]);
    await expectCaught(db, r, /victims: row count changed from 3 to 0/);
  });

  it('the same in a --single-transaction group and in a dry run', async () => {
    const db = await createTestDatabase('tv');
    await db.query(SETUP + DEFERRED);
    const files = [
      { name: '001_ddl.sql', sql: `CREATE INDEX t_x ON t (x);` },
      { name: '002_touch.sql', sql: `UPDATE t SET x = 1;` },
    ];
    const r = await migrate(db, files, { singleTransaction: true });
    expect(r.failed?.name).toBe('002_touch.sql');
    await expectCaught(db, r, /victims: row count changed from 3 to 0/);
    expect((await db.query(`SELECT to_regclass('t_x') AS i`)).rows[0].i).toBeNull();
    const c = await db.client();
    try {
      const dry = await new Migrator(c).migrate(await buildMigrationSet(files), { dryRun: true });
      expect(dry.failed?.name).toBe('002_touch.sql');
      expect(dry.failed?.error).toBeInstanceOf(ValidationFailedError);
    } finally {
      await c.end();
    }
  });

  it('harmless: a file that defers its own constraints, and a later file of the group relying on INITIALLY DEFERRED, still pass', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`
      CREATE TABLE parent (id int PRIMARY KEY);
      CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent DEFERRABLE INITIALLY IMMEDIATE);
      CREATE TABLE late (id int PRIMARY KEY, parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);`);
    const files = [
      {
        name: '001_own.sql',
        sql: `-- flotilla:validate allowRowChanges=true\nSET CONSTRAINTS ALL DEFERRED;\nINSERT INTO child VALUES (1, 1);\nINSERT INTO parent VALUES (1);`,
      },
      { name: '002_late.sql', sql: `-- flotilla:validate allowRowChanges=true\nINSERT INTO late VALUES (2, 2);\nINSERT INTO parent VALUES (2);` },
      { name: '003_ddl.sql', sql: `CREATE INDEX late_parent ON late (parent_id);` },
    ];
    const r = await migrate(db, files, { singleTransaction: true });
    expect(r.failed, JSON.stringify(r.failed)).toBeUndefined();
    expect(await tracked(db)).toEqual(['001_own.sql', '002_late.sql', '003_ddl.sql']);
    // per-file transactions too
    const db2 = await createTestDatabase('tv');
    await db2.query(`
      CREATE TABLE parent (id int PRIMARY KEY);
      CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent DEFERRABLE INITIALLY IMMEDIATE);
      CREATE TABLE late (id int PRIMARY KEY, parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);`);
    const r2 = await migrate(db2, files);
    expect(r2.failed, JSON.stringify(r2.failed)).toBeUndefined();
  });

  it('a deferred foreign key left violated fails the file that broke it, by name, and rolls back', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`CREATE TABLE parent (id int PRIMARY KEY);
      CREATE TABLE late (id int PRIMARY KEY, parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);`);
    const r = await migrate(
      db,
      [
        { name: '001_ok.sql', sql: `CREATE INDEX late_parent ON late (parent_id);` },
        { name: '002_orphan.sql', sql: `-- flotilla:validate allowRowChanges=true\nINSERT INTO late VALUES (1, 99);` },
      ],
      { singleTransaction: true },
    );
    expect(r.failed?.name).toBe('002_orphan.sql');
    expect(r.failed?.error.message).toMatch(/foreign key/);
    expect(await count(db, 'late')).toBe(0);
  });
});

describe('validation routes: code the parse tree does not name as a function call', () => {
  it('a user-defined operator', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`${SETUP};
      CREATE FUNCTION purge_eq(int, int) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN DELETE FROM victims; RETURN $1 = $2; END $$;
      CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = purge_eq);`);
    const r = await migrate(db, [{ name: '001_op.sql', sql: `SELECT 1 === 2;` }]);
    await expectCaught(db, r, /victims: row count changed from 3 to 0/);
    const r2 = await migrate(db, [{ name: '001_op.sql', sql: `UPDATE t SET x = 2 WHERE id OPERATOR(public.===) 1;` }]);
    await expectCaught(db, r2, /victims: row count changed from 3 to 0/);
    // harmless: built-in operators keep the scope to what is written
    expect(await scopeOf(db, `UPDATE t SET x = x + 1 WHERE id = 1 AND x BETWEEN 0 AND 9 AND x IN (1, 2) AND 'a' LIKE 'b';`)).toEqual(['public.t']);
    expect(await scopeOf(db, `CREATE INDEX t_pos ON t (x) WHERE x > 0;`)).toEqual([]);
  });

  it('a view over a writing function, read by the file (SELECT, CREATE TABLE AS, REFRESH MATERIALIZED VIEW)', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`${SETUP};
      CREATE VIEW purging AS SELECT purge_victims() AS x;
      CREATE VIEW purging_too AS SELECT * FROM purging;
      CREATE MATERIALIZED VIEW purged AS SELECT purge_victims() AS x WITH NO DATA;
      CREATE VIEW plain AS SELECT id FROM t;`);
    for (const sql of [`SELECT * FROM purging;`, `CREATE TABLE copy AS SELECT * FROM purging_too;`, `REFRESH MATERIALIZED VIEW purged;`]) {
      const r = await migrate(db, [{ name: '001_view.sql', sql }]);
      await expectCaught(db, r, /victims: row count changed from 3 to 0/);
    }
    // harmless: a view over plain tables and built-ins
    expect(await scopeOf(db, `CREATE TABLE copy AS SELECT * FROM plain;`)).toEqual([]);
  });

  it('a built-in that runs SQL given as text (query_to_xml, table_to_xml over a view)', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`${SETUP}; CREATE VIEW purging AS SELECT purge_victims() AS x;`);
    for (const sql of [`SELECT query_to_xml('SELECT purge_victims()', true, false, '');`, `SELECT pg_catalog.table_to_xml('purging', true, false, '');`]) {
      await expectCaught(db, await migrate(db, [{ name: '001_text.sql', sql }]), /victims: row count changed from 3 to 0/);
    }
  });

  it('a rule on a written table or view that calls a writing function', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`${SETUP};
      CREATE RULE purge_on_update AS ON UPDATE TO t DO ALSO SELECT purge_victims();
      CREATE VIEW inbox AS SELECT id FROM t;
      CREATE RULE inbox_insert AS ON INSERT TO inbox DO INSTEAD SELECT purge_victims();`);
    await expectCaught(db, await migrate(db, [{ name: '001_rule.sql', sql: `UPDATE t SET x = 1;` }]), /victims: row count changed/);
    await expectCaught(db, await migrate(db, [{ name: '001_rule.sql', sql: `INSERT INTO inbox VALUES (5);` }]), /victims: row count changed/);
  });

  it('a cast to a domain whose CHECK calls a writing function, and a column of that domain', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`${SETUP};
      CREATE FUNCTION purge_check(int) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN DELETE FROM victims; RETURN true; END $$;
      CREATE DOMAIN checked AS int CHECK (purge_check(VALUE));
      CREATE DOMAIN plain_positive AS int CHECK (VALUE > 0);`);
    await expectCaught(db, await migrate(db, [{ name: '001_cast.sql', sql: `SELECT 1::checked;` }]), /victims: row count changed/);
    await expectCaught(db, await migrate(db, [{ name: '001_col.sql', sql: `ALTER TABLE t ALTER COLUMN x TYPE checked;` }]), /victims: row count changed/);
    // harmless: a domain over built-ins
    expect(await scopeOf(db, `ALTER TABLE t ADD COLUMN y plain_positive; SELECT 2::plain_positive;`)).toEqual([]);
  });

  it('a user-defined cast whose function writes, used by a cast or an assignment', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`${SETUP};
      CREATE TYPE mood AS ENUM ('ok', 'sad');
      CREATE FUNCTION int_to_mood(int) RETURNS mood LANGUAGE plpgsql AS $$ BEGIN DELETE FROM victims; RETURN 'ok'; END $$;
      CREATE CAST (int AS mood) WITH FUNCTION int_to_mood(int) AS ASSIGNMENT;
      CREATE TABLE moods (m mood); INSERT INTO moods VALUES ('sad');
      CREATE TYPE plain_mood AS ENUM ('a', 'b');`);
    await expectCaught(db, await migrate(db, [{ name: '001_cast.sql', sql: `SELECT 1::mood;` }]), /victims: row count changed/);
    await expectCaught(db, await migrate(db, [{ name: '001_assign.sql', sql: `UPDATE moods SET m = 1;` }]), /victims: row count changed/);
    // harmless: an enum without user casts or operators
    expect(await scopeOf(db, `SELECT 'a'::plain_mood; ALTER TABLE t ADD COLUMN pm plain_mood;`)).toEqual([]);
  });

  it('an index expression calling a writing function, run again by ANALYZE, REINDEX or a table rewrite', async () => {
    const db = await createTestDatabase('tv');
    await db.query(`${SETUP};
      CREATE FUNCTION sneaky(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + purge_victims()';
      CREATE TABLE indexed (id int);
      CREATE INDEX indexed_sneaky ON indexed (sneaky(id));
      INSERT INTO indexed VALUES (1);
      INSERT INTO victims VALUES (1), (2), (3);`);
    expect(await count(db, 'victims')).toBe(3);
    await expectCaught(db, await migrate(db, [{ name: '001_analyze.sql', sql: `ANALYZE indexed;` }]), /victims: row count changed/);
    await expectCaught(db, await migrate(db, [{ name: '001_reindex.sql', sql: `REINDEX INDEX indexed_sneaky;` }]), /victims: row count changed/);
    await expectCaught(
      db,
      await migrate(db, [{ name: '001_alter.sql', sql: `ALTER TABLE indexed ALTER COLUMN id TYPE int USING id + 0;` }]),
      /victims: row count changed/,
    );
    // harmless: the same statements on a table with plain indexes
    expect(await scopeOf(db, `ANALYZE t; REINDEX TABLE t; ALTER TABLE t ALTER COLUMN x TYPE bigint;`)).toEqual([]);
  });
});
