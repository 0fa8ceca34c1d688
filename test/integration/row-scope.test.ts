/**
 * The validator counts only the tables a migration can change
 * (core/effects.ts + adapters/pg/row-scope.ts), resolved against a real catalog.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ValidationFailedError } from '../../src/core/errors.js';
import { buildMigrationSet } from '../../src/core/migration-set.js';
import { rowCountScope } from '../../src/adapters/pg/row-scope.js';
import { Migrator } from '../../src/migrator.js';
import { createTestDatabase, dropAllTestDatabases, type TestDatabase } from '../helpers/db.js';

afterAll(dropAllTestDatabases);

const SCHEMA = `
  CREATE TABLE p (id int PRIMARY KEY);
  CREATE TABLE c (id int PRIMARY KEY, p_id int REFERENCES p ON DELETE CASCADE);
  CREATE TABLE g (id int PRIMARY KEY, c_id int REFERENCES c ON DELETE SET NULL);
  CREATE TABLE unrelated (id int);
  CREATE TABLE parted (k int) PARTITION BY LIST (k);
  CREATE TABLE parted_1 PARTITION OF parted FOR VALUES IN (1);
  CREATE TABLE parted_2 PARTITION OF parted FOR VALUES IN (2);
  CREATE TABLE audited (id int);
  CREATE TABLE audit_rows (id int);
  CREATE FUNCTION log_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit_rows VALUES (NEW.id); RETURN NEW; END $$;
  CREATE TRIGGER audited_log AFTER INSERT ON audited FOR EACH ROW EXECUTE FUNCTION log_row();
  CREATE FUNCTION purge_unrelated() RETURNS void LANGUAGE sql AS 'DELETE FROM unrelated';
  CREATE TABLE defaulted (id int, n int DEFAULT (0 + length(purge_unrelated()::text)));`;

async function scopeOf(db: TestDatabase, sql: string): Promise<string[] | undefined> {
  const set = await buildMigrationSet([{ name: '001_x.sql', sql }]);
  const c = await db.client();
  try {
    return await rowCountScope(c, set.migrations[0]!.effects);
  } finally {
    await c.end();
  }
}

describe('row-count scope', () => {
  it('resolves DML targets, foreign-key referrers (transitively) and partitions; calls to built-ins and pure DDL count nothing', async () => {
    const db = await createTestDatabase('scope');
    await db.query(SCHEMA);
    expect(await scopeOf(db, `DELETE FROM p WHERE id = 1;`)).toEqual(['public.c', 'public.g', 'public.p']);
    expect(await scopeOf(db, `INSERT INTO parted VALUES (1);`)).toEqual(['public.parted', 'public.parted_1', 'public.parted_2']);
    expect(await scopeOf(db, `DROP TABLE parted_2;`)).toEqual(['public.parted', 'public.parted_1', 'public.parted_2']);
    expect(await scopeOf(db, `CREATE INDEX ON unrelated (id); ALTER TABLE p ADD COLUMN at timestamptz DEFAULT now();`)).toEqual([]);
    // a table created by the file itself is new: nothing to compare
    expect(await scopeOf(db, `CREATE TABLE fresh (id int); INSERT INTO fresh VALUES (1);`)).toEqual([]);
  });

  it('counts every table when a trigger, a user function (called or in a default) or an event trigger could write elsewhere', async () => {
    const db = await createTestDatabase('scope');
    await db.query(SCHEMA);
    expect(await scopeOf(db, `INSERT INTO audited VALUES (1);`)).toBeUndefined();
    expect(await scopeOf(db, `SELECT purge_unrelated();`)).toBeUndefined();
    expect(await scopeOf(db, `INSERT INTO defaulted (id) VALUES (1);`)).toBeUndefined();
    expect(await scopeOf(db, `CREATE INDEX ON unrelated (id);`)).toEqual([]);
    await db.query(`CREATE FUNCTION ddl_log() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit_rows VALUES (0); END $$;
                    CREATE EVENT TRIGGER ddl_log ON ddl_command_end EXECUTE FUNCTION ddl_log();`);
    expect(await scopeOf(db, `CREATE INDEX ON unrelated (id);`)).toBeUndefined();
  });

  it('validation still sees rows a trigger changed in another table', async () => {
    const db = await createTestDatabase('scope');
    await db.query(SCHEMA);
    const c = await db.client();
    try {
      const set = await buildMigrationSet([{ name: '001_insert.sql', sql: `-- flotilla:validate allowRowChanges=false\nINSERT INTO audited VALUES (7);` }]);
      const report = await new Migrator(c).migrate(set);
      expect(report.failed?.error).toBeInstanceOf(ValidationFailedError);
      expect(report.failed?.error.message).toMatch(/audit_rows: row count changed from 0 to 1/);
      expect((await db.query('SELECT count(*)::int AS n FROM audit_rows')).rows[0].n).toBe(0);
    } finally {
      await c.end();
    }
  });

  it('a DDL-only migration never reads unrelated tables: a table locked by the application does not block validation', async () => {
    const db = await createTestDatabase('scope');
    await db.query(`${SCHEMA}; INSERT INTO unrelated SELECT generate_series(1, 1000);`);
    const holder = await db.client();
    const c = await db.client();
    try {
      // the application holds a lock that would make count(*) on "unrelated" wait
      await holder.query('BEGIN; LOCK TABLE unrelated IN ACCESS EXCLUSIVE MODE');
      const ddl = await buildMigrationSet([{ name: '001_index.sql', sql: 'CREATE INDEX p_id_idx ON p (id);' }]);
      const report = await new Migrator(c, { lockTimeoutMs: 300 }).migrate(ddl);
      expect(report.failed).toBeUndefined();
      expect(report.applied.map((a) => a.name)).toEqual(['001_index.sql']);
      // the same lock makes a migration that does write "unrelated" wait, and fail on lock_timeout
      const dml = await buildMigrationSet([
        { name: '001_index.sql', sql: 'CREATE INDEX p_id_idx ON p (id);' },
        { name: '002_delete.sql', sql: '-- flotilla:validate allowRowChanges=true\nDELETE FROM p;' },
        { name: '003_touch.sql', sql: 'DELETE FROM unrelated WHERE id < 0;' },
      ]);
      const r2 = await new Migrator(c, { lockTimeoutMs: 300 }).migrate(dml);
      expect(r2.applied.map((a) => a.name)).toEqual(['002_delete.sql']);
      expect(r2.failed?.name).toBe('003_touch.sql');
      expect(r2.failed?.error.message).toMatch(/lock/i);
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.end();
      await c.end();
    }
  });

  it('a direct DELETE is still caught by the default row-count check', async () => {
    const db = await createTestDatabase('scope');
    await db.query('CREATE TABLE users (id int); INSERT INTO users VALUES (1), (2);');
    const c = await db.client();
    try {
      const set = await buildMigrationSet([{ name: '001_del.sql', sql: 'DELETE FROM users WHERE id = 1;' }]);
      const r = await new Migrator(c).migrate(set);
      expect(r.failed?.error.message).toMatch(/users: row count changed from 2 to 1/);
    } finally {
      await c.end();
    }
  });

  it('per-file transactions reuse the last structure-only snapshot, and still see what the next file changes', async () => {
    const db = await createTestDatabase('scope');
    const c = await db.client();
    try {
      const set = await buildMigrationSet([
        { name: '001_t.sql', sql: 'CREATE TABLE t (id int);' },
        { name: '002_idx.sql', sql: 'CREATE INDEX t_id ON t (id);' },
        { name: '003_drop.sql', sql: 'DROP TABLE t;' },
      ]);
      const report = await new Migrator(c).migrate(set);
      expect(report.applied.map((a) => a.name)).toEqual(['001_t.sql', '002_idx.sql']);
      expect(report.failed?.name).toBe('003_drop.sql');
      expect(report.failed?.error.message).toMatch(/t/);
      expect(report.failed?.error).toBeInstanceOf(ValidationFailedError);
      expect((await db.query(`SELECT to_regclass('t') IS NOT NULL AS still`)).rows[0].still).toBe(true);
    } finally {
      await c.end();
    }
  });
});
