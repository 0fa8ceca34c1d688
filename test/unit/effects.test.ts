/**
 * What the parse tree says about which tables' rows a migration can change
 * (the validator counts only those; see core/effects.ts).
 */
import { describe, expect, it } from 'vitest';
import { changesAnyRows, type RowEffects } from '../../src/core/effects.js';
import { buildMigrationSet } from '../../src/core/migration-set.js';

async function fx(sql: string): Promise<RowEffects> {
  const set = await buildMigrationSet([{ name: '001_x.sql', sql }]);
  return set.migrations[0]!.effects;
}

describe('row effects', () => {
  it('pure DDL changes no rows', async () => {
    const e = await fx(`CREATE TABLE p (id int PRIMARY KEY); CREATE INDEX p_i ON p (id); ALTER TABLE p ADD COLUMN x text; COMMENT ON TABLE p IS 'x';`);
    expect(changesAnyRows(e)).toBe(false);
    expect(e.writes).toEqual([]);
    expect(e.functions).toEqual([]);
  });

  it('collects DML targets, including data-modifying CTEs, MERGE, TRUNCATE, COPY FROM and EXPLAIN ANALYZE', async () => {
    const e = await fx(`
      WITH gone AS (DELETE FROM s.a RETURNING id) INSERT INTO b SELECT id FROM gone;
      UPDATE c SET x = 1;
      MERGE INTO d USING b ON d.id = b.id WHEN MATCHED THEN DELETE;
      TRUNCATE e, f;
      EXPLAIN ANALYZE DELETE FROM g;
      INSERT INTO h VALUES (1) ON CONFLICT DO NOTHING;`);
    expect(e.writes.map((w) => (w.schema ? `${w.schema}.${w.name}` : w.name)).sort()).toEqual(['b', 'c', 'd', 'e', 'f', 'g', 'h', 's.a']);
    expect(changesAnyRows(e)).toBe(false);
  });

  it('reads from tables are not writes', async () => {
    const e = await fx(`CREATE TABLE t2 AS SELECT * FROM users; SELECT count(*) FROM audit_log;`);
    expect(e.writes).toEqual([]);
    expect(e.functions).toEqual(['count']);
  });

  it('dropping, attaching or creating a child touches the parent count', async () => {
    expect((await fx(`DROP TABLE old_part;`)).writes).toEqual([{ name: 'old_part' }]);
    expect((await fx(`ALTER TABLE p ATTACH PARTITION c FOR VALUES IN (1);`)).writes.map((w) => w.name).sort()).toEqual(['c', 'p']);
    expect((await fx(`ALTER TABLE p DETACH PARTITION c;`)).writes.map((w) => w.name).sort()).toEqual(['c', 'p']);
    expect((await fx(`CREATE TABLE c2 PARTITION OF p FOR VALUES IN (2);`)).writes).toEqual([{ name: 'p' }]);
  });

  it('code that can do anything means every table', async () => {
    for (const sql of [`DO $$ BEGIN DELETE FROM users; END $$;`, `CALL purge();`, `CREATE EXTENSION IF NOT EXISTS pgcrypto;`, `DROP SCHEMA s CASCADE;`]) {
      expect(changesAnyRows(await fx(sql)), sql).toBe(true);
    }
  });

  it('a trigger or function defined in the file and fired or called by the same file means every table', async () => {
    expect(changesAnyRows(await fx(`CREATE TRIGGER t AFTER INSERT ON a FOR EACH ROW EXECUTE FUNCTION f(); INSERT INTO a VALUES (1);`))).toBe(true);
    expect(changesAnyRows(await fx(`CREATE FUNCTION purge() RETURNS void LANGUAGE sql AS 'DELETE FROM users'; SELECT purge();`))).toBe(true);
    // defining alone runs nothing
    const def = await fx(`CREATE FUNCTION purge() RETURNS void LANGUAGE sql AS 'DELETE FROM users'; CREATE TABLE x (at timestamptz DEFAULT now());`);
    expect(changesAnyRows(def)).toBe(false);
    expect(def.functions).toEqual(['now']);
  });

  it('function calls are collected for a catalog check, pg_catalog-qualified ones too (a superuser can make one there)', async () => {
    const e = await fx(`SELECT public.archive_users(); SELECT pg_catalog.pg_sleep(0);`);
    expect(e.functions).toEqual(['archive_users', 'pg_sleep']);
  });

  it('functional notation (x.f is f(x)) is collected as a possible call', async () => {
    const e = await fx(`CREATE TABLE s AS SELECT u.id, u.user_score AS score FROM users u;`);
    expect(e.functions).toEqual(expect.arrayContaining(['user_score', 'id']));
  });
});
